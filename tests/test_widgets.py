"""seqlite.widgets: panels driven in code, as nbval and a notebook without a front end do."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest
import torch
from torch import nn

pytest.importorskip("ipywidgets")

from seqlite import widgets as W
from seqlite.complexity import count_params
from seqlite.layers import SeqConv2d
from seqlite.seqresnet import seqresnet_cifar

PNG = b"\x89PNG\r\n\x1a\n"


def _numbers(html: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]{3,}", html)]


def _check_structure(panel: W.Panel, css: str) -> None:
    classes = panel.container._dom_classes
    assert "seqlite-panel" in classes and css in classes
    assert bytes(panel.image.value).startswith(PNG)
    for control in panel.controls.values():
        assert control.description, "controls must be findable by their description"
    assert panel.text in panel.container.children and panel.image in panel.container.children
    bundle = panel._repr_mimebundle_()
    assert bundle["text/plain"] == repr(panel) and "PNG" not in bundle["text/plain"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert not plt.get_fignums(), "rendered figures must be closed"


def test_seqconv_panel_counts_follow_the_sliders():
    panel = W.SeqConvPanel(in_channels=16, g=4, k=8)
    _check_structure(panel, "seqlite-seqconv-panel")
    assert count_params(SeqConv2d(16, 32, 8)) in _numbers(panel.text.value)
    before = panel.image.value
    panel.g.value = 6
    panel.k.value = 4
    assert panel.values == {"g": 6, "k": 4}
    numbers = _numbers(panel.text.value)
    assert count_params(SeqConv2d(16, 24, 4)) in numbers
    assert count_params(nn.Sequential(nn.Conv2d(16, 24, 3, bias=False), nn.BatchNorm2d(24))) in numbers
    assert "16, 20, 24, 28, 32, 36" in panel.text.value  # each group's view, by hand: 16 + 4(i-1)
    assert panel.image.value != before and bytes(panel.image.value).startswith(PNG)


def test_window_panel_counts_and_redraw():
    panel = W.WindowPanel(in_channels=16, g=6, k=4, window=16)
    _check_structure(panel, "seqlite-window-panel")
    before = panel.image.value
    panel.window.value = 8
    dense, windowed, plain = _numbers(panel.text.value)
    assert dense == count_params(SeqConv2d(16, 24, 4))
    assert windowed == count_params(SeqConv2d(16, 24, 4, window=8))
    assert plain == count_params(nn.Sequential(nn.Conv2d(16, 24, 3, bias=False), nn.BatchNorm2d(24)))
    assert panel.image.value != before
    panel.window.value = 16 + 6 * 4  # covers every view: the same as dense
    assert "same as dense" in panel.text.value


def test_bottleneck_panel_table_and_subgroup_options():
    panel = W.BottleneckPanel(channels=64, k=16, subgroups=4)
    _check_structure(panel, "seqlite-bottleneck-panel")
    params = _numbers(panel.text.value)
    assert count_params(SeqConv2d(64, 64, 16, window=64, bottleneck=True)) in params
    assert count_params(SeqConv2d(64, 64, 16, window=64, bottleneck=True, subgroups=4)) in params
    panel.k.value = 32
    assert panel.subgroups.options == (1, 2, 4, 8, 16, 32) and panel.subgroups.value == 4
    panel.k.value = 4
    panel.subgroups.value = 2
    panel.windowed.value = False
    assert count_params(SeqConv2d(64, 64, 4, bottleneck=True, subgroups=2)) in _numbers(panel.text.value)
    assert "dense SeqConv-B, c=2" in panel.text.value


def test_bottleneck_panel_rounds_width_to_k():
    panel = W.BottleneckPanel(channels=48, k=32, subgroups=1)
    assert "64 &rarr; 64" in panel.text.value and "rounded up" in panel.text.value


def test_layer_picker_lists_seqconv_layers_and_redraws():
    torch.manual_seed(0)
    model = seqresnet_cifar(4, 1, 1)
    picker = W.layer_picker(model)
    _check_structure(picker, "seqlite-layer-picker")
    names = [n for n, m in model.named_modules() if isinstance(m, SeqConv2d)]
    assert list(picker.layer.options) == names
    assert picker.layer.value == "stages.0.0.layer_b"  # the layer Fig. 5 plots
    before, text = picker.image.value, picker.text.value
    picker.layer.value = "seqconv1"
    assert picker.image.value != before and picker.text.value != text
    assert "seqconv1" in picker.text.value
    picker.normalize.value = "row"
    assert bytes(picker.image.value).startswith(PNG)


def test_layer_picker_rejects_models_without_seqconv():
    with pytest.raises(ValueError, match="model"):
        W.layer_picker(nn.Sequential(nn.Conv2d(3, 8, 3)))
    with pytest.raises(ValueError, match="normalize"):
        W.layer_picker(seqresnet_cifar(4, 1, 1), normalize="l2")
