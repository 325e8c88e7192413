"""Interactive panels for the course notebooks (ipywidgets 7.7 and 8).

Each panel *is* an ipywidgets ``VBox`` holding its controls (sliders, dropdowns), an
``HTML`` widget with the parameter counts (:attr:`Panel.text`) and an ``Image``
widget with the figure as PNG bytes (:attr:`Panel.image`), so a notebook shows it
the way it shows any widget (``panel`` as a cell's last line, or
``IPython.display.display(panel)``) with ipywidgets 7 (Colab's) and 8 alike. Moving a
control calls :meth:`Panel.update`, which recomputes closed-form counts and redraws
one matplotlib figure (a fraction of a second; no model is built). Without a front
end (nbval, tests) set a control's ``value`` in code and read ``panel.text.value`` /
``panel.image.value``; in a browser the panel is found by its CSS class
(``seqlite-panel`` plus ``seqlite-<name>``) and its controls by their ``description``.

Slider ranges are bounded so that a redraw stays quick (the exploded view draws
``g (g + 1) / 2`` arrows; the depths panel builds and runs its layer); a value outside what a
control offers is clamped with a ``UserWarning`` that names the control, the value asked for
and the value used. Every panel checks its counts the same way (:func:`seqlite.panel.count_slider`;
the machinery of a panel is :mod:`seqlite.panel`).

Panels: :class:`SeqConvPanel` (notebook 02, ``g`` and ``k``), :class:`WindowPanel`
(notebook 03, ``g``, ``k`` and the window), :class:`DepthsPanel` (notebook 03b, paths and
receptive fields), :class:`BottleneckPanel` (notebook 04, bottleneck and subgroups costs) and
:class:`LayerPicker` (notebook 08, Fig. 5 heatmap of any SeqConv layer of a model).
"""

from __future__ import annotations

import html
import warnings
from typing import Any

import ipywidgets as widgets
import torch
from torch import nn

from . import analysis, checks, viz
from .checks import boolean, positive_int
from .panel import Panel, WarningSlider, checked_in_channels, clamp, count_slider, slider, table
from .spec import group_views, plain_conv_param_count, seqconv_param_count

__all__ = ["BottleneckPanel", "DepthsPanel", "LayerPicker", "Panel", "SeqConvPanel", "WindowPanel", "layer_picker"]

# Slider bounds that keep one redraw quick. The exploded view (SeqConvPanel) draws one arrow per
# (group, source) pair, g (g + 1) / 2 of them: about a second at g = 24 on one laptop core, and
# over a minute at g = 200. The window mask (WindowPanel) is a g x (in + g k) image: k and the
# input width are bounded so it stays a few thousand columns.
MAX_GROUPS = 24
MAX_K = 256
MAX_IN_CHANNELS = 1024


def _group_sliders(panel: str, g: Any, k: Any, max_groups: Any, max_k: Any,
                   limits: tuple[int, int] = (MAX_GROUPS, MAX_K), why: tuple[str, str] | None = None
                   ) -> tuple[WarningSlider, WarningSlider]:
    """The ``g`` and ``k`` sliders of a panel, bounded by ``limits`` (:func:`seqlite.panel.count_slider`)."""
    why = why or (f"the exploded view draws g(g+1)/2 arrows; beyond g={limits[0]} a redraw takes seconds",
                  "beyond it the slider is too coarse and the window mask too wide")
    return (count_slider(panel, "groups g", "g", g, "max_groups", max_groups, limits[0], why[0]),
            count_slider(panel, "channels per group k", "k", k, "max_k", max_k, limits[1], why[1]))


