"""The SeqConv layer (paper 3.1, Eq. 1-5) and its Hadamard-mask form.

A SeqConv layer splits a wide convolution ``in -> out`` into ``g = out / k`` groups
and runs them in sequence. Group ``i`` transforms the concatenation of the layer
input and every earlier group's output (Eq. 1)::

    x_i = F_i([x_0, x_1, ..., x_{i-1}])

and the layer returns ``[x_1, ..., x_g]``. The windowed variant (WSeqConv, Eq. 2)
lets group ``i`` see only the most recent ``w`` channels of that concatenation;
Eq. 3-5 write the same thing as a 0/1 mask ``omega_i`` multiplied (Hadamard product)
into the dense input.

* :class:`SeqConvSpec` (from :mod:`seqlite.spec`): the six numbers that define a layer,
  validated once, with its views, masks (Eq. 4) and closed-form parameter count.
* :class:`SeqConv2d`: the layer; :meth:`SeqConv2d.forward_residual` is Eq. 1-2 and
  Fig. 2 written as a per-group loop. Its ``fast`` switch (on by default, see
  :func:`set_fast`) runs :mod:`seqlite.fast` instead: the same sums in a faster order.
* :class:`HadamardSeqConv2d`: the literal mask form, kept small so a reader can check
  the two against each other.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import Tensor, nn

from . import fast as _fast
from .checks import boolean, probability
from .fast import channel_slice
from .spec import SeqConvSpec, group_views, seqconv_param_count, window_mask

__all__ = [
    "GroupTransform",
    "HadamardSeqConv2d",
    "SeqConv2d",
    "SeqConvOutput",
    "SeqConvSpec",
    "group_views",
    "seqconv_param_count",
    "set_fast",
    "window_mask",
]


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
        in_channels, out_channels, k, window, bottleneck, subgroups: the layer's shape,
            as :class:`SeqConvSpec` (``SeqConv2d.from_spec(spec)`` takes one).
            ``g = out_channels / k`` groups, each producing ``k`` channels.
        drop_rate: dropout probability on each group's input view. Rate and placement are
            paper 4.2's (0.1 before every SeqConv layer but the first); the paper cites
            standard dropout (Srivastava et al. 2014). Channel-wise ``Dropout2d`` (whole
            feature maps) drawn separately for each group's view is seqlite's choice, not
            the paper's.

    Calling the layer returns the activated output, so it replaces a
    Conv2d+BN+ReLU of the same width. :meth:`forward_residual` returns both outputs
    and can add a shortcut to each group's pre-BN output (the residual block's form).

    Attributes:
        spec: the :class:`SeqConvSpec`; ``in_channels``, ``out_channels``, ``k``, ``window``,
            ``bottleneck``, ``subgroups``, ``views`` read from it.
        num_groups: ``g`` (``nn.Conv2d.groups`` means something else: there, groups that
            do *not* see each other).
        fast: ``True`` (default) computes the layer with :mod:`seqlite.fast`, the same sums
            in a faster order; ``False`` runs the per-group loop of
            :meth:`forward_residual` as written. :func:`set_fast` sets it for a model.
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
        self.spec = SeqConvSpec(in_channels, out_channels, k, window, bottleneck, subgroups)
        self.drop_rate = probability("drop_rate", drop_rate)
        self.transforms = nn.ModuleList(
            GroupTransform(stop - start, self.k, bottleneck, self.subgroups) for start, stop in self.views
        )
        self.dropout = nn.Dropout2d(self.drop_rate) if self.drop_rate > 0 else nn.Identity()
        self.fast = True
        self._fast_plan = _fast.make_plan(self.spec)  # the fast path's order of sums, fixed by the shape

    @classmethod
    def from_spec(cls, spec: SeqConvSpec, drop_rate: float = 0.0) -> SeqConv2d:
        """A layer of shape ``spec``."""
        if not isinstance(spec, SeqConvSpec):
            raise ValueError(f"spec must be a SeqConvSpec, got {type(spec).__name__}")
        fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
        return cls(**fields, drop_rate=drop_rate)

    def forward_residual(self, x: Tensor, shortcut: Tensor | None = None) -> SeqConvOutput:
        """Eq. 1 (dense) or Eq. 2 (windowed), group by group; returns ``(raw, activated)``.

        For each group ``i = 1, ..., g`` in turn:

        1. its view of ``[x_0, x_1, ..., x_{i-1}]``: every channel (Eq. 1), or the most
           recent ``w`` channels (Eq. 2; :attr:`SeqConvSpec.views`);
        2. dropout on the view (training only; rate and placement from paper 4.2, which
           cites standard dropout; channel-wise ``Dropout2d`` per view is our choice, not the paper's);
        3. ``F_i`` up to its last convolution (Conv3x3, or Conv1x1-BN-ReLU-Conv3x3 for "B");
        4. with a ``shortcut`` (the residual stream, ``out_channels`` wide), plus its
           ``k``-channel slice ``i``: the pre-activation identity mapping of Fig. 2. This
           sum is group ``i``'s ``raw`` output;
        5. BN, ReLU: ``x_i``, the features later groups see.

        ``raw`` and ``activated`` are ``[raw_1, ..., raw_g]`` and ``[x_1, ..., x_g]``
        stacked on channels. While :attr:`fast` is true the same numbers come from
        :func:`seqlite.fast.seqconv_forward`, which adds the same terms in another order.
        """
        self._check_input(x, shortcut)
        if self.fast:
            return SeqConvOutput(*self._fast_forward(x, shortcut, keep_raw=True))
        # As written: one group at a time.
        features = [x]  # [x_0, x_1, ..., x_{i-1}]
        raws = []
        for i, (F_i, (start, stop)) in enumerate(zip(self.transforms, self.views)):
            view = channel_slice(features, start, stop)  # torch.cat(features, 1)[:, start:stop]
            raw = F_i.conv(self.dropout(view))
            if shortcut is not None:
                raw = raw + shortcut[:, i * self.k : (i + 1) * self.k]
            raws.append(raw)
            features.append(torch.relu(F_i.bn(raw)))
        return SeqConvOutput(torch.cat(raws, 1), torch.cat(features[1:], 1))

    def forward(self, x: Tensor) -> Tensor:
        """The activated output ``[x_1, ..., x_g]`` of :meth:`forward_residual`."""
        if self.fast:  # only the activated output: skip concatenating the raw one
            self._check_input(x, None)
            return self._fast_forward(x, None, keep_raw=False)[1]
        return self.forward_residual(x).activated

    def _fast_forward(self, x: Tensor, shortcut: Tensor | None, keep_raw: bool) -> tuple[Tensor | None, Tensor]:
        dropout = self.dropout if self.training and self.drop_rate > 0 else None
        return _fast.seqconv_forward(self.spec, self.transforms, x, shortcut, plan=self._fast_plan, dropout=dropout,
                                     keep_raw=keep_raw)

    # The shape, read from the spec (a layer's shape never changes: its weights and plan depend on it).

    @property
    def in_channels(self) -> int:
        return self.spec.in_channels

    @property
    def out_channels(self) -> int:
        return self.spec.out_channels

    @property
    def k(self) -> int:
        return self.spec.k

    @property
    def window(self) -> int | None:
        return self.spec.window

    @property
    def bottleneck(self) -> bool:
        return self.spec.bottleneck

    @property
    def subgroups(self) -> int:
        return self.spec.subgroups

    @property
    def num_groups(self) -> int:
        """``g = out_channels / k``."""
        return self.spec.groups

    @property
    def views(self) -> tuple[tuple[int, int], ...]:
        """Each group's channel range of ``[x_0, ..., x_{g-1}]`` (:attr:`SeqConvSpec.views`)."""
        return self.spec.views

    def extra_repr(self) -> str:
        window = "dense" if self.window is None else f"window={self.window}"
        extra = f", bottleneck=True, subgroups={self.subgroups}" if self.bottleneck else ""
        drop = f", drop_rate={self.drop_rate}" if self.drop_rate else ""
        slow = ", fast=False" if not self.fast else ""
        return f"{self.in_channels}, {self.out_channels}, k={self.k}, g={self.num_groups}, {window}{extra}{drop}{slow}"

    def _check_input(self, x: Tensor, shortcut: Tensor | None) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"SeqConv2d expected input of shape (N, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        # The batch size must match too: a shortcut of batch 1 would broadcast silently.
        if shortcut is not None and (
            shortcut.dim() != 4
            or shortcut.shape[0] != x.shape[0]
            or shortcut.shape[1] != self.out_channels
            or shortcut.shape[2:] != x.shape[2:]
        ):
            raise ValueError(
                f"SeqConv2d expected shortcut of shape ({x.shape[0]}, {self.out_channels}, "
                f"{x.shape[2]}, {x.shape[3]}), got {tuple(shortcut.shape)}"
            )


def set_fast(model: nn.Module, enabled: bool) -> nn.Module:
    """Set :attr:`SeqConv2d.fast` on every SeqConv layer of ``model`` (in place); returns ``model``.

    ``set_fast(model, False)`` runs every layer group by group, as Eq. 1-2 write it
    (slower; the reference the fast path is tested against).
    """
    boolean("enabled", enabled)
    for m in model.modules():
        if isinstance(m, SeqConv2d):
            m.fast = enabled
    return model


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
        self.spec = SeqConvSpec(in_channels, out_channels, k, window, bottleneck, subgroups)
        self.dense = SeqConv2d.from_spec(dataclasses.replace(self.spec, window=None))
        self.register_buffer("mask", self.spec.mask(), persistent=False)

    @classmethod
    def from_spec(cls, spec: SeqConvSpec) -> HadamardSeqConv2d:
        """The mask form of a layer of shape ``spec`` (``spec.window`` sets the masks)."""
        if not isinstance(spec, SeqConvSpec):
            raise ValueError(f"spec must be a SeqConvSpec, got {type(spec).__name__}")
        return cls(spec.in_channels, spec.out_channels, spec.k, window=spec.window,
                   bottleneck=spec.bottleneck, subgroups=spec.subgroups)

    @property
    def window(self) -> int | None:
        return self.spec.window

    @classmethod
    def from_windowed(cls, layer: SeqConv2d) -> HadamardSeqConv2d:
        """A mask-form layer sharing ``layer``'s weights (zeros outside the windows)."""
        weight = next(layer.parameters())
        masked = cls.from_spec(layer.spec).to(device=weight.device, dtype=weight.dtype)
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
        start, stop = self.spec.views[group]
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
