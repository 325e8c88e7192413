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
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "GroupTransform",
    "HadamardSeqConv2d",
    "SeqConv2d",
    "SeqConvOutput",
    "check_seqconv_config",
    "group_views",
    "seqconv_as_written",
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
        self._plan = _make_plan(in_channels, out_channels, k, window)

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

        How it is computed (the numbers are those of Eq. 1-2, only the order of the
        sums differs): the first convolution of every group is linear in its view, so
        the view is split into *sources* and each source's contribution to all groups
        that see it is one wide convolution. The layer input ``x_0`` is available at
        once, so its contribution to every group is a few convolutions over channel
        chunks of ``x_0`` (chunks skip most of the zeros of the windowed layer's
        block-triangular weight). The groups then run in blocks of a few groups: inside
        a block, each group adds the (narrow) contribution of the earlier groups of its
        own block, then BN-ReLU; after the block, its outputs are pushed to all later
        groups that see them with one convolution. Nothing of size ``g x view`` is ever
        built, so activation memory grows linearly with the number of groups.
        """
        raw, activated = self._run(x, shortcut, keep_raw=True)
        return SeqConvOutput(raw, activated)

    def forward(self, x: Tensor) -> Tensor:
        return self._run(x, None, keep_raw=False)[1]

    def _run(self, x: Tensor, shortcut: Tensor | None, keep_raw: bool) -> tuple[Tensor | None, Tensor]:
        self._check_input(x, shortcut)
        plan = self._plan
        k, g = self.k, self.groups
        masks = self._dropout_masks(x) if self.training and self.drop_rate > 0 else None
        weights = iter(self._push_weights())
        # terms[b]: block b's pre-activation so far (first-conv output without the block's
        # own groups), and whether it is a fresh sum (not a view of a wider contribution).
        # Contributions are added block by block as they come: the adds are block-sized,
        # nothing is padded to full width, and each contribution is freed at once.
        terms: list[tuple[Tensor, bool] | None] = [None for _ in plan.blocks]
        pieces = torch.split(x, [b - a for (a, b), _ in plan.x0_pushes], 1) if len(plan.x0_pushes) > 1 else [x]
        for piece, ((a, b), targets) in zip(pieces, plan.x0_pushes):
            if targets is not None:
                t0, t1 = targets
                self._scatter(terms, self._push(piece, next(weights), a, b, t0, t1, masks), t0, t1)
        if shortcut is not None and not self.bottleneck:
            self._scatter(terms, shortcut, 0, g)
        raws: list[Tensor] = []
        blocks: list[Tensor] = []
        for b_index, ((g0, g1), push) in enumerate(zip(plan.blocks, plan.block_pushes)):
            pre_block, fresh = terms[b_index]
            if not fresh:
                # BN keeps its input for backward: a view would keep the whole
                # contribution (later blocks' channels too) alive.
                pre_block = pre_block.clone()
            terms[b_index] = None
            # split (not slice): its backward is one concatenation, not a zero-filled
            # block-sized gradient per group
            pres = torch.split(pre_block, k, 1) if g1 - g0 > 1 else [pre_block]
            block: list[Tensor] = []
            for i, pre in zip(range(g0, g1), pres):
                transform = self.transforms[i]
                lo, hi = plan.intra[i]
                if lo < hi:  # earlier groups of this block inside the view of group i
                    start = self.views[i][0]
                    source = _channel_slice(block, lo - plan.offsets[g0], hi - plan.offsets[g0])
                    if masks is not None:
                        source = source * masks[:, i, lo:hi, None, None]
                    weight = transform.first_conv.weight[:, lo - start : hi - start]
                    pre = pre + F.conv2d(source, weight, padding=weight.shape[-1] // 2)
                if self.bottleneck:
                    raw = transform.conv3x3(torch.relu(transform.reduce_bn(pre)))
                    if shortcut is not None:
                        raw = raw + shortcut[:, i * k : (i + 1) * k]
                else:
                    raw = pre
                if keep_raw:
                    raws.append(raw)
                block.append(torch.relu(transform.bn(raw)))
            activated = block[0] if len(block) == 1 else torch.cat(block, 1)
            blocks.append(activated)
            if push is not None:
                (a, b), (t0, t1) = push
                self._scatter(terms, self._push(activated, next(weights), a, b, t0, t1, masks), t0, t1)
        raw = (raws[0] if len(raws) == 1 else torch.cat(raws, 1)) if keep_raw else None
        return raw, blocks[0] if len(blocks) == 1 else torch.cat(blocks, 1)

    def _scatter(self, terms: list[tuple[Tensor, bool] | None], part: Tensor, t0: int, t1: int) -> None:
        """Add ``part`` (first-conv input of groups ``[t0, t1)``) to the blocks it feeds."""
        k = self.k
        overlaps = [(b, max(g0, t0), min(g1, t1)) for b, (g0, g1) in enumerate(self._plan.blocks)]
        overlaps = [(b, lo, hi) for b, lo, hi in overlaps if lo < hi]
        split = torch.split(part, [(hi - lo) * k for _, lo, hi in overlaps], 1) if len(overlaps) > 1 else [part]
        for piece, (b, lo, hi) in zip(split, overlaps):
            g0, g1 = self._plan.blocks[b]
            if (lo, hi) != (g0, g1):  # only with windows that do not line up with blocks
                piece = F.pad(piece, (0, 0, 0, 0, (lo - g0) * k, (g1 - hi) * k))
            term = terms[b]
            terms[b] = (piece, False) if term is None else (term[0] + piece, True)

    def _push_weights(self) -> list[Tensor]:
        """The weight of every push of the plan, in order, cut from all groups' first-conv weights.

        The weights are stacked as one ``(out, in + out - k, kh, kw)`` matrix (zeros
        outside the views) and cut with ``split``, whose backward is one concatenation
        (slicing would fill a zero gradient of the whole matrix per push).
        """
        plan = self._plan
        width = self.in_channels + self.out_channels - self.k
        weights = [t.first_conv.weight for t in self.transforms]
        if plan.uniform_views and len(weights) > 1:
            # Every view is w wide and starts k channels after the previous one: stack the
            # weights and skew them with one padding (row i shifted by i*k), not g paddings.
            g, k, start0 = self.groups, self.k, self.views[0][0]
            stacked = torch.stack(weights).permute(1, 3, 4, 0, 2)  # (k, kh, kw, g, w)
            row = width + k
            padded = F.pad(stacked, (start0, row - start0 - stacked.shape[-1]))
            skewed = padded.flatten(-2)[..., : g * width].unflatten(-1, (g, width))
            matrix = skewed.permute(3, 0, 4, 1, 2).reshape(g * k, width, *stacked.shape[1:3])
        else:
            rows = [
                w if (start, stop) == (0, width) else F.pad(w, (0, 0, 0, 0, start, width - stop))
                for w, (start, stop) in zip(weights, self.views)
            ]
            matrix = rows[0] if len(rows) == 1 else torch.cat(rows, 0)
        columns = torch.split(matrix, plan.column_sizes, 1)
        weights = []
        for column, (t0, t1) in zip(plan.push_columns, plan.push_targets):
            sizes = [n for n in (t0 * self.k, (t1 - t0) * self.k, self.out_channels - t1 * self.k) if n]
            rows_cut = torch.split(columns[column], sizes, 0) if len(sizes) > 1 else [columns[column]]
            weights.append(rows_cut[1 if t0 else 0])
        return weights

    def _dropout_masks(self, x: Tensor) -> Tensor:
        """``Dropout2d`` masks of every group's view, ``(N, g, in + out - k)``, zero outside the views.

        Each group's mask is :attr:`dropout` applied to ones of shape ``(N, view, 1, 1)``:
        ``Dropout2d`` draws one number per (sample, channel), so this draws the same random
        numbers, in the same order, as a per-group loop applying it to each view.
        """
        width = self.in_channels + self.out_channels - self.k
        rows = []
        for start, stop in self.views:
            noise = self.dropout(x.new_ones(x.shape[0], stop - start, 1, 1))
            rows.append(F.pad(noise.view(x.shape[0], stop - start), (start, width - stop)))
        return torch.stack(rows, 1)

    def _push(
        self, source: Tensor, weight: Tensor, a: int, b: int, t0: int, t1: int, masks: Tensor | None
    ) -> Tensor:
        """Contribution of concatenated channels ``[a, b)`` to the first conv of groups ``[t0, t1)``."""
        k = self.k
        padding = weight.shape[-1] // 2
        if masks is None:
            return F.conv2d(source, weight, padding=padding)
        # Each group's view has its own dropout mask per (sample, channel): fold the mask
        # into per-sample weights and run the samples as the groups of one convolution.
        n, _, h, w = source.shape
        groups, width = t1 - t0, b - a
        if weight.shape[-2:] == (1, 1):
            # 1x1 (the bottleneck's reduce conv): one matrix product per sample; CPU convolution
            # libraries run a grouped convolution of this shape 1.5-3x slower (benchmarks/RESULTS.md).
            sample_weights = weight.reshape(1, groups, k, width) * masks[:, t0:t1, None, a:b]
            out = torch.bmm(sample_weights.reshape(n, groups * k, width), source.reshape(n, width, h * w))
            return out.view(n, groups * k, h, w)
        sample_weights = weight.reshape(1, groups, k, width, *weight.shape[-2:]) * masks[
            :, t0:t1, None, a:b, None, None
        ]
        out = F.conv2d(
            source.reshape(1, n * width, h, w),
            sample_weights.reshape(n * groups * k, width, *weight.shape[-2:]),
            padding=padding,
            groups=n,
        )
        return out.view(n, groups * k, h, w)


class _Plan(NamedTuple):
    """The order of the sums of :meth:`SeqConv2d.forward_residual`, fixed per layer shape.

    ``x0_pushes`` and ``block_pushes`` are ``((a, b), (t0, t1))``: concatenated channels
    ``[a, b)`` of ``[x_0, x_1, ..., x_{g-1}]`` feed groups ``[t0, t1)`` in one convolution
    (``x0_pushes`` split ``x_0`` into chunks; a chunk no group sees has targets ``None``).
    ``intra[i]`` is the channel range of group ``i``'s own block that it sees.
    ``column_sizes`` splits the concatenated channels at the pushes' sources;
    ``push_columns`` and ``push_targets`` say, per push in order, which piece and groups.
    ``uniform_views``: every view is equally wide and starts ``k`` after the previous one.
    """

    blocks: list[tuple[int, int]]
    x0_pushes: list[tuple[tuple[int, int], tuple[int, int]]]
    block_pushes: list[tuple[tuple[int, int], tuple[int, int]] | None]
    intra: list[tuple[int, int]]
    offsets: list[int]
    column_sizes: list[int]
    push_columns: list[int]
    push_targets: list[tuple[int, int]]
    uniform_views: bool


def _block_size(k: int, groups: int) -> int:
    """Groups per block: pushes 16-32 channels wide, few narrow in-block convolutions.

    Chosen by measurement (benchmarks/RESULTS.md): at k=8, two groups per block for
    g=8 and four for g=16 and 24.
    """
    return max(1, min(32 // k, groups // 4))


def _make_plan(
    in_channels: int,
    out_channels: int,
    k: int,
    window: int | None,
    block: int | None = None,
    x0_chunks: int | None = None,
) -> _Plan:
    views = group_views(in_channels, out_channels, k, window)
    g = len(views)
    block = _block_size(k, g) if block is None else block
    offsets = [in_channels + j * k for j in range(g + 1)]  # where x_{j+1} starts in the concatenation

    def targets(a: int, b: int, first: int) -> tuple[int, int] | None:
        seen = [i for i in range(first, g) if views[i][0] < b and views[i][1] > a]
        return (seen[0], seen[-1] + 1) if seen else None

    # x_0 in chunks as wide as a block (at most 8 chunks); adjacent chunks with the same
    # targets merge (dense layers: one chunk, one convolution).
    chunks = x0_chunks if x0_chunks is not None else min(8, max(1, -(-in_channels // (block * k))))
    bounds = sorted({round(j * in_channels / chunks) for j in range(chunks + 1)})
    x0_pushes: list[tuple[tuple[int, int], tuple[int, int]]] = []
    for a, b in zip(bounds, bounds[1:]):
        t = targets(a, b, 0)
        if x0_pushes and x0_pushes[-1][1] == t:
            x0_pushes[-1] = ((x0_pushes[-1][0][0], b), t)
        else:
            x0_pushes.append(((a, b), t))
    blocks = [(g0, min(g, g0 + block)) for g0 in range(0, g, block)]
    block_pushes = []
    for g0, g1 in blocks:
        t = targets(offsets[g0], offsets[g1], g1)
        block_pushes.append(None if t is None else ((offsets[g0], offsets[g1]), t))
    intra = []
    for g0, g1 in blocks:
        for i in range(g0, g1):
            intra.append((max(views[i][0], offsets[g0]), views[i][1]) if i > g0 else (0, 0))
    pushes = [p for p in x0_pushes + block_pushes if p is not None and p[1] is not None]
    cuts = sorted({0, offsets[g - 1]} | {e for (a, b), _ in pushes for e in (a, b)})
    column_sizes = [b - a for a, b in zip(cuts, cuts[1:])]
    push_columns = [cuts.index(a) for (a, _), _ in pushes]
    push_targets = [t for _, t in pushes]
    uniform = all(v == (views[0][0] + i * k, views[0][1] + i * k) for i, v in enumerate(views))
    return _Plan(
        blocks, x0_pushes, block_pushes, intra, offsets, column_sizes, push_columns, push_targets, uniform
    )


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


def seqconv_as_written(layer: SeqConv2d, x: Tensor, shortcut: Tensor | None = None) -> SeqConvOutput:
    """``layer``'s output computed group by group, exactly as Eq. 1-2 and Fig. 2 write it.

    For each group: take its view of ``[x_0, x_1, ..., x_{i-1}]``, apply ``Dropout2d``
    (training only), run ``F_i`` up to its last conv, add the shortcut slice, BN, ReLU.
    Same weights and numbers as ``layer.forward_residual`` (which sums the same terms in
    a faster order); this loop is the reference the fast path is tested against, the
    baseline of ``benchmarks/``, and what :func:`seqlite.count_flops` counts, so the
    count is the architecture's multiply-accumulates rather than the fast path's.
    """
    layer._check_input(x, shortcut)
    features = [x]  # [x_0, activated x_1, ...]; concatenated lazily per view
    raws = []
    for i, (transform, (start, stop)) in enumerate(zip(layer.transforms, layer.views)):
        view = _channel_slice(features, start, stop)
        raw = transform.conv(layer.dropout(view))
        if shortcut is not None:
            raw = raw + shortcut[:, i * layer.k : (i + 1) * layer.k]
        raws.append(raw)
        features.append(torch.relu(transform.bn(raw)))
    return SeqConvOutput(torch.cat(raws, 1), torch.cat(features[1:], 1))


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
        weight = next(layer.parameters())
        masked = cls(
            layer.in_channels,
            layer.out_channels,
            layer.k,
            window=layer.window,
            bottleneck=layer.bottleneck,
            subgroups=layer.subgroups,
        ).to(device=weight.device, dtype=weight.dtype)
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
        dense = self.dense
        start, stop = group_views(dense.in_channels, dense.out_channels, dense.k, self.window)[group]
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
