"""The fast SeqConv kernel: the same sums as Eq. 1-2, added in a faster order.

:meth:`seqlite.SeqConv2d.forward_residual` shows the layer as the paper writes it: one
group at a time, group ``i`` concatenating its view of ``[x_0, x_1, ..., x_{i-1}]`` and
running ``F_i`` on it. That order runs ``g`` small convolutions one after the other, and
autograd keeps every group's concatenated view for backward, so a dense layer's
activation memory grows quadratically with the number of groups.

This module computes the same numbers (only the order of the sums differs) and is what
a layer runs while its ``fast`` attribute is true (the default):

* The first convolution of every group (the 3x3 conv, or the bottleneck's 1x1) is linear
  in its view, so the view can be split into *sources* and each source's contribution to
  every group that sees it computed as one wide convolution (a *push*).
* The layer input ``x_0`` is available at once: its contribution to every group is a few
  convolutions over channel chunks of ``x_0`` (chunks skip most of the zeros of the
  windowed layer's block-triangular weight).
* The groups then run in *blocks* of a few groups. Inside a block, each group adds the
  (narrow) contribution of the earlier groups of its own block, then BN-ReLU; after the
  block, its outputs are pushed to all later groups that see them with one convolution.
  Nothing of size ``g x view`` is ever built, so activation memory grows linearly with
  the number of groups.
* Dropout (``Dropout2d`` on each group's view: rate and placement from paper 4.2, channel-wise
  per view is seqlite's choice) differs per group, so it cannot be applied to a shared source:
  every group's mask is drawn first (the same calls, in the same order, as the per-group loop
  makes) and folded into per-sample weights.

The order is fixed by the layer's shape: :func:`make_plan` computes it once per layer
(a :class:`Plan`) and :func:`seqconv_forward` follows it on every call. The kernel takes what
it computes with (the shape, the group transforms, the dropout), not the layer, so this module
needs nothing of :mod:`seqlite.layers` and the layer imports it, not the other way round.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .spec import SeqConvSpec

__all__ = ["Plan", "channel_slice", "dropout_masks", "make_plan", "seqconv_forward"]


class Plan(NamedTuple):
    """The order of the sums of :func:`seqconv_forward`, fixed per layer shape.

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