class SeqConvPanel(Panel):
    """Notebook 02: a dense SeqConv layer (Eq. 1) for chosen ``g`` and ``k``.

    Shows the exploded view (Fig. 1 middle) and where the layer sits on the
    quadratic parameter-growth curve, with the counts of the dense layer and of a
    plain 3x3 convolution of the same width. The sliders reach at least ``g`` and
    ``k`` and at most :data:`MAX_GROUPS` and :data:`MAX_K` (clamped with a warning).
    """

    css_name = "seqconv-panel"

    def __init__(self, in_channels: int = 16, g: int = 4, k: int = 8, max_groups: int = 12, max_k: int = 32):
        self.in_channels = checked_in_channels(in_channels, MAX_IN_CHANNELS)
        self.g, self.k = _group_sliders(type(self).__name__, g, k, max_groups, max_k)
        super().__init__({"g": self.g, "k": self.k})

    def describe(self) -> str:
        g, k, c = self.g.value, self.k.value, self.in_channels
        dense = seqconv_param_count(c, g * k, k)
        plain = plain_conv_param_count(c, g * k)
        views = ", ".join(str(stop - start) for start, stop in group_views(c, g * k, k))
        return (
            f"<b>Dense SeqConv {c} &rarr; {g * k}</b> (g={g}, k={k}): <b>{dense:,}</b> parameters; "
            f"a plain 3x3 conv {c} &rarr; {g * k} has {plain:,} ({dense / plain:.2f}x).<br>"
            f"Channels each group sees: {views}. The deepest features (x<sub>{g}</sub>) "
            f"went through {g} transforms."
        )

    def draw(self) -> Any:
        import matplotlib.pyplot as plt

        g, k, c = self.g.value, self.k.value, self.in_channels
        fig, (left, right) = plt.subplots(
            1, 2, figsize=(12, 3.6), width_ratios=[2.2, 1], layout="constrained"
        )
        plt.close(fig)
        viz.plot_exploded_view({"in_channels": c, "out_channels": g * k, "k": k}, ax=left)
        viz.plot_param_growth(c, k, None, max(16 * k, 2 * g * k), mark_out_channels=g * k, ax=right)
        return fig


class WindowPanel(Panel):
    """Notebook 03: the window masks (Eq. 4) and parameter growth for ``g``, ``k`` and ``w``.

    Left: the masks ``omega_i`` as a matrix; right: parameters vs width for the dense
    layer, the windowed layer with this window and a plain conv, with the current
    width marked. Slider bounds as in :class:`SeqConvPanel`; the window slider runs
    from 1 to ``in_channels + g_max * k_max`` (a window that wide is dense).
    """

    css_name = "window-panel"

    def __init__(
        self, in_channels: int = 16, g: int = 6, k: int = 4, window: int = 16, max_groups: int = 16, max_k: int = 16
    ):
        self.in_channels = checked_in_channels(in_channels, MAX_IN_CHANNELS)
        self.g, self.k = _group_sliders(type(self).__name__, g, k, max_groups, max_k)
        top = self.in_channels + self.g.max * self.k.max
        window = positive_int("window", window)
        window = clamp(type(self).__name__, "window", window, 1, top, "wider is the same as dense")
        self.window = slider("window w (channels)", window, 1, top)
        super().__init__({"g": self.g, "k": self.k, "window": self.window})

    def describe(self) -> str:
        g, k, w, c = self.g.value, self.k.value, self.window.value, self.in_channels
        dense = seqconv_param_count(c, g * k, k)
        windowed = seqconv_param_count(c, g * k, k, w)
        plain = plain_conv_param_count(c, g * k)
        rows = [
            ["dense SeqConv (Eq. 1)", f"{dense:,}"],
            [f"windowed SeqConv, w={w} (Eq. 2)", f"{windowed:,}"],
            ["plain 3x3 conv", f"{plain:,}"],
        ]
        note = " (the window covers every view: same as dense)" if windowed == dense else ""
        note = " (w = in: exactly a plain conv's weights, plus BN)" if w == c and not note else note
        return f"<b>in={c}, out={g * k}, k={k}, g={g}</b>{note}" + table(["layer", "parameters"], rows)

    def draw(self) -> Any:
        import matplotlib.pyplot as plt

        g, k, w, c = self.g.value, self.k.value, self.window.value, self.in_channels
        fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), layout="constrained")
        plt.close(fig)
        viz.plot_window_mask(c, g * k, k, w, ax=left)
        viz.plot_param_growth(c, k, w, max(16 * k, 2 * g * k), mark_out_channels=g * k, ax=right)
        return fig


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


