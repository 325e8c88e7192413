"""seqlite.widgets.DepthsPanel driven in code (no browser): it runs the layer and shows what it measured."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch

pytest.importorskip("ipywidgets")

from seqlite import widgets as W
from seqlite.blocks import init_weights
from seqlite.depths import path_length_counts, path_length_summary, receptive_fields
from seqlite.layers import SeqConv2d

PNG = b"\x89PNG\r\n\x1a\n"


def _radii(html: str) -> list[float]:
    """The radius column of the panel's table (the fourth cell of every data row)."""
    rows = re.findall(r"<tr>(.*?)</tr>", html)[1:]
    return [float(re.findall(r">([^<]*)</td>", row)[3]) for row in rows]


def _paths(html: str) -> list[int]:
    rows = re.findall(r"<tr>(.*?)</tr>", html)[1:]
    return [int(re.findall(r">([^<]*)</td>", row)[2].replace(",", "")) for row in rows]


def test_structure_and_text_form(check_panel_structure):
    panel = W.DepthsPanel(in_channels=8, g=4, k=4, window=8)
    check_panel_structure(panel, "seqlite-depths-panel")
    assert [c.description for c in panel.controls.values()] == ["groups g", "channels per group k", "window"]
    assert panel.values == {"g": 4, "k": 4, "window": 8}
    assert repr(panel) == "DepthsPanel(g=4, k=4, window=8)"
    assert not plt.get_fignums(), "rendered figures must be closed"


def test_panel_shows_what_the_library_measures_on_the_same_layer():
    panel = W.DepthsPanel(in_channels=8, g=5, k=4, window=8, samples=3, seed=1)
    torch.manual_seed(1)
    layer = SeqConv2d(8, 20, 4, window=8)
    init_weights(layer)
    fields = receptive_fields(layer, samples=3, seed=1)
    assert _radii(panel.text.value) == pytest.approx(fields.radius.tolist(), abs=0.006)
    counts = path_length_counts(8, 20, 4, window=8)
    assert _paths(panel.text.value) == [int(p) for p in path_length_summary(counts)["paths"]]
    assert "w=8" in panel.text.value and "g=5" in panel.text.value


def test_every_control_reruns_the_layer_and_redraws():
    panel = W.DepthsPanel(in_channels=8, g=4, k=4, window=8)
    seen = {(panel.text.value, bytes(panel.image.value))}
    state = torch.random.get_rng_state()
    for name, value in (("g", 6), ("k", 2), ("window", 0), ("window", 16)):
        panel.controls[name].value = value
        shown = (panel.text.value, bytes(panel.image.value))
        assert shown not in seen, f"setting {name}={value} did not change the panel"
        seen.add(shown)
    assert "dense" not in panel.text.value and "w=16" in panel.text.value
    panel.window.value = 0
    assert "dense" in panel.text.value
    assert _paths(panel.text.value) == [2 ** (i - 1) for i in range(1, 7)]  # dense: doubling
    assert torch.equal(torch.random.get_rng_state(), state), "the panel must not consume the global RNG"


def test_dense_and_windowed_differ_in_the_panel_as_measured():
    # The windowed layer drops the short paths; in the panel the last group's field is wider.
    panel = W.DepthsPanel(in_channels=8, g=6, k=4, window=8)
    windowed = _radii(panel.text.value)
    panel.window.value = 0
    dense = _radii(panel.text.value)
    assert windowed[-1] > dense[-1]
    assert all(b > a for a, b in zip(windowed, windowed[1:]))


def test_bad_window_is_refused():
    with pytest.raises(ValueError, match="window must be None"):
        W.DepthsPanel(in_channels=8, window=5)
