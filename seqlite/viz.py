"""Figures of the course: masks, exploded views, parameter growth, weight heatmaps, curves.

Every ``plot_*`` function draws from a layer or its configuration, takes an optional
matplotlib ``ax`` and returns the :class:`~matplotlib.figure.Figure` it drew on. When
no ``ax`` is given the function makes its own figure and detaches it from pyplot at
once (``plt.close``): nothing piles up in pyplot's figure list, a notebook shows the
returned figure exactly once, and :func:`figure_to_png` can still render it.

This module only draws. The numbers behind the figures (``weight_usage``,
``group_connectivity``, ``param_growth``, ``layer_costs``...) are :mod:`seqlite.analysis`;
a run's ``metrics.csv`` is read by :func:`seqlite.train.run_folder.read_metrics`.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

from .analysis import param_growth, source_groups, weight_usage, weight_usage_measure
from .layers import SeqConv2d
from .spec import SeqConvSpec, window_mask
from .train.run_folder import read_metrics

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "figure_to_png",
    "plot_cost_comparison",
    "plot_exploded_view",
    "plot_param_growth",
    "plot_residual_block",
    "plot_runs",
    "plot_training_curves",
    "plot_weight_heatmap",
    "plot_window_mask",
]


_DENSE_COLOR = "tab:red"
_WINDOW_COLOR = "tab:blue"
_PLAIN_COLOR = "tab:gray"


# --------------------------------------------------------------------------- helpers


def _new_axes(ax: Axes | None, figsize: tuple[float, float], ncols: int = 1) -> tuple[Figure, Any]:
    """``(figure, ax)``: the caller's ax, or a new figure detached from pyplot (see module doc)."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt  # lazy: importing seqlite must not pick a GUI backend

    fig, axes = plt.subplots(1, ncols, figsize=figsize, layout="constrained")
    plt.close(fig)
    return fig, axes


