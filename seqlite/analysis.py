"""The numbers behind the course's figures and widgets, apart from any drawing.

Which group reads which (:func:`group_connectivity`), the source groups of Fig. 5
(:func:`source_groups`) and how much weight each target puts on each source
(:func:`weight_usage`, raw or with each group's BN folded in: :func:`bn_fold_scale`), parameter
growth with the width (:func:`param_growth`, paper 3.1) and the cost of the layer variants
(:func:`layer_costs`, paper 3.1-3.2), the SeqConv layers of a model (:func:`seqconv_layers`).
Plain functions of a layer or its shape, so they can be tested and printed without matplotlib;
:mod:`seqlite.viz` draws them, :mod:`seqlite.depths` and :mod:`seqlite.widgets` build on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .checks import boolean
from .layers import GroupTransform, SeqConv2d
from .spec import SeqConvSpec, plain_conv_param_count, seqconv_param_count

__all__ = [
    "bn_fold_scale",
    "group_connectivity",
    "layer_costs",
    "param_growth",
    "seqconv_layers",
    "source_groups",
    "weight_usage",
    "weight_usage_measure",
]


def group_connectivity(in_channels: int, out_channels: int, k: int, window: int | None = None) -> Tensor:
    """Which feature group each group reads: a ``(g, g)`` 0/1 matrix.

    Entry ``[i - 1, j]`` is 1 when group ``i`` (1-based, as in Eq. 1) reads at least
    one channel of ``x_j`` (``j = 0`` is the whole layer input). Dense layers give a
    full lower triangle; a window keeps a band next to the diagonal (Eq. 2).
    """
    spec = SeqConvSpec(in_channels, out_channels, k, window)
    g = spec.groups
    starts = [0, *(in_channels + j * k for j in range(g))]  # x_0 then x_1 .. x_g
    conn = torch.zeros(g, g)
    for i, (start, stop) in enumerate(spec.views):
        for j in range(i + 1):
            if max(start, starts[j]) < min(stop, starts[j + 1]):
                conn[i, j] = 1.0
    return conn


def source_groups(in_channels: int, out_channels: int, k: int) -> list[tuple[str, int, int]]:
    """The source feature groups of Fig. 5: ``(label, start, stop)`` in the dense input.

    The layer input ``x_0`` is split into ``k``-channel groups counted back from its end,
    the way the previous layer produced it (paper 3.1: ``x'_0 = [x_{1-g'}, ..., x_0]``),
    so the last ``k`` channels are ``x_{0}`` and the earlier ones ``x_{-1}, x_{-2}, ...``
    (labels are TeX, ready for matplotlib's ``$...$``).
    When ``in_channels`` is not a multiple of ``k`` the *oldest* group, the first
    ``in_channels mod k`` channels, is the narrow one: windows count channels back from
    the end too, so this keeps window edges on group edges. Then come ``x_1 ..
    x_{g-1}`` (``x_g`` is no group's input).
    """
    g = SeqConvSpec(in_channels, out_channels, k).groups
    groups = []
    n0 = math.ceil(in_channels / k)
    for j in range(n0):
        stop = in_channels - (n0 - 1 - j) * k
        groups.append((f"x_{{{j - n0 + 1}}}", max(0, stop - k), stop))
    for j in range(1, g):
        start = in_channels + (j - 1) * k
        groups.append((f"x_{{{j}}}", start, start + k))
    return groups


def bn_fold_scale(bn: nn.BatchNorm2d) -> Tensor:
    """Per-channel factor ``gamma / sqrt(running_var + eps)`` by which ``bn`` multiplies its input.

    In evaluation a BN computes ``scale * (z - running_mean) + beta``: a convolution whose
    output ``z`` it normalises acts, after it, with its weights multiplied by ``scale``
    channel by channel ("folding" the BN into the conv). ``gamma`` is 1 when the BN is not
    affine. Raises ``ValueError`` when the BN keeps no running statistics.
    """
    if not isinstance(bn, nn.BatchNorm2d):
        raise ValueError(f"bn must be a BatchNorm2d, got {type(bn).__name__}")
    if bn.running_var is None:
        raise ValueError("bn keeps no running statistics (track_running_stats=False): nothing to fold")
    with torch.no_grad():
        scale = (bn.running_var.detach().float().cpu() + bn.eps).rsqrt()
        if bn.weight is not None:
            scale = scale * bn.weight.detach().float().cpu()
    return scale


def _first_bn(transform: GroupTransform) -> nn.BatchNorm2d:
    """The BN that normalises the output of ``transform.first_conv`` (see :func:`weight_usage`)."""
    return transform.reduce_bn if transform.bottleneck else transform.bn


def weight_usage(layer: SeqConv2d, *, fold_bn: bool = False) -> Tensor:
    """Fig. 5's numbers: mean absolute weight of ``F_i``'s first conv over each source group.

    Returns a ``(g, S)`` float tensor: row ``i - 1`` is target group ``i``, column ``j``
    the ``j``-th group of :func:`source_groups` (``x_0`` split into ``k``-channel groups,
    then ``x_1 .. x_{g-1}``). The value is the L1 norm of the first conv's weights
    (``GroupTransform.first_conv``: the 3x3 conv, or the 1x1 reduction of SeqConv-B)
    over the source's channels that lie in group ``i``'s view, divided by the number of
    those weights (as DenseNet's Fig. 5). NaN where the source is outside the view.
    Unnormalised; :func:`seqlite.viz.plot_weight_heatmap` normalises for display.

    ``fold_bn=True`` first multiplies each output channel of the first conv by the scale
    ``gamma / sqrt(running_var + eps)`` of the BN that normalises it (:func:`bn_fold_scale`).
    Every group's first conv feeds its *own* BN (paper 3.1: ``F_i`` is Conv-BN-ReLU), and a
    BN undoes any rescaling of the conv before it: weights ``c w`` give the same ``x_i`` as
    ``w`` once the BN's statistics have followed. So raw ``|w|`` can be compared within a
    row (one conv, one BN) but not between rows, nor between layers; the folded weights are
    what reaches ``x_i``, and are comparable. Which BN is folded:

    * basic ``F_i``: ``transform.bn``, the BN after the 3x3 conv. In the residual block's
      layer B (Fig. 2) the shortcut slice is added between the conv and this BN; a BN is
      affine per channel, so ``BN(conv(v) + s)`` still passes the conv's term on multiplied
      by the same scale, and folding it is exact for the conv's weights (its
      ``running_var`` is that of the sum);
    * SeqConv-B: ``transform.reduce_bn``, the BN right after the 1x1 reduction.

    The running statistics are used, so fold a trained model, or one whose statistics were
    estimated on data (``torch.optim.swa_utils.update_bn``): a freshly built BN has
    ``running_var = 1``, and folding it changes nothing but a common factor.
    """
    if not isinstance(layer, SeqConv2d):
        raise ValueError(f"layer must be a seqlite SeqConv2d, got {type(layer).__name__}")
    fold_bn = boolean("fold_bn", fold_bn)
    sources = source_groups(layer.in_channels, layer.out_channels, layer.k)
    usage = torch.full((layer.num_groups, len(sources)), float("nan"))
    with torch.no_grad():
        for i, (transform, (start, stop)) in enumerate(zip(layer.transforms, layer.views)):
            weight = transform.first_conv.weight.detach().float().cpu()
            if fold_bn:
                weight = weight * bn_fold_scale(_first_bn(transform)).view(-1, 1, 1, 1)
            for j, (_, lo, hi) in enumerate(sources):
                lo, hi = max(lo, start), min(hi, stop)
                if lo < hi:
                    usage[i, j] = weight[:, lo - start : hi - start].abs().mean()
    return usage


def weight_usage_measure(fold_bn: bool) -> str:
    """What :func:`weight_usage` measures, in words (a colour bar's or a panel's label)."""
    return "BN-folded mean |w|" if fold_bn else "raw mean |w| (not BN-folded)"


def seqconv_layers(model: nn.Module) -> list[tuple[str, SeqConv2d]]:
    """Every :class:`~seqlite.layers.SeqConv2d` in ``model`` with its qualified name, in order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, SeqConv2d)]