def block_size(k: int, groups: int) -> int:
    """Groups per block: pushes 16-32 channels wide, few narrow in-block convolutions.

    Chosen by measurement (benchmarks/RESULTS.md): at k=8, two groups per block for
    g=8 and four for g=16 and 24.
    """
    return max(1, min(32 // k, groups // 4))


def make_plan(spec: SeqConvSpec, block: int | None = None, x0_chunks: int | None = None) -> Plan:
    """The :class:`Plan` of a layer of shape ``spec``.

    ``block`` (groups per block, default :func:`block_size`) and ``x0_chunks`` (chunks of
    ``x_0``, default: as wide as a block, at most 8) change the order, never the result.
    """
    in_channels, k, views = spec.in_channels, spec.k, spec.views
    g = len(views)
    block = block_size(k, g) if block is None else block
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
    return Plan(
        blocks, x0_pushes, block_pushes, intra, offsets, column_sizes, push_columns, push_targets, uniform
    )


def channel_slice(features: list[Tensor], start: int, stop: int) -> Tensor:
    """``torch.cat(features, 1)[:, start:stop]``, concatenating only the parts it needs."""
    parts, offset = [], 0
    for f in features:
        width = f.shape[1]
        lo, hi = max(start, offset), min(stop, offset + width)
        if lo < hi:
            parts.append(f if (lo, hi) == (offset, offset + width) else f[:, lo - offset : hi - offset])
        offset += width
    return parts[0] if len(parts) == 1 else torch.cat(parts, 1)


def seqconv_forward(
    spec: SeqConvSpec,
    transforms: Sequence[nn.Module],
    x: Tensor,
    shortcut: Tensor | None = None,
    *,
    plan: Plan | None = None,
    dropout: Callable[[Tensor], Tensor] | None = None,
    keep_raw: bool = True,
) -> tuple[Tensor | None, Tensor]:
    """``(raw, activated)`` of the layer of shape ``spec`` with group ``transforms`` on ``x``, fast.

    The numbers of :meth:`seqlite.SeqConv2d.forward_residual`'s per-group loop. ``transforms``
    are the layer's group transforms (of each, ``first_conv``, ``bn`` and, for "B", ``reduce_bn``
    and ``conv3x3`` are used); ``dropout`` is the ``Dropout2d`` each group applies to its view, or
    ``None`` when nothing is dropped (evaluation, or no dropout). ``keep_raw=False`` skips
    concatenating the raw outputs (``raw`` is then ``None``). ``plan`` defaults to
    :func:`make_plan` of ``spec`` (a layer passes the one it computed when it was built).
    Inputs are not checked here: the layer does that.
    """
    plan = make_plan(spec) if plan is None else plan
    k, bottleneck, views = spec.k, spec.bottleneck, spec.views
    masks = dropout_masks(spec, dropout, x) if dropout is not None else None
    weights = iter(_push_weights(spec, [t.first_conv.weight for t in transforms], plan))
    # terms[b]: block b's pre-activation so far (first-conv output without the block's
    # own groups), and whether it is a fresh sum (not a view of a wider contribution).
    # Contributions are added block by block as they come: the adds are block-sized,
    # nothing is padded to full width, and each contribution is freed at once.
    terms: list[tuple[Tensor, bool] | None] = [None for _ in plan.blocks]
    pieces = torch.split(x, [b - a for (a, b), _ in plan.x0_pushes], 1) if len(plan.x0_pushes) > 1 else [x]
    for piece, ((a, b), targets) in zip(pieces, plan.x0_pushes):
        if targets is not None:
            t0, t1 = targets
            _scatter(plan, k, terms, _push(k, piece, next(weights), a, b, t0, t1, masks), t0, t1)
    if shortcut is not None and not bottleneck:
        _scatter(plan, k, terms, shortcut, 0, spec.groups)
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
            transform = transforms[i]
            lo, hi = plan.intra[i]
            if lo < hi:  # earlier groups of this block inside the view of group i
                start = views[i][0]
                source = channel_slice(block, lo - plan.offsets[g0], hi - plan.offsets[g0])
                if masks is not None:
                    source = source * masks[:, i, lo:hi, None, None]
                weight = transform.first_conv.weight[:, lo - start : hi - start]
                pre = pre + F.conv2d(source, weight, padding=weight.shape[-1] // 2)
            if bottleneck:
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
            _scatter(plan, k, terms, _push(k, activated, next(weights), a, b, t0, t1, masks), t0, t1)
    raw = (raws[0] if len(raws) == 1 else torch.cat(raws, 1)) if keep_raw else None
    return raw, blocks[0] if len(blocks) == 1 else torch.cat(blocks, 1)


def _scatter(plan: Plan, k: int, terms: list[tuple[Tensor, bool] | None], part: Tensor, t0: int, t1: int) -> None:
    """Add ``part`` (first-conv input of groups ``[t0, t1)``) to the blocks it feeds."""
    overlaps = [(b, max(g0, t0), min(g1, t1)) for b, (g0, g1) in enumerate(plan.blocks)]
    overlaps = [(b, lo, hi) for b, lo, hi in overlaps if lo < hi]
    split = torch.split(part, [(hi - lo) * k for _, lo, hi in overlaps], 1) if len(overlaps) > 1 else [part]
    for piece, (b, lo, hi) in zip(split, overlaps):
        g0, g1 = plan.blocks[b]
        if (lo, hi) != (g0, g1):  # only with windows that do not line up with blocks
            piece = F.pad(piece, (0, 0, 0, 0, (lo - g0) * k, (g1 - hi) * k))
        term = terms[b]
        terms[b] = (piece, False) if term is None else (term[0] + piece, True)


def _push_weights(spec: SeqConvSpec, weights: list[Tensor], plan: Plan) -> list[Tensor]:
    """The weight of every push of the plan, in order, cut from all groups' first-conv ``weights``.

    The weights are stacked as one ``(out, in + out - k, kh, kw)`` matrix (zeros
    outside the views) and cut with ``split``, whose backward is one concatenation
    (slicing would fill a zero gradient of the whole matrix per push).
    """
    k, views = spec.k, spec.views
    width = spec.in_channels + spec.out_channels - k
    if plan.uniform_views and len(weights) > 1:
        # Every view is w wide and starts k channels after the previous one: stack the
        # weights and skew them with one padding (row i shifted by i*k), not g paddings.
        g, start0 = spec.groups, views[0][0]
        stacked = torch.stack(weights).permute(1, 3, 4, 0, 2)  # (k, kh, kw, g, w)
        row = width + k
        padded = F.pad(stacked, (start0, row - start0 - stacked.shape[-1]))
        skewed = padded.flatten(-2)[..., : g * width].unflatten(-1, (g, width))
        matrix = skewed.permute(3, 0, 4, 1, 2).reshape(g * k, width, *stacked.shape[1:3])
    else:
        rows = [
            w if (start, stop) == (0, width) else F.pad(w, (0, 0, 0, 0, start, width - stop))
            for w, (start, stop) in zip(weights, views)
        ]
        matrix = rows[0] if len(rows) == 1 else torch.cat(rows, 0)
    columns = torch.split(matrix, plan.column_sizes, 1)
    weights = []
    for column, (t0, t1) in zip(plan.push_columns, plan.push_targets):
        sizes = [n for n in (t0 * k, (t1 - t0) * k, spec.out_channels - t1 * k) if n]
        rows_cut = torch.split(columns[column], sizes, 0) if len(sizes) > 1 else [columns[column]]
        weights.append(rows_cut[1 if t0 else 0])
    return weights


def dropout_masks(spec: SeqConvSpec, dropout: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``Dropout2d`` masks of every group's view, ``(N, g, in + out - k)``, zero outside the views.

    Each group's mask is ``dropout`` (the layer's ``Dropout2d``) applied to ones of shape
    ``(N, view, 1, 1)``: ``Dropout2d`` draws one number per (sample, channel), so this
    draws the same random numbers, in the same order, as the per-group loop applying it
    to each view.
    """
    width = spec.in_channels + spec.out_channels - spec.k
    rows = []
    for start, stop in spec.views:
        noise = dropout(x.new_ones(x.shape[0], stop - start, 1, 1))
        rows.append(F.pad(noise.view(x.shape[0], stop - start), (start, width - stop)))
    return torch.stack(rows, 1)


def _push(
    k: int, source: Tensor, weight: Tensor, a: int, b: int, t0: int, t1: int, masks: Tensor | None
) -> Tensor:
    """Contribution of concatenated channels ``[a, b)`` to the first conv of groups ``[t0, t1)``."""
    padding = weight.shape[-1] // 2
    n, _, h, w = source.shape
    if masks is None or n == 0:  # an empty batch has nothing to drop (and no sample to group by)
        return F.conv2d(source, weight, padding=padding)
    # Each group's view has its own dropout mask per (sample, channel): fold the mask
    # into per-sample weights and run the samples as the groups of one convolution.
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
