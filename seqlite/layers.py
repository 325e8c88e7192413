"""The SeqConv layer (paper 3.1, Eq. 1-5) and its Hadamard-mask form.

A SeqConv layer splits a wide convolution ``in -> out`` into ``g = out / k`` groups
and runs them in sequence. Group ``i`` transforms the concatenation of the layer
input and every earlier group's output (Eq. 1)::

    x_i = F_i([x_0, x_1, ..., x_{i-1}])

and the layer returns ``[x_1, ..., x_g]``. The windowed variant (WSeqConv, Eq. 2)
lets group ``i`` see only the most recent ``w`` channels of that concatenation;
Eq. 3-5 write the same thing as a 0/1 mask ``omega_i`` multiplied (Hadamard product)
into the dense input. :class:`SeqConv2d` is the windowed/dense layer;
:class:`HadamardSeqConv2d` is the literal mask form, kept small so a reader can check
the two against each other.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

__all__ = [
    "GroupTransform",
    "HadamardSeqConv2d",
    "SeqConv2d",
    "SeqConvOutput",
    "check_seqconv_config",
    "group_views",
    "seqconv_param_count",
    "window_mask",
]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def check_seqconv_config(
    in_channels: int,
    out_channels: int,
    k: int,
    window: int | None = None,
    bottleneck: bool = False,
    subgroups: int = 1,
) -> int:
    """Validate a SeqConv configuration and return the number of groups ``g``.

    Raises ``ValueError`` naming the parameter and the rule it breaks.
    """
    _positive_int("in_channels", in_channels)
    _positive_int("out_channels", out_channels)
    _positive_int("k", k)
    _positive_int("subgroups", subgroups)
    if window is not None:
        _positive_int("window", window)
    if out_channels % k:
        raise ValueError(
            f"out_channels must be divisible by k (g = out_channels / k groups); "
            f"got out_channels={out_channels}, k={k}"
        )
    if k % subgroups:
        raise ValueError(
            f"subgroups must divide k (each group's 3x3 conv is split into "
            f"`subgroups` parts); got k={k}, subgroups={subgroups}"
        )
    if subgroups > 1 and not bottleneck:
        raise ValueError(
            "subgroups > 1 needs bottleneck=True: the paper's cardinality splits the "
            f"3x3 conv of the bottleneck transform; got subgroups={subgroups}"
        )
    return out_channels // k


def group_views(
    in_channels: int, out_channels: int, k: int, window: int | None = None
) -> list[tuple[int, int]]:
    """Channel range ``(start, stop)`` of ``[x_0, x_1, ..., x_{g-1}]`` each group sees.

    Group ``i`` (1-based in the paper, index ``i - 1`` here) sees channels
    ``[in + (i-1)k - w, in + (i-1)k)`` of the concatenation (Eq. 2), clipped at 0:
    a group with fewer than ``w`` channels before it sees all of them, which is
    dense aggregation (Eq. 1). ``window=None`` is dense.
    """
    g = out_channels // k
    views = []
    for i in range(g):
        stop = in_channels + i * k
        start = 0 if window is None else max(0, stop - window)
        views.append((start, stop))
    return views


def window_mask(
    in_channels: int, out_channels: int, k: int, window: int | None = None
) -> Tensor:
    """The masks ``omega_i`` of Eq. 4 stacked as a ``(g, in + out - k)`` 0/1 matrix.

    Row ``i`` is the mask over the dense input ``[x_0, x_1, ..., x_{g-1}]`` of group
    ``i + 1``: 1 on the channels inside its window, 0 elsewhere, including channels
    that do not exist yet for that group (they are later groups' outputs).
    """
    check_seqconv_config(in_channels, out_channels, k, window)
    g = out_channels // k
    mask = torch.zeros(g, in_channels + out_channels - k)
    for i, (start, stop) in enumerate(group_views(in_channels, out_channels, k, window)):
        mask[i, start:stop] = 1.0
    return mask


def seqconv_param_count(
    in_channels: int,
    out_channels: int,
    k: int,
    window: int | None = None,
    bottleneck: bool = False,
    subgroups: int = 1,
) -> int:
    """Closed-form number of parameters of one :class:`SeqConv2d` (BN affine included).

    Basic group ``i`` with a view of ``v_i`` channels: ``9 v_i k`` conv weights and
    ``2k`` BN parameters. Bottleneck: ``v_i k`` (1x1) ``+ 9 k^2 / c`` (3x3 with ``c``
    subgroups) ``+ 4k``. Dense views grow by ``k`` per group, so the total grows
    quadratically with the width; a window keeps it linear (paper 3.1).
    """
    check_seqconv_config(in_channels, out_channels, k, window, bottleneck, subgroups)
    views = sum(stop - start for start, stop in group_views(in_channels, out_channels, k, window))
    g = out_channels // k
    if bottleneck:
        return views * k + g * (9 * k * k // subgroups + 4 * k)
    return 9 * views * k + g * 2 * k


class SeqConvOutput(NamedTuple):
    """Both outputs of a SeqConv layer, each ``[x_1, ..., x_g]`` stacked on channels.

    ``raw`` is every group's last convolution before BN (plus the shortcut, when one
    was given); ``activated`` is ``ReLU(BN(raw))``, the features later groups see.
    """

    raw: Tensor
    activated: Tensor


class GroupTransform(nn.Module):
    """``F_i``: Conv3x3-BN-ReLU, or Conv1x1-BN-ReLU-Conv3x3(``c`` groups)-BN-ReLU ("B").

    Split into :meth:`conv` (up to the last convolution) and :attr:`bn` so a shortcut
    can be added between the two, as the residual block needs (Fig. 2).
    """

    def __init__(self, in_channels: int, k: int, bottleneck: bool = False, subgroups: int = 1):
        super().__init__()
        self.bottleneck = bottleneck
        if bottleneck:
            self.reduce = nn.Conv2d(in_channels, k, 1, bias=False)
            self.reduce_bn = nn.BatchNorm2d(k)
            self.conv3x3 = nn.Conv2d(k, k, 3, padding=1, groups=subgroups, bias=False)
        else:
            self.conv3x3 = nn.Conv2d(in_channels, k, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(k)

    @property
    def first_conv(self) -> nn.Conv2d:
        """The convolution that reads the aggregated view (the one Fig. 5 plots)."""
        return self.reduce if self.bottleneck else self.conv3x3

    def conv(self, view: Tensor) -> Tensor:
        if self.bottleneck:
            view = torch.relu(self.reduce_bn(self.reduce(view)))
        return self.conv3x3(view)

    def forward(self, view: Tensor) -> Tensor:
        return torch.relu(self.bn(self.conv(view)))


class SeqConv2d(nn.Module):
    """Sequentially aggregated convolution, dense (Eq. 1) or windowed (Eq. 2).

    Args:
        in_channels: channels of the input ``x_0``.
        out_channels: channels of the output ``[x_1, ..., x_g]``; a multiple of ``k``.
        k: channels each group produces (the growth rate); ``g = out_channels / k``.
        window: ``None`` for dense aggregation; ``w`` to let every group see only the
            most recent ``w`` channels of ``[x_0, ..., x_{i-1}]``. The paper's WSeqConv
            is ``window=in_channels``: then each group sees ``in_channels`` channels and
            the layer has the parameters of a plain ``in -> out`` 3x3 convolution.
        bottleneck: use the bottleneck transform (SeqConv-B) instead of Conv3x3-BN-ReLU.
        subgroups: cardinality ``c`` of the bottleneck's 3x3 conv (SeqResNeXt).
        drop_rate: ``Dropout2d`` probability on each group's input view (paper 4.2).

    Calling the layer returns the activated output, so it replaces a
    Conv2d+BN+ReLU of the same width. :meth:`forward_residual` returns both outputs
    and can add a shortcut to each group's pre-BN output (the residual block's form).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        k: int,
        *,
        window: int | None = None,
        bottleneck: bool = False,
        subgroups: int = 1,
        drop_rate: float = 0.0,
    ):
        super().__init__()
        self.groups = check_seqconv_config(in_channels, out_channels, k, window, bottleneck, subgroups)
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.k = k
        self.window = window
        self.bottleneck = bottleneck
        self.subgroups = subgroups
        self.drop_rate = drop_rate
        self.views = group_views(in_channels, out_channels, k, window)
        self.transforms = nn.ModuleList(
            GroupTransform(stop - start, k, bottleneck, subgroups) for start, stop in self.views
        )
        self.dropout = nn.Dropout2d(drop_rate) if drop_rate > 0 else nn.Identity()

    def extra_repr(self) -> str:
        window = "dense" if self.window is None else f"window={self.window}"
        extra = f", bottleneck=True, subgroups={self.subgroups}" if self.bottleneck else ""
        drop = f", drop_rate={self.drop_rate}" if self.drop_rate else ""
        return f"{self.in_channels}, {self.out_channels}, k={self.k}, g={self.groups}, {window}{extra}{drop}"

    def _check_input(self, x: Tensor, shortcut: Tensor | None) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SeqConv2d expected input of shape (N, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        if shortcut is not None and (
            shortcut.dim() != 4
            or shortcut.shape[1] != self.out_channels
            or shortcut.shape[2:] != x.shape[2:]
        ):
            raise ValueError(
                f"SeqConv2d expected shortcut of shape (N, {self.out_channels}, "
                f"{x.shape[2]}, {x.shape[3]}), got {tuple(shortcut.shape)}"
            )

    def forward_residual(self, x: Tensor, shortcut: Tensor | None = None) -> SeqConvOutput:
        """Run the layer and return ``(raw, activated)``.

        With ``shortcut`` (``out_channels`` wide), group ``i`` adds its ``k``-channel
        slice of it to the raw conv output before BN (pre-activation identity mapping,
        Fig. 2); BN-ReLU of the sum is what later groups see.
        """
        self._check_input(x, shortcut)
        features = [x]  # [x_0, activated x_1, ...]; concatenated lazily per view
        raws = []
        for i, (transform, (start, stop)) in enumerate(zip(self.transforms, self.views)):
            view = _channel_slice(features, start, stop)
            raw = transform.conv(self.dropout(view))
            if shortcut is not None:
                raw = raw + shortcut[:, i * self.k : (i + 1) * self.k]
            raws.append(raw)
            features.append(torch.relu(transform.bn(raw)))
        return SeqConvOutput(torch.cat(raws, 1), torch.cat(features[1:], 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_residual(x).activated


def _channel_slice(features: list[Tensor], start: int, stop: int) -> Tensor:
    """Channels ``[start, stop)`` of ``torch.cat(features, 1)``, touching only the parts needed."""
    parts, offset = [], 0
    for f in features:
        width = f.shape[1]
        lo, hi = max(start, offset), min(stop, offset + width)
        if lo < hi:
            parts.append(f if (lo, hi) == (offset, offset + width) else f[:, lo - offset : hi - offset])
        offset += width
    return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


class HadamardSeqConv2d(nn.Module):
    """Eq. 3-5 taken literally: a *dense* SeqConv whose group inputs are masked.

    Group ``i`` transforms ``[x_0, x_1, ..., x_{i-1}] * omega_i`` with a dense-width
    first convolution; channels outside the window are multiplied by 0. It has the
    dense layer's parameters, but only the weights inside each window ever matter, so
    with those weights shared it computes exactly what ``SeqConv2d(window=w)`` does.
    This is a reference for teaching and tests, not a fast path.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        k: int,
        *,
        window: int | None = None,
        bottleneck: bool = False,
        subgroups: int = 1,
    ):
        super().__init__()
        self.dense = SeqConv2d(in_channels, out_channels, k, bottleneck=bottleneck, subgroups=subgroups)
        self.window = window
        self.register_buffer("mask", window_mask(in_channels, out_channels, k, window), persistent=False)

    @classmethod
    def from_windowed(cls, layer: SeqConv2d) -> HadamardSeqConv2d:
        """A mask-form layer sharing ``layer``'s weights (zeros outside the windows)."""
        masked = cls(
            layer.in_channels,
            layer.out_channels,
            layer.k,
            window=layer.window,
            bottleneck=layer.bottleneck,
            subgroups=layer.subgroups,
        ).to(next(layer.parameters()).dtype)
        first = "reduce.weight" if layer.bottleneck else "conv3x3.weight"
        with torch.no_grad():
            for dense_t, t, (start, stop) in zip(masked.dense.transforms, layer.transforms, layer.views):
                target = dense_t.state_dict()
                for name, value in t.state_dict().items():
                    if name == first:
                        target[name].zero_()
                        target[name][:, start:stop] = value
                    else:
                        target[name].copy_(value)
        return masked

    def window_grad(self, group: int) -> Tensor | None:
        """Gradient of group ``group``'s first conv over the channels inside its window."""
        start, stop = self.dense.views[group] if self.window is None else group_views(
            self.dense.in_channels, self.dense.out_channels, self.dense.k, self.window
        )[group]
        grad = self.dense.transforms[group].first_conv.weight.grad
        return None if grad is None else grad[:, start:stop]

    def forward_residual(self, x: Tensor, shortcut: Tensor | None = None) -> SeqConvOutput:
        layer = self.dense
        layer._check_input(x, shortcut)
        features, raws = [x], []
        for i, transform in enumerate(layer.transforms):
            dense_view = torch.cat(features, 1)
            raw = transform.conv(dense_view * self.mask[i, : dense_view.shape[1]].view(1, -1, 1, 1))
            if shortcut is not None:
                raw = raw + shortcut[:, i * layer.k : (i + 1) * layer.k]
            raws.append(raw)
            features.append(torch.relu(transform.bn(raw)))
        return SeqConvOutput(torch.cat(raws, 1), torch.cat(features[1:], 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_residual(x).activated