class BottleneckPanel(Panel):
    """Notebook 04: cost of a ``C -> C`` layer: plain conv, SeqConv, SeqConv-B, SeqConv-B with ``c``.

    The table gives parameters and multiply-accumulates on a 32x32 map
    (:func:`seqlite.analysis.layer_costs`); the figure compares the parameters as bars.
    ``k`` is one of :attr:`K_OPTIONS`, ``subgroups`` a divisor of ``k``; the width slider
    runs over :attr:`WIDTHS` (a width outside it is clamped with a warning).
    """

    css_name = "bottleneck-panel"
    K_OPTIONS = (4, 8, 16, 32, 64)
    WIDTHS = (16, 512)

    def __init__(self, channels: int = 64, k: int = 16, subgroups: int = 4, windowed: bool = True):
        channels = clamp(type(self).__name__, "channels", positive_int("channels", channels), *self.WIDTHS)
        if isinstance(k, bool) or k not in self.K_OPTIONS:
            raise ValueError(f"k must be one of {self.K_OPTIONS}, got {k!r}")
        if isinstance(subgroups, bool) or subgroups not in _divisors(int(k)):
            raise ValueError(f"subgroups must divide k={k}: one of {tuple(_divisors(int(k)))}, got {subgroups!r}")
        boolean("windowed", windowed)
        self.channels = slider("width C", channels, *self.WIDTHS, step=16)
        self.k = widgets.Dropdown(options=list(self.K_OPTIONS), value=int(k), description="channels per group k")
        self.subgroups = widgets.Dropdown(options=_divisors(int(k)), value=int(subgroups), description="subgroups c")
        self.windowed = widgets.Checkbox(value=windowed, description="windowed (w = C)")
        for w in (self.k, self.subgroups):
            w.style = {"description_width": "initial"}
        self._holding = False
        self.k.observe(self._on_k, names="value")  # registered first: options change before the redraw
        super().__init__(
            {"channels": self.channels, "k": self.k, "subgroups": self.subgroups, "windowed": self.windowed}
        )

    def _on_k(self, change: dict) -> None:
        options = _divisors(change["new"])
        value = self.subgroups.value if self.subgroups.value in options else max(d for d in options if d <= 8)
        # Assigning options resets the value to the first option; put the kept value back
        # without redrawing in between (k's own observer redraws once afterwards).
        self._holding = True
        try:
            self.subgroups.options = options
            self.subgroups.value = value
        finally:
            self._holding = False

    def rows(self) -> list[dict[str, Any]]:
        """The cost table (see :func:`seqlite.analysis.layer_costs`); ``C`` is rounded up to a multiple of ``k``."""
        k = self.k.value
        channels = -(-self.channels.value // k) * k
        return analysis.layer_costs(channels, k, self.subgroups.value, self.windowed.value)

    def describe(self) -> str:
        rows = self.rows()
        plain = rows[0]["params"]
        k = self.k.value
        channels = -(-self.channels.value // k) * k
        header = f"<b>One {channels} &rarr; {channels} layer, k={k}, c={self.subgroups.value}</b>"
        if channels != self.channels.value:
            header += f" (C rounded up to a multiple of k from {self.channels.value})"
        numbers = table(
            ["layer", "parameters", "MACs (32x32)", "vs plain"],
            [[r["layer"], f"{r['params']:,}", f"{r['macs'] / 1e6:.1f}M", f"{r['params'] / plain:.2f}x"] for r in rows],
        )
        return header + numbers

    def draw(self) -> Any:
        return viz.plot_cost_comparison(self.rows())


def _pairs_in_view(layer: nn.Module) -> torch.Tensor:
    """``(g, S)`` bool: which (target group, source group) pairs of Fig. 5 lie in the target's view.

    From the configuration, not from the weights, so that NaN weights are not mistaken for
    pairs outside the view (:func:`seqlite.analysis.weight_usage` marks both with NaN).
    """
    sources = analysis.source_groups(layer.in_channels, layer.out_channels, layer.k)
    views = group_views(layer.in_channels, layer.out_channels, layer.k, layer.window)
    return torch.tensor([[max(lo, start) < min(hi, stop) for _, lo, hi in sources] for start, stop in views])


class LayerPicker(Panel):
    """Notebook 08: pick any SeqConv layer of ``model`` and see its Fig. 5 heatmap.

    The dropdown lists :func:`seqlite.analysis.seqconv_layers` by name; it starts at the
    first residual block's second layer (``layer_b``), the layer the paper plots, when
    there is one. Pairs whose weights are not finite (a diverged model) are counted and
    named in the text instead of breaking the panel. ``fold_bn`` is passed to
    :func:`seqlite.analysis.weight_usage` and :func:`seqlite.viz.plot_weight_heatmap`:
    ``True`` folds each group's BN scale into its first conv (comparable rows).
    """

    css_name = "layer-picker"

    def __init__(self, model: nn.Module, normalize: str = "max", fold_bn: bool = False):
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.layers = dict(analysis.seqconv_layers(model))
        if not self.layers:
            raise ValueError(f"model must contain at least one SeqConv2d layer; {type(model).__name__} has none")
        if normalize not in ("max", "row"):
            raise ValueError(f"normalize must be 'max' or 'row', got {normalize!r}")
        self.fold_bn = boolean("fold_bn", fold_bn)
        names = list(self.layers)
        start = next((n for n in names if n.endswith("layer_b")), names[0])
        self.layer = widgets.Dropdown(options=names, value=start, description="SeqConv layer")
        self.layer.style = {"description_width": "initial"}
        self.normalize = widgets.ToggleButtons(
            options=[("layer max", "max"), ("row max", "row")], value=normalize, description="normalise by"
        )
        super().__init__({"layer": self.layer, "normalize": self.normalize})

    def describe(self) -> str:
        layer = self.layers[self.layer.value]
        usage = analysis.weight_usage(layer, fold_bn=self.fold_bn)
        in_view = _pairs_in_view(layer)
        finite = usage[in_view & usage.isfinite()]
        pairs, broken = int(in_view.sum()), int(in_view.sum()) - finite.numel()
        text = f"<b>{html.escape(self.layer.value)}</b>: {html.escape(layer.extra_repr())}<br>"
        if finite.numel():
            measure = analysis.weight_usage_measure(self.fold_bn)
            text += f"{measure} per (target, source) pair: min {finite.min():.4f}, max {finite.max():.4f}, "
        text += f"{pairs} pairs in view"
        if broken:
            text += (
                f"; <b>{broken} of them have non-finite weights (NaN or inf)</b>: the layer's weights "
                "diverged, so the heatmap cannot rank its sources"
            )
        return text

    def draw(self) -> Any:
        layer = self.layers[self.layer.value]
        with warnings.catch_warnings():
            # All-NaN usage makes numpy/matplotlib warn while drawing; the text already says why.
            warnings.simplefilter("ignore", RuntimeWarning)
            return viz.plot_weight_heatmap(
                layer, normalize=self.normalize.value, title=self.layer.value, fold_bn=self.fold_bn
            )


def layer_picker(model: nn.Module, normalize: str = "max", fold_bn: bool = False) -> LayerPicker:
    """A :class:`LayerPicker` over every SeqConv2d layer of ``model`` (notebook 08); ``fold_bn`` as there."""
    return LayerPicker(model, normalize, fold_bn)


class DepthsPanel(Panel):
    """Notebook 03b: one layer, many depths, measured on a layer built and run at every move.

    For the chosen ``g``, ``k`` and window the panel builds a ``SeqConv2d(in, g k, k)``
    with the paper's initialisation (fixed seed), measures each group's effective
    receptive field on a few random inputs (:func:`seqlite.depths.receptive_fields`) and
    counts the paths from ``x_0`` by length (:func:`seqlite.depths.path_length_counts`).
    The figure (:func:`seqlite.depths.plot_depths`) shows the fields per group, the
    path-length histogram and the radius of each group's field beside its path lengths;
    the table gives the numbers. The layer is small (at most 8 groups of 8 channels on a
    19x19 input) so a redraw takes a fraction of a second.
    """

    css_name = "depths-panel"
    MAX_GROUPS = 8  # with MAX_K and MAX_IN_CHANNELS: a redraw (build, run, measure) in a fraction of a second
    MAX_K = 8
    MAX_IN_CHANNELS = 64

    def __init__(
        self,
        in_channels: int = 8,
        g: int = 6,
        k: int = 4,
        window: int | None = 8,
        max_groups: int = 8,
        max_k: int = 8,
        samples: int = 4,
        seed: int = 0,
    ):
        self.in_channels = checked_in_channels(in_channels, self.MAX_IN_CHANNELS)
        self.samples = positive_int("samples", samples)
        self.seed = checks.seed("seed", seed)
        why = "each move builds the layer and measures it on every sample"
        self.g, self.k = _group_sliders(type(self).__name__, g, k, max_groups, max_k, (self.MAX_GROUPS, self.MAX_K),
                                        (why, why))
        # 0 stands for "dense": a Dropdown whose value is None would have nothing selected.
        windows = sorted({max(1, self.in_channels // 2), self.in_channels, 2 * self.in_channels})
        options = [("dense", 0), *((f"w={w}", w) for w in windows)]
        if window is not None and window not in windows:
            raise ValueError(f"window must be None (dense) or one of {windows}, got {window!r}")
        self.window = widgets.Dropdown(options=options, value=window or 0, description="window")
        self.window.style = {"description_width": "initial"}
        self._measured: tuple[tuple, Any] | None = None
        super().__init__({"g": self.g, "k": self.k, "window": self.window})

    def layer(self) -> Any:
        """The layer the panel measures: built afresh for the controls' values (fixed seed)."""
        import torch

        from .blocks import init_weights
        from .layers import SeqConv2d

        g, k, window = self.g.value, self.k.value, self.window.value or None
        with torch.random.fork_rng(devices=[]):  # the notebook's random stream is not consumed
            torch.manual_seed(self.seed)
            layer = SeqConv2d(self.in_channels, g * k, k, window=window)
            init_weights(layer)  # the paper's initialisation (4.2)
        return layer

    def measure(self) -> tuple[Any, Any]:
        """``(receptive_fields, path_length_counts)`` of :meth:`layer`, computed once per setting."""
        from .depths import path_length_counts, receptive_fields

        key = tuple(self.values.values())
        if self._measured is None or self._measured[0] != key:
            layer = self.layer()
            fields = receptive_fields(layer, samples=self.samples, seed=self.seed)
            counts = path_length_counts(layer.in_channels, layer.out_channels, layer.k, layer.window)
            self._measured = (key, (fields, counts))
        return self._measured[1]

    def _setting(self) -> str:
        g, k, window = self.g.value, self.k.value, self.window.value
        return f"in={self.in_channels}, out={g * k}, k={k}, g={g}, " + (f"w={window}" if window else "dense")

    def describe(self) -> str:
        from .depths import path_length_summary

        fields, counts = self.measure()
        summary = path_length_summary(counts)
        rows = [
            [
                f"x{i + 1}",
                f"{summary['shortest'][i]:.0f} / {summary['mean'][i]:.2f} / {summary['longest'][i]:.0f}",
                f"{summary['paths'][i]:,.0f}",
                f"{float(fields.radius[i]):.2f}",
                f"{float(fields.nonzero[i]):.0f}",
            ]
            for i in range(fields.groups)
        ]
        numbers = table(
            ["group", "path length min / mean / max", "paths", f"radius ({fields.mass:.0%} mass)", "pixels reached"],
            rows,
        )
        return (
            f"<b>SeqConv2d {html.escape(self._setting())}</b>, measured on {self.samples} random inputs "
            f"(radius in pixels from the centre)" + numbers
        )

    def draw(self) -> Any:
        from .depths import plot_depths

        fields, counts = self.measure()
        return plot_depths(fields, counts, title=self._setting())
