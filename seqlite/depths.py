"""One layer, many depths: what each group of a SeqConv layer has seen, measured.

Eq. 1 makes group ``i`` of a SeqConv layer read the layer input ``x_0`` and every
earlier group, so inside one layer there are paths from ``x_0`` to ``x_i`` through
``1, 2, ..., i`` transforms (paper 3.1: "the final representation aggregates features
of various depths"). A window (Eq. 2) removes the short ones. Two measurements show it:

* :func:`path_length_counts` counts, for every group, the paths from ``x_0`` by the
  number of transforms ``F`` they go through (a dynamic programme over the group
  connectivity, :func:`seqlite.analysis.group_connectivity`).
* :func:`receptive_fields` runs a real layer and measures each group's *effective*
  receptive field: the gradient of the group's centre output pixel with respect to
  ``x_0`` (Luo et al., 2016), averaged over a few inputs. A path through ``L`` 3x3
  convolutions reaches ``L`` pixels from the centre, so a group's field is as wide as
  its longest path, but how the gradient mass spreads over it depends on how many paths
  of each length there are and on the weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from .analysis import group_connectivity
from .checks import positive_int
from .layers import SeqConv2d

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "ReceptiveFields",
    "field_legend_entries",
    "mass_radius",
    "path_length_counts",
    "path_length_summary",
    "plot_depths",
    "plot_path_lengths",
    "plot_receptive_fields",
    "receptive_fields",
]


def path_length_counts(in_channels: int, out_channels: int, k: int, window: int | None = None) -> Tensor:
    """Paths from ``x_0`` to each group, by length: a ``(g, g + 1)`` int64 matrix.

    Entry ``[i - 1, L]`` is the number of distinct paths from the layer input ``x_0`` to
    group ``i``'s output ``x_i`` that apply exactly ``L`` transforms. A path enters a
    group ``j`` whenever the next group reads at least one channel of ``x_j``
    (:func:`seqlite.analysis.group_connectivity`), so

        ``paths[i][L] = sum over the groups j that F_i reads of paths[j][L - 1]``,

    with one path of length 0 at ``x_0``. Column 0 is always zero. Dense layers (Eq. 1)
    give binomial rows, ``C(i - 1, L - 1)``; every group reads ``x_{i-1}``, so the
    longest path of group ``i`` is ``i`` for every window.
    """
    reads = group_connectivity(in_channels, out_channels, k, window).to(torch.int64)  # (g, g): F_i reads x_j
    g = reads.shape[0]
    paths = torch.zeros(g + 1, g + 1, dtype=torch.int64)  # row j: paths to x_j (row 0 is x_0)
    paths[0, 0] = 1
    for i in range(1, g + 1):
        incoming = reads[i - 1] @ paths[:g]  # sum of the rows of the groups F_i reads
        paths[i, 1:] = incoming[:-1]  # one more transform: shift by one length
    return paths[1:]


def path_length_summary(counts: Tensor) -> dict[str, list[float]]:
    """Per group: ``shortest``, ``longest`` and ``mean`` path length and the number of ``paths``.

    ``counts`` is :func:`path_length_counts`'s matrix.
    """
    lengths = torch.arange(counts.shape[1], dtype=torch.float64)
    total = counts.sum(1)
    present = counts > 0
    shortest = [float(lengths[row].min()) for row in present]
    longest = [float(lengths[row].max()) for row in present]
    mean = ((counts.double() * lengths).sum(1) / total.double()).tolist()
    return {"shortest": shortest, "longest": longest, "mean": mean, "paths": total.double().tolist()}


def mass_radius(grad_map: Tensor, mass: float = 0.95) -> float:
    """Radius of the smallest centred square holding ``mass`` of a map's total ``|value|``.

    ``grad_map`` is ``(H, W)`` with odd sides, centred on the pixel whose field it is.
    The radius is in pixels (Chebyshev distance from the centre); between two whole
    radii it is interpolated linearly in the cumulative mass, so that averages over
    inputs resolve differences smaller than a pixel. ``nan`` for an all-zero map.
    """
    if not 0.0 < mass <= 1.0:
        raise ValueError(f"mass must be in (0, 1], got {mass!r}")
    h, w = grad_map.shape
    if h % 2 == 0 or w % 2 == 0:
        raise ValueError(f"grad_map must have odd height and width (a centre pixel), got {tuple(grad_map.shape)}")
    values = grad_map.abs().double()
    total = values.sum()
    if total == 0:
        return float("nan")
    cy, cx = h // 2, w // 2
    rows = (torch.arange(h) - cy).abs()[:, None]
    cols = (torch.arange(w) - cx).abs()[None, :]
    ring = torch.maximum(rows, cols)  # Chebyshev distance of every pixel
    per_radius = torch.zeros(int(ring.max()) + 1, dtype=torch.float64).index_add_(
        0, ring.flatten(), values.flatten()
    )
    cumulative = per_radius.cumsum(0) / total
    # Guard against rounding: the last entry is 1 up to float error.
    r = int(torch.searchsorted(cumulative, torch.tensor(mass, dtype=torch.float64) - 1e-12))
    r = min(r, len(cumulative) - 1)
    if r == 0:
        return 0.0
    below = float(cumulative[r - 1])
    return (r - 1) + (mass - below) / (float(cumulative[r]) - below)


@dataclass(frozen=True)
class ReceptiveFields:
    """Measured effective receptive fields of the groups of one layer.

    Attributes:
        maps: ``(g, H, W)`` mean over inputs of ``|d (sum of group i's channels at the
            centre pixel) / d x_0|``, summed over the input channels.
        radius: ``(g,)`` :func:`mass_radius` of each input's map, averaged over inputs.
        nonzero: ``(g,)`` pixels of ``x_0`` with a non-zero gradient, averaged over inputs.
        extent: ``(g,)`` largest Chebyshev distance from the centre of a pixel with a
            non-zero gradient, over all inputs: the reach of the longest path.
        mass: the mass fraction :attr:`radius` holds.
    """

    maps: Tensor
    radius: Tensor
    nonzero: Tensor
    extent: Tensor
    mass: float

    @property
    def groups(self) -> int:
        return self.maps.shape[0]


def _with_statistics_of(layer: SeqConv2d, inputs: Tensor) -> SeqConv2d:
    """A copy of ``layer`` whose batch norms hold the statistics of ``inputs`` (one pass, no momentum)."""
    copy = deepcopy(layer)
    for module in copy.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: after one batch, exactly its statistics
    copy.drop_rate = 0.0  # dropout would change the statistics; the copy is only measured
    copy.train()
    with torch.no_grad():
        copy(inputs)
    return copy


def receptive_fields(
    layer: SeqConv2d,
    inputs: Tensor | None = None,
    *,
    samples: int = 4,
    size: int | None = None,
    mass: float = 0.95,
    seed: int = 0,
    statistics: str = "inputs",
) -> ReceptiveFields:
    """Measure each group's effective receptive field in ``layer`` (gradient of the centre pixel).

    For group ``i`` the output summed over its ``k`` channels at the centre pixel is
    differentiated with respect to the layer input ``x_0``; ``|gradient|`` summed over
    the input channels is the group's field on this input.

    Batch norm is frozen while the gradient is taken: in training mode its batch mean and
    variance would tie every output to every pixel of the batch, and every pixel would
    get a gradient. ``statistics`` says which frozen statistics it uses:

    * ``"inputs"`` (default): those of ``inputs`` themselves, computed in one forward
      pass of a copy of the layer in training mode, so every group is normalised as
      training normalises it. A freshly built layer's running statistics are (0, 1),
      which leaves each group's output unnormalised and lets the widest inputs dominate.
    * ``"running"``: the layer's running statistics (the layer in evaluation mode, as
      it is after training).

    ``layer`` itself is not changed (its mode is restored afterwards).

    Args:
        layer: a :class:`~seqlite.layers.SeqConv2d` (dense or windowed, basic or bottleneck).
        inputs: ``(N, in_channels, H, W)`` values of ``x_0`` with odd ``H`` and ``W``;
            by default ``samples`` standard-normal inputs of side ``size``.
        samples: number of random inputs when ``inputs`` is not given.
        size: side of the random inputs; default ``2 g + 3``, so that even the last
            group's field (``g`` pixels each way from the centre with 3x3 convolutions)
            fits inside the zero padding.
        mass: fraction of the gradient mass :attr:`ReceptiveFields.radius` holds.
        seed: seed of the random inputs (a local generator; the global one is untouched).
        statistics: ``"inputs"`` or ``"running"``, the batch-norm statistics (see above).
    """
    if not isinstance(layer, SeqConv2d):
        raise ValueError(f"layer must be a SeqConv2d, got {type(layer).__name__}")
    if statistics not in ("inputs", "running"):
        raise ValueError(f"statistics must be 'inputs' or 'running', got {statistics!r}")
    g = len(layer.transforms)
    weight = next(layer.parameters())
    if inputs is None:
        samples = positive_int("samples", samples)
        size = 2 * g + 3 if size is None else size
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size % 2 == 0:
            raise ValueError(f"size must be a positive odd integer, got {size!r}")
        generator = torch.Generator().manual_seed(seed)
        inputs = torch.randn(samples, layer.in_channels, size, size, generator=generator)
    elif inputs.dim() != 4 or inputs.shape[1] != layer.in_channels or inputs.shape[2] % 2 + inputs.shape[3] % 2 != 2:
        raise ValueError(
            f"inputs must have shape (N, {layer.in_channels}, H, W) with odd H and W, got {tuple(inputs.shape)}"
        )
    n, _, h, w = inputs.shape
    k = layer.k
    if statistics == "inputs":
        layer = _with_statistics_of(layer, inputs.detach().to(weight))
    was_training = layer.training
    layer.eval()
    try:
        with torch.enable_grad():
            # One backward for all groups: the batch holds g copies of the inputs, copy i
            # reads group i's centre. In evaluation mode the samples do not interact.
            x = inputs.detach().to(weight).repeat(g, 1, 1, 1).requires_grad_(True)
            out = layer(x)[:, :, h // 2, w // 2].view(g, n, g, k).sum(-1)  # (copy, sample, group)
            picked = out.diagonal(dim1=0, dim2=2)  # (sample, group): copy i -> group i
            (grad,) = torch.autograd.grad(picked.sum(), x)
    finally:
        layer.train(was_training)
    fields = grad.detach().abs().sum(1).view(g, n, h, w).double().cpu()  # (group, sample, H, W)
    radius = torch.tensor([[mass_radius(fields[i, s], mass) for s in range(n)] for i in range(g)])
    nonzero = (fields > 0).flatten(2).sum(-1).double()  # (group, sample)
    cy, cx = h // 2, w // 2
    ring = torch.maximum((torch.arange(h) - cy).abs()[:, None], (torch.arange(w) - cx).abs()[None, :])
    reached = (fields > 0).any(1)  # (group, H, W)
    extent = torch.tensor([int(ring[reached[i]].max()) if reached[i].any() else -1 for i in range(g)])
    return ReceptiveFields(
        maps=fields.mean(1),
        radius=radius.nanmean(1),
        nonzero=nonzero.mean(1),
        extent=extent,
        mass=mass,
    )


# --------------------------------------------------------------------------- figures


# Edge colour and width of the two squares on every field map (and of their legend entries).
_FIELD_BOX_STYLE = {"ec": "tab:cyan", "lw": 1.2}


def field_legend_entries(mass: float = 0.95) -> list[Artist]:
    """Legend handles for the two squares on the field maps of :func:`plot_receptive_fields`.

    Dashed: the centred square holding ``mass`` of the gradient (the measured radius,
    :attr:`ReceptiveFields.radius`); dotted: the reach of the group's longest path (``i``
    pixels for group ``x_i``: each of its ``i`` transforms has a 3x3 convolution, paper 3.1
    and Eq. 1). Pass them to ``legend(handles=...)``; :func:`plot_receptive_fields` and
    :func:`plot_depths` do.
    """
    from matplotlib.patches import Patch

    return [
        Patch(fill=False, ls="--", label=f"holds {mass:.0%} of the gradient mass (measured radius r)",
              **_FIELD_BOX_STYLE),
        Patch(fill=False, ls=":", label="reach of the longest path ($x_i$: $i$ pixels, one per 3x3 conv)",
              **_FIELD_BOX_STYLE),
    ]


def plot_receptive_fields(fields: ReceptiveFields, axes: Sequence[Axes] | None = None, title: str = "") -> Figure:
    """One panel per group: its measured field (``|gradient|`` of the centre pixel w.r.t. ``x_0``).

    Each map is scaled to its own maximum (the shape, not the size of the gradient, is
    the point); the dashed square holds :attr:`ReceptiveFields.mass` of the mass (the
    average radius), the dotted one is the reach of the longest path (``i`` pixels for
    group ``i`` with 3x3 convolutions). A figure of its own carries a legend of the two
    squares (:func:`field_legend_entries`); given ``axes``, the caller places it.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    g = fields.groups
    if axes is None:
        fig, axes = plt.subplots(1, g, figsize=(1.55 * g + 0.4, 2.4), layout="constrained", squeeze=False)
        axes = list(axes[0])
        plt.close(fig)
        fig.legend(handles=field_legend_entries(fields.mass), loc="outside lower center", ncols=2, fontsize=8,
                   frameon=False)
    else:
        fig = axes[0].figure
    h, w = fields.maps.shape[-2:]
    for i, ax in enumerate(axes[:g]):
        field = fields.maps[i]
        peak = float(field.max())
        ax.imshow((field / peak if peak > 0 else field).numpy(), cmap="magma", vmin=0, vmax=1)
        radius, reach = float(fields.radius[i]), int(fields.extent[i])
        for r, style in ((radius, "--"), (reach + 0.5, ":")):
            if r == r and r >= 0:  # nan when the group's output was zero on every input
                ax.add_patch(
                    Rectangle((w // 2 - r, h // 2 - r), 2 * r, 2 * r, fill=False, ls=style, **_FIELD_BOX_STYLE)
                )
        ax.set_title(f"$x_{{{i + 1}}}$: r={radius:.1f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_path_lengths(counts: Tensor | Mapping[str, Tensor], ax: Axes | None = None) -> Figure:
    """Share of a layer's paths (from ``x_0`` to any group) by the number of transforms on them.

    ``counts`` is :func:`path_length_counts`'s matrix, or several of them by label (drawn
    as side-by-side bars, e.g. dense and windowed).
    """
    import matplotlib.pyplot as plt

    series = {"": counts} if isinstance(counts, Tensor) else dict(counts)
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.0, 2.8), layout="constrained")
        plt.close(fig)
    else:
        fig = ax.figure
    width = 0.8 / len(series)
    longest = max(c.shape[1] for c in series.values())
    for j, (label, c) in enumerate(series.items()):
        per_length = c.sum(0).double()
        share = (per_length / per_length.sum()).tolist()
        lengths = [n + (j - (len(series) - 1) / 2) * width for n in range(len(share))]
        ax.bar(lengths[1:], share[1:], width=width, label=label or None)
    ax.set_xticks(range(1, longest))
    ax.set_xlabel("transforms on the path (path length)")
    ax.set_ylabel("share of the layer's paths")
    if len(series) > 1 or next(iter(series)):
        ax.legend(fontsize=8)
    return fig


def plot_depths(fields: ReceptiveFields, counts: Tensor, title: str = "") -> Figure:
    """Fields per group (top) above the path-length histogram and the per-group summary (bottom).

    Between them, the legend of the squares on the maps (:func:`field_legend_entries`).

    Bottom right: each group's measured radius (:attr:`ReceptiveFields.radius`) beside
    its shortest, mean and longest path length, on the same axis (pixels = transforms,
    as a 3x3 convolution widens the field by one pixel).
    """
    import matplotlib.pyplot as plt

    g = fields.groups
    # Fixed grids, not constrained layout: the widget redraws this figure on every move. The
    # legend of the maps' squares sits in a row of its own between the maps and the plots.
    fig = plt.figure(figsize=(max(8.0, 1.3 * g + 1), 5.0))
    plt.close(fig)
    maps = fig.add_gridspec(1, g, left=0.02, right=0.98, top=0.89 if title else 0.935, bottom=0.62, wspace=0.08)
    plots = fig.add_gridspec(1, 2, left=0.08, right=0.98, top=0.44, bottom=0.1, wspace=0.22)
    plot_receptive_fields(fields, [fig.add_subplot(maps[0, i]) for i in range(g)])
    fig.legend(handles=field_legend_entries(fields.mass), loc="center", bbox_to_anchor=(0.5, 0.545), ncols=2,
               fontsize=8, frameon=False)
    left, right = fig.add_subplot(plots[0, 0]), fig.add_subplot(plots[0, 1])
    plot_path_lengths(counts, ax=left)
    summary = path_length_summary(counts)
    groups = list(range(1, g + 1))
    right.fill_between(groups, summary["shortest"], summary["longest"], color="tab:gray", alpha=0.25,
                       label="path lengths (shortest..longest)")  # fmt: skip
    right.plot(groups, summary["mean"], "o-", color="tab:gray", label="mean path length")
    right.plot(groups, fields.radius.tolist(), "s-", color="tab:red", label=f"measured radius ({fields.mass:.0%} mass)")
    right.set_xticks(groups)
    right.set_xlabel("group i")
    right.set_ylabel("pixels / transforms")
    right.legend(fontsize=8, loc="upper left")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