def param_growth(
    in_channels: int, k: int, window: int | None, widths: Sequence[int], bottleneck: bool = False
) -> dict[str, list[int]]:
    """Parameter counts at each output width: ``dense``, ``windowed`` SeqConv and ``plain`` conv.

    Closed form (:func:`~seqlite.spec.seqconv_param_count`): the dense layer grows
    quadratically with the width (paper 3.1, "windowed layers"), the windowed one and
    the plain conv linearly. ``window=None`` uses the paper's WSeqConv window,
    ``in_channels``.
    """
    window = in_channels if window is None else window
    return {
        "dense": [seqconv_param_count(in_channels, w, k, None, bottleneck) for w in widths],
        "windowed": [seqconv_param_count(in_channels, w, k, window, bottleneck) for w in widths],
        "plain": [plain_conv_param_count(in_channels, w) for w in widths],
    }


def layer_costs(
    channels: int, k: int, subgroups: int = 1, windowed: bool = True, spatial: tuple[int, int] = (32, 32)
) -> list[dict[str, Any]]:
    """Parameters and multiply-accumulates of the layer variants of paper 3.1-3.2 at ``C -> C``.

    Rows: plain 3x3 conv, SeqConv (basic ``F_i``), SeqConv-B (bottleneck) and SeqConv-B
    with ``c = subgroups`` (the SeqResNeXt transform). ``windowed`` uses the paper's
    WSeqConv window (``C``). MACs are for one ``spatial`` feature map at stride 1:
    every conv weight is used once per output pixel, so MACs = conv weights x H x W
    (BN and ReLU not counted, as in the paper's FLOPs).
    """
    window = channels if windowed else None
    pixels = spatial[0] * spatial[1]
    g = SeqConvSpec(channels, channels, k, window, subgroups > 1, subgroups).groups
    prefix = "windowed " if windowed else "dense "
    rows = [
        ("plain 3x3 conv", plain_conv_param_count(channels, channels), 2 * channels),
        (prefix + "SeqConv", seqconv_param_count(channels, channels, k, window), 2 * k * g),
        (prefix + "SeqConv-B", seqconv_param_count(channels, channels, k, window, True), 4 * k * g),
    ]
    if subgroups > 1:
        rows.append(
            (
                prefix + f"SeqConv-B, c={subgroups}",
                seqconv_param_count(channels, channels, k, window, True, subgroups),
                4 * k * g,
            )
        )
    return [
        {"layer": name, "params": params, "macs": (params - bn) * pixels} for name, params, bn in rows
    ]