def figure_to_png(fig: Figure, dpi: int = 80) -> bytes:
    """Render ``fig`` to PNG bytes (for ``ipywidgets.Image``) and close it.

    The PNG carries no software/version metadata, so the same figure gives the same
    bytes on every run of the same matplotlib.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buffer.getvalue()


# --------------------------------------------------------------------------- masks and views


def plot_window_mask(
    in_channels: int, out_channels: int, k: int, window: int | None = None, ax: Axes | None = None
) -> Figure:
    """The masks ``omega_i`` of Eq. 4 as a matrix: one row per group, one column per channel.

    The image is exactly :func:`seqlite.spec.window_mask` (1 = the channel is in
    group ``i``'s window). Dotted lines separate ``x_0, x_1, ...``; the staircase
    marks where the channels group ``i`` could see at all end (later groups' outputs
    do not exist yet when group ``i`` runs).
    """
    mask = window_mask(in_channels, out_channels, k, window)
    g, channels = mask.shape
    fig, ax = _new_axes(ax, (min(12.0, 2.0 + channels * 0.06), min(6.0, 1.2 + g * 0.35)))
    ax.imshow(mask.numpy(), cmap="Blues", vmin=0.0, vmax=1.25, aspect="auto", interpolation="nearest")
    bounds = [in_channels + j * k for j in range(g - 1)]
    for b in bounds:
        ax.axvline(b - 0.5, color="0.6", lw=0.8, ls=":")
    # Staircase: group i (row i) can see channels up to in + i*k; everything right of it is in the future.
    xs, ys = [], []
    for i in range(g):
        stop = in_channels + i * k - 0.5
        xs += [stop, stop]
        ys += [i - 0.5, i + 0.5]
    ax.plot(xs, ys, color="k", lw=1.2)
    centres = [(in_channels - 1) / 2] + [in_channels + j * k + (k - 1) / 2 for j in range(g - 1)]
    ax.set_xticks(centres, [f"$x_{{{j}}}$" for j in range(g)])
    ax.set_yticks(range(g), [f"$\\omega_{{{i + 1}}}$" for i in range(g)])
    ax.set_xlabel("channels of the dense input $[x_0, x_1, \\dots, x_{g-1}]$")
    where = "dense (Eq. 1)" if window is None else f"window = {window} channels (Eq. 2)"
    ax.set_title(f"Masks $\\omega_i$ (Eq. 4): in={in_channels}, k={k}, g={g}, {where}", fontsize=10)
    return fig


def _group_arrow(ax: Axes, source: int, target: int, box_w: float, box_h: float, rad: float, **style: Any) -> None:
    """An arrow from the box at x = ``source`` to the one at ``target`` (id ``edge{source}->{target}``).

    Neighbours are joined straight, side to side; farther boxes by an arc over the top, so
    the arcs of one row nest instead of crossing the boxes.
    """
    from matplotlib.patches import FancyArrowPatch

    adjacent = target - source == 1
    ax.add_patch(
        FancyArrowPatch(
            (source + box_w / 2 * adjacent, box_h / 2 * (not adjacent)),
            (target - box_w / 2 * adjacent, box_h / 2 * (not adjacent)),
            connectionstyle=f"arc3,rad={0.0 if adjacent else -rad}",
            arrowstyle="-|>",
            gid=f"edge{source}->{target}",
            **style,
        )
    )


def plot_exploded_view(
    layer_or_config: SeqConv2d | SeqConvSpec | Mapping[str, Any], ax: Axes | None = None, *,
    split_input: bool | None = None
) -> Figure:
    """An exploded view of one SeqConv layer (Fig. 1 middle/right, Fig. 2 right).

    Drawn from the configuration only (a :class:`~seqlite.layers.SeqConv2d`, its
    :class:`~seqlite.layers.SeqConvSpec`, or a mapping
    ``in_channels, out_channels, k[, window, bottleneck, subgroups]``): a box for the
    input ``x_0`` and one per group ``F_i -> x_i``; an arrow from each feature group to
    every ``F_i`` that reads it; under each group how many channels it sees and the
    depth of its features (the number of transforms on the longest path from ``x_0``,
    which is ``i``); a bracket for the output ``[x_1, ..., x_g]``.

    ``split_input`` (default: for windowed layers) cuts ``x_0`` into the ``k``-channel
    groups the previous layer made (``[x_{1-g'}, ..., x_0]``, paper 3.1; see
    :func:`source_groups`), so a group whose window covers half of the input is drawn
    reading half of it. A dashed arrow marks a source group read only in part.
    Arrow ids (``gid``) are ``edge{j}->{i}``: ``j`` the source (``0`` the whole input,
    or with a split input ``x_j``, ``j <= 0`` for the parts of ``x_0``), ``i`` the group.
    """
    from matplotlib.patches import FancyBboxPatch

    spec = SeqConvSpec.of(layer_or_config)
    in_channels, out_channels, k, window = spec.in_channels, spec.out_channels, spec.k, spec.window
    g = spec.groups
    views = spec.views
    split = (window is not None) if split_input is None else split_input
    # Sources: (index j, label, first channel, stop) in the dense input [x_0, x_1, ..., x_{g-1}].
    if split:
        parts = source_groups(in_channels, out_channels, k)
        n0 = len(parts) - (g - 1)
        sources = [(j - n0 + 1, label, lo, hi) for j, (label, lo, hi) in enumerate(parts)]
    else:
        sources = [(0, "x_{0}", 0, in_channels)]
        sources += [(j, f"x_{{{j}}}", in_channels + (j - 1) * k, in_channels + j * k) for j in range(1, g)]
    first = sources[0][0]  # position of the leftmost box (x positions are the source indices)
    edges = []  # (source j, target i, partial)
    for i, (start, stop) in enumerate(views, start=1):
        for j, _, lo, hi in sources:
            if j < i and max(lo, start) < min(hi, stop):
                edges.append((j, i, not (start <= lo and hi <= stop)))
    box_w, box_h = 0.62, 0.55
    # Arcs of curvature `rad` peak at about rad/2 x their span above the boxes (equal aspect).
    rad = 0.3
    top = box_h / 2 + rad / 2 * max(i - j for j, i, _ in edges) + 0.1
    n_boxes = g - first + 1
    scale = min(1.3, 13.0 / (n_boxes + 0.2))
    fig, ax = _new_axes(ax, (scale * (n_boxes + 0.2), scale * (top + 1.3) + 0.4))
    transform = "Conv1x1-BN-ReLU-Conv3x3-BN-ReLU" if spec.bottleneck else "Conv3x3-BN-ReLU"
    for j, label, lo, hi in sources:
        if j > 0:
            continue  # x_1 .. x_{g-1} are drawn as the groups' outputs below
        ax.add_patch(
            FancyBboxPatch(
                (j - box_w / 2, -box_h / 2), box_w, box_h, boxstyle="round,pad=0.02",
                facecolor="0.9", edgecolor="0.3", gid="input" if not split else f"input{j}",
            )
        )
        ax.text(j, 0, f"${label}$\n{hi - lo} ch", ha="center", va="center", fontsize=8)
    if split and first < 0:
        # Bracket over the parts: together they are the layer input x_0 of Eq. 1.
        ax.plot([first - box_w / 2, first - box_w / 2, box_w / 2, box_w / 2], [-0.8, -0.88, -0.88, -0.8], color="0.4",
                lw=1)
        ax.text(first / 2, -0.95, f"layer input: {in_channels} ch", ha="center", va="top", fontsize=7, color="0.3")
    for pos in range(1, g + 1):
        ax.add_patch(
            FancyBboxPatch(
                (pos - box_w / 2, -box_h / 2), box_w, box_h, boxstyle="round,pad=0.02",
                facecolor="#fde0c5", edgecolor="0.3", gid=f"group{pos}",
            )
        )
        ax.text(pos, 0, f"$F_{{{pos}}}$\n$x_{{{pos}}}$: {k} ch", ha="center", va="center", fontsize=8)
        start, stop = views[pos - 1]
        ax.text(pos, -0.42, f"sees {stop - start}\ndepth {pos}", ha="center", va="top", fontsize=7)
    for source, target, partial in edges:
        _group_arrow(ax, source, target, box_w, box_h, rad, mutation_scale=8, lw=0.8, alpha=0.8,
                     ls="--" if partial else "-", color=_WINDOW_COLOR if window is not None else _DENSE_COLOR)
    # Output bracket under x_1 .. x_g.
    ax.plot([1 - box_w / 2, 1 - box_w / 2, g + box_w / 2, g + box_w / 2], [-0.8, -0.88, -0.88, -0.8], color="k", lw=1)
    ax.text((1 + g) / 2, -0.95, f"output $[x_1, \\dots, x_{{{g}}}]$: {out_channels} channels", ha="center",
            va="top", fontsize=8)
    if window is None:
        kind = "dense SeqConv (Eq. 1)"
    else:
        in_groups = f" = {window // k} groups" if window % k == 0 else ""
        kind = f"windowed SeqConv, window w = {window} ch{in_groups} (Eq. 2)"
    ax.set_title(f"{kind}\nin={in_channels}, out={out_channels}, k={k}, g={g}; $F_i$ = {transform}", fontsize=9)
    ax.set_xlim(first - 0.6, g + 0.6)
    ax.set_ylim(-1.25, top)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


def plot_residual_block(channels: int = 24, k: int = 8, ax: Axes | None = None) -> Figure:
    """Fig. 2 at block level: two WSeqConv layers ``C -> C`` and the shortcut inside the second.

    One box per feature group, left to right in the order they are computed: the block
    input ``a`` (the activated features, cut into its ``k``-channel groups), the groups
    ``A_1 .. A_g`` of layer A, then ``B_1 .. B_g`` of layer B. Every group reads the
    ``g`` groups before it (window ``C``, Eq. 2): ``B_1`` reads all of layer A's output,
    ``B_2`` the last ``g - 1`` of it and ``B_1``, and so on. Under layer B, the residual
    stream ``s`` (raw, pre-BN) is cut into ``s_1 .. s_g``; ``s_i`` is added to ``B_i``'s
    convolution output **before** its BN-ReLU (pre-activation identity mapping), so
    later groups of B see the updated stream. Arrow ids: ``edge{j}->{i}`` between box
    positions (``j <= 0`` the parts of ``a``), ``shortcut{i}`` into ``B_i``.
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    g = SeqConvSpec(channels, channels, k, channels).groups  # validates the arguments too
    box_w, box_h, rad = 0.66, 0.7, 0.3
    top = box_h / 2 + rad / 2 * g + 0.15
    n_boxes = 3 * g
    scale = min(1.2, 14.0 / (n_boxes + 1))
    fig, ax = _new_axes(ax, (scale * (n_boxes + 1), scale * (top + 2.6) + 0.5))

    def box(x: float, y: float, label: str, color: str, gid: str, h: float = box_h) -> None:
        ax.add_patch(FancyBboxPatch((x - box_w / 2, y - h / 2), box_w, h, boxstyle="round,pad=0.02",
                                    facecolor=color, edgecolor="0.3", gid=gid))
        ax.text(x, y, label, ha="center", va="center", fontsize=8)

    parts = source_groups(channels, channels, k)[:g]  # the k-channel groups of the block input a
    for j, (label, _, _) in zip(range(1 - g, 1), parts):
        box(j, 0, f"$a$: ${label}$", "0.9", f"input{j}")
    for i in range(1, g + 1):
        box(i, 0, f"$A_{{{i}}}$\nConv-BN-\nReLU", "#c6dbef", f"A{i}")
        box(g + i, 0, f"$B_{{{i}}}$\nConv $+\\,s_{{{i}}}$\nBN-ReLU", "#fde0c5", f"B{i}")
        # The residual stream's slice s_i, added before B_i's BN.
        box(g + i, -1.45, f"$s_{{{i}}}$\n{k} ch", "#e5f5e0", f"s{i}", h=0.5)
        ax.add_patch(FancyArrowPatch((g + i, -1.2), (g + i, -box_h / 2), arrowstyle="-|>", mutation_scale=9,
                                     lw=1.2, color="tab:green", gid=f"shortcut{i}"))
    for target in range(1, 2 * g + 1):
        for source in range(target - g, target):
            _group_arrow(ax, source, target, box_w, box_h, rad, mutation_scale=7, lw=0.7, alpha=0.7,
                         color=_WINDOW_COLOR if target <= g else "tab:orange")

    def bracket(x0: float, x1: float, y: float, text: str) -> None:
        ax.plot([x0 - box_w / 2, x0 - box_w / 2, x1 + box_w / 2, x1 + box_w / 2], [y + 0.08, y, y, y + 0.08],
                color="0.3", lw=1)
        ax.text((x0 + x1) / 2, y - 0.07, text, ha="center", va="top", fontsize=8)

    bracket(1 - g, 0, -0.55, f"block input $a$ (activated), {channels} ch")
    bracket(1, g, -0.55, f"layer A: WSeqConv {channels}->{channels}")
    bracket(g + 1, 2 * g, -1.85, f"residual stream $s$ (raw, pre-BN), {channels} ch")
    ax.text(2 * g + box_w / 2 + 0.1, 0, "out: raw $[B_i]$ = new $s$,\nactivated $[B_i]$",
            ha="left", va="center", fontsize=8)
    ax.set_title(f"Residual block (Fig. 2): two WSeqConv {channels}->{channels}, k={k}, g={g}\n"
                 f"every group reads the {g} groups before it (blue: into layer A, orange: into layer B); "
                 "$s_i$ joins $B_i$ before its BN", fontsize=9)
    ax.set_xlim(1 - g - 0.6, 2 * g + 2.2)
    ax.set_ylim(-2.3, top)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


# --------------------------------------------------------------------------- parameter counts


def plot_param_growth(
    in_channels: int = 64,
    k: int = 8,
    window: int | None = None,
    max_out_channels: int | None = None,
    *,
    bottleneck: bool = False,
    mark_out_channels: int | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Parameters of one layer vs its output width: dense vs windowed SeqConv vs plain conv.

    Widths run over ``k, 2k, ..., max_out_channels`` (default ``8 * in_channels``
    rounded to ``k``). ``mark_out_channels`` puts a dot on each curve (the widget's
    current setting). Dense growth is quadratic, the other two linear (paper 3.1).
    """
    SeqConvSpec(in_channels, k, k, window, bottleneck)  # checks the arguments
    window_used = in_channels if window is None else window
    top = max_out_channels if max_out_channels is not None else max(8 * in_channels, 4 * k)
    top = max(k, top - top % k)
    widths = list(range(k, top + 1, k))
    counts = param_growth(in_channels, k, window_used, widths, bottleneck)
    fig, ax = _new_axes(ax, (5.5, 3.6))
    kind = "SeqConv-B" if bottleneck else "SeqConv"
    ax.plot(widths, counts["dense"], color=_DENSE_COLOR, label=f"dense {kind} (Eq. 1)")
    windowed_label = f"windowed {kind}, window {window_used} (Eq. 2)"
    ax.plot(widths, counts["windowed"], color=_WINDOW_COLOR, lw=3, alpha=0.6, label=windowed_label)
    ax.plot(widths, counts["plain"], color=_PLAIN_COLOR, ls="--", label="plain 3x3 conv + BN")
    if mark_out_channels is not None:
        marked = param_growth(in_channels, k, window_used, [mark_out_channels], bottleneck)
        for name, color in (("dense", _DENSE_COLOR), ("windowed", _WINDOW_COLOR), ("plain", _PLAIN_COLOR)):
            ax.plot([mark_out_channels], marked[name], "o", color=color, ms=5)
    ax.set_xlabel(f"output channels (in = {in_channels}, k = {k})")
    ax.set_ylabel("parameters")
    # Plain numbers with thousands separators: a "1e5" offset above the axis is easy to miss.
    from matplotlib.ticker import StrMethodFormatter

    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Parameter growth: quadratic (dense) vs linear", fontsize=10)
    return fig


def plot_cost_comparison(rows: Sequence[Mapping[str, Any]], ax: Axes | None = None) -> Figure:
    """Horizontal bars of parameters for the rows of :func:`layer_costs` (MACs in the labels)."""
    fig, ax = _new_axes(ax, (6.0, 0.6 + 0.5 * len(rows)))
    names = [r["layer"] for r in rows]
    params = [r["params"] for r in rows]
    colors = [_PLAIN_COLOR if "plain" in n else (_WINDOW_COLOR if "windowed" in n else _DENSE_COLOR) for n in names]
    ax.barh(range(len(rows)), params, color=colors)
    ax.set_yticks(range(len(rows)), names, fontsize=8)
    ax.invert_yaxis()
    for y, r in enumerate(rows):
        ax.text(r["params"], y, f" {r['params']:,} / {r['macs'] / 1e6:.1f}M MACs", va="center", fontsize=7)
    ax.set_xlim(0, max(params) * 1.6)
    ax.set_xlabel("parameters")
    ax.set_title("Cost of one C -> C layer", fontsize=10)
    return fig


# --------------------------------------------------------------------------- weight heatmap (Fig. 5)


_NORMALIZATIONS = ("max", "row")
# Cells outside a group's view: hatched mid-grey, a colour coolwarm never takes (its midpoint,
# "used half as much as the maximum", is near white, the paper's colour for "not in the view").
_BLANK = dict(facecolor="0.55", edgecolor="0.3", hatch="///", linewidth=0.0)


def plot_weight_heatmap(
    layer: SeqConv2d, ax: Axes | None = None, *, normalize: str = "max", title: str | None = None, fold_bn: bool = False
) -> Figure:
    """Fig. 5: the weight usage of one (W)SeqConv layer as a heatmap, target vs source group.

    Rows are target groups ``F_1 .. F_g``, columns the source groups of
    :func:`~seqlite.analysis.source_groups`; the numbers are
    :func:`~seqlite.analysis.weight_usage` (``fold_bn`` is passed on: ``True`` folds each
    group's BN scale into its first conv, which makes rows comparable).

    Normalisation (our choice; the paper only says "normalized weights"):
    ``normalize="max"`` (default) divides every value by the layer's largest one, so
    1 (red) is the most-used source of the whole layer and 0 (blue) an unused one;
    ``normalize="row"`` divides each target group's row by its own largest value, to
    compare how each group spreads its weights. The colour scale is fixed to [0, 1].

    Sources outside a target's view are drawn hatched grey, with a legend patch "not in
    the view": the paper draws them white, but coolwarm's midpoint (half the maximum) is
    nearly white too. The colour bar says what is shown (raw or BN-folded, which maximum).
    """
    if normalize not in _NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {_NORMALIZATIONS}, got {normalize!r}")
    usage = weight_usage(layer, fold_bn=fold_bn)
    known = usage.nan_to_num(0.0)
    scale = known.max() if normalize == "max" else known.amax(dim=1, keepdim=True)
    normed = usage / scale.clamp_min(torch.finfo(usage.dtype).tiny)
    sources = source_groups(layer.in_channels, layer.out_channels, layer.k)
    g, s = normed.shape
    fig, ax = _new_axes(ax, (min(12.0, 3.0 + 0.35 * s), min(10.0, 2.2 + 0.35 * g)))
    import matplotlib
    from matplotlib.patches import Patch, Rectangle

    # NaN cells are transparent, so the hatched rectangle under the image shows through them.
    cmap = matplotlib.colormaps["coolwarm"].with_extremes(bad=(0.0, 0.0, 0.0, 0.0))
    ax.add_patch(Rectangle((-0.5, -0.5), s, g, zorder=-1, gid="not-in-view", **_BLANK))
    image = ax.imshow(normed.numpy(), cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    # Label every group up to 24 (Fig. 5's layers have at most 23 sources at r=4); thin out beyond.
    step = max(1, math.ceil(s / 24))
    ax.set_xticks(range(0, s, step), [f"${sources[j][0]}$" for j in range(0, s, step)], fontsize=9, rotation=90)
    ystep = max(1, math.ceil(g / 24))
    ax.set_yticks(range(0, g, ystep), [f"$F_{{{i + 1}}}$" for i in range(0, g, ystep)], fontsize=9)
    ax.set_xlabel("source feature group", fontsize=9)
    ax.set_ylabel("target group", fontsize=9)
    # Upper right: F_1 never sees x_{g-1}, so for g > 1 the legend sits on blank cells.
    ax.legend(handles=[Patch(label="not in the view", **_BLANK)], loc="upper right", fontsize=7, framealpha=0.9)
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label(f"{weight_usage_measure(fold_bn)} / {'layer' if normalize == 'max' else 'row'} max", fontsize=9)
    kind = "dense" if layer.window is None else f"window {layer.window}"
    ax.set_title(title or f"Weight usage (Fig. 5): in={layer.in_channels}, k={layer.k}, {kind}", fontsize=10)
    return fig


# --------------------------------------------------------------------------- training curves


def plot_training_curves(
    metrics: str | os.PathLike | Iterable[Mapping[str, Any]],
    ax: Sequence[Axes] | None = None,
    title: str | None = None,
    *,
    errors_in_percent: bool = True,
) -> Figure:
    """Train/test error and loss vs epoch, as Fig. 4 plots training curves.

    ``metrics`` is the path of the ``metrics.csv`` the training command writes
    (columns :data:`seqlite.metrics.METRICS_COLUMNS`, errors in percent) or its rows as mappings;
    ``errors_in_percent=False`` says the errors are fractions (they are shown in
    percent). A ``test_top5_error`` column, when present, is drawn dotted. ``ax`` is a
    pair of axes (error, loss).
    """
    rows = read_metrics(metrics)
    if ax is not None and len(ax) != 2:
        raise ValueError(f"ax must be a pair of axes (error, loss), got {len(ax)} axes")
    fig, axes = (ax[0].figure, ax) if ax is not None else _new_axes(None, (9.0, 3.4), ncols=2)
    epochs = [r["epoch"] for r in rows]
    percent = 1.0 if errors_in_percent else 100.0
    error_columns = (
        ("train_error", "train", "-"), ("test_error", "test", "--"), ("test_top5_error", "test top-5", ":")
    )
    curves = (
        (axes[0], percent, error_columns, "error (%)"),
        (axes[1], 1.0, (("train_loss", "train", "-"), ("test_loss", "test", "--")), "cross-entropy loss"),
    )
    for axis, factor, columns, ylabel in curves:
        for column, label, style in columns:
            values = [r.get(column, math.nan) * factor for r in rows]
            if not all(math.isnan(v) for v in values):  # absent column, or never evaluated
                axis.plot(epochs, values, style, marker=".", label=label)
        axis.set_xlabel("epoch")
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_runs(
    runs: Mapping[str, str | os.PathLike | Iterable[Mapping[str, Any]]],
    column: str = "test_error",
    *,
    reference: tuple[str, float] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """One column of several training runs on one axis, to compare models.

    ``runs`` maps a label to a ``metrics.csv`` path or its rows (as :func:`read_metrics`
    reads them); ``column`` is any metrics column, e.g. ``test_error`` (percent).
    ``reference=("paper, Table 3", 4.78)`` draws a horizontal dashed line with that label
    (a published final value to read the curves against). Epochs are whole numbers,
    so the epoch axis has integer ticks only.
    """
    from matplotlib.ticker import MaxNLocator

    if not runs:
        raise ValueError("runs must map at least one label to a metrics.csv path or its rows")
    fig, ax = _new_axes(ax, (5.5, 3.4))
    for label, metrics in runs.items():
        rows = read_metrics(metrics)
        if column not in rows[0]:
            raise ValueError(f"column must be one of the metrics columns {sorted(rows[0])}, got {column!r}")
        ax.plot([r["epoch"] for r in rows], [r[column] for r in rows], marker=".", label=label)
    if reference is not None:
        ref_label, value = reference
        ax.axhline(value, color="0.3", ls="--", lw=1, label=ref_label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(column.replace("_", " ") + (" (%)" if column.endswith("error") else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return fig
