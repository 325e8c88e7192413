"""seqlite.widgets: panels driven in code, as nbval and a notebook without a front end do.

These tests run twice in CI: under the main environment's ipywidgets 8 and under ipywidgets 7.7.1
(Colab's and the declared floor), see ``.ci/floors``. Display goes through IPython's public ``display``.
"""

from __future__ import annotations

import re
import warnings

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
from torch import nn

pytest.importorskip("ipywidgets")


from seqlite import analysis
from seqlite import widgets as W
from seqlite.complexity import count_params
from seqlite.layers import SeqConv2d
from seqlite.seqresnet import seqresnet_cifar

PNG = b"\x89PNG\r\n\x1a\n"


def _numbers(html: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]{3,}", html)]


def test_seqconv_panel_counts_follow_the_sliders(check_panel_structure):
    panel = W.SeqConvPanel(in_channels=16, g=4, k=8)
    check_panel_structure(panel, "seqlite-seqconv-panel")
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


def test_window_panel_counts_and_redraw(check_panel_structure):
    panel = W.WindowPanel(in_channels=16, g=6, k=4, window=16)
    check_panel_structure(panel, "seqlite-window-panel")
    before = panel.image.value
    panel.window.value = 8
    dense, windowed, plain = _numbers(panel.text.value)
    assert dense == count_params(SeqConv2d(16, 24, 4))
    assert windowed == count_params(SeqConv2d(16, 24, 4, window=8))
    assert plain == count_params(nn.Sequential(nn.Conv2d(16, 24, 3, bias=False), nn.BatchNorm2d(24)))
    assert panel.image.value != before
    panel.window.value = 16 + 6 * 4  # covers every view: the same as dense
    assert "same as dense" in panel.text.value


def test_bottleneck_panel_table_and_subgroup_options(check_panel_structure):
    panel = W.BottleneckPanel(channels=64, k=16, subgroups=4)
    check_panel_structure(panel, "seqlite-bottleneck-panel")
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


def test_layer_picker_lists_seqconv_layers_and_redraws(check_panel_structure):
    torch.manual_seed(0)
    model = seqresnet_cifar(4, 1, 1)
    picker = W.layer_picker(model)
    check_panel_structure(picker, "seqlite-layer-picker")
    names = [n for n, m in model.named_modules() if isinstance(m, SeqConv2d)]
    assert list(picker.layer.options) == names
    assert picker.layer.value == "stages.0.0.layer_b"  # the layer Fig. 5 plots
    before, text = picker.image.value, picker.text.value
    picker.layer.value = "seqconv1"
    assert picker.image.value != before and picker.text.value != text
    assert "seqconv1" in picker.text.value
    picker.normalize.value = "row"
    assert bytes(picker.image.value).startswith(PNG)


def test_layer_picker_passes_fold_bn_on():
    torch.manual_seed(0)
    model = seqresnet_cifar(4, 1, 1)
    with torch.no_grad():  # BN statistics as training leaves them: folding changes the picture
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.2, 2.0)
                m.running_var.uniform_(0.1, 4.0)
    raw, folded = W.layer_picker(model), W.layer_picker(model, fold_bn=True)
    assert "raw mean |w| (not BN-folded)" in raw.text.value and "BN-folded mean |w| per" in folded.text.value
    assert raw.image.value != folded.image.value
    layer = raw.layers[raw.layer.value]
    want = analysis.weight_usage(layer, fold_bn=True)
    assert f"max {want.nan_to_num(0).max():.4f}" in folded.text.value
    with pytest.raises(ValueError, match="fold_bn"):
        W.layer_picker(model, fold_bn="yes")


def test_layer_picker_rejects_models_without_seqconv():
    with pytest.raises(ValueError, match="model"):
        W.layer_picker(nn.Sequential(nn.Conv2d(3, 8, 3)))
    with pytest.raises(ValueError, match="normalize"):
        W.layer_picker(seqresnet_cifar(4, 1, 1), normalize="l2")


# -- edges: what is clamped says so, slider bounds keep a redraw quick, bad input is refused


def _no_warnings(make):
    """``make()``, failing on any UserWarning: the panels' own warnings say a value was clamped.

    A library's deprecation notice is not one of them, even when it is also a UserWarning (ipywidgets 7
    adds DeprecationWarnings of its own; matplotlib 3.9, the floor, calls names that pyparsing 3.3
    deprecates with PyparsingDeprecationWarning, a UserWarning and a DeprecationWarning).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        made = make()
    clamped = [w for w in caught if issubclass(w.category, UserWarning)
               and not issubclass(w.category, DeprecationWarning)]
    assert not clamped, [str(w.message) for w in clamped]
    return made


def test_sliders_reach_the_values_asked_for():
    panel = _no_warnings(lambda: W.SeqConvPanel(g=20, k=40))  # above the default max_groups=12, max_k=32
    assert panel.values == {"g": 20, "k": 40} and panel.g.max == 20 and panel.k.max == 40
    assert "(g=20, k=40)" in panel.text.value
    window = _no_warnings(lambda: W.WindowPanel(g=18, k=2, window=20))
    assert window.values == {"g": 18, "k": 2, "window": 20}


def test_slow_settings_are_bounded_and_say_so():
    # g=200 used to mean 20,100 arrows in the exploded view: over a minute per redraw.
    with pytest.warns(UserWarning) as caught:
        panel = W.SeqConvPanel(max_groups=200, g=200, k=32)
    messages = " | ".join(str(w.message) for w in caught)
    assert f"max_groups=200 is outside what the panel offers, 1..{W.MAX_GROUPS}" in messages
    assert f"g=200 is outside what the panel offers, 1..{W.MAX_GROUPS}" in messages
    assert f"using g={W.MAX_GROUPS}" in messages and "arrows" in messages
    assert panel.g.max == W.MAX_GROUPS and panel.values == {"g": W.MAX_GROUPS, "k": 32}
    assert f"g={W.MAX_GROUPS}" in panel.text.value
    with pytest.warns(UserWarning, match=f"k=1000 is outside what the panel offers, 1..{W.MAX_K}"):
        assert W.WindowPanel(k=1000).k.value == W.MAX_K


def test_other_clamped_values_say_so():
    with pytest.warns(UserWarning, match="window=999 is outside what the panel offers, 1..272"):
        panel = W.WindowPanel(in_channels=16, g=6, k=4, window=999)  # 272 = 16 + 16 * 16: dense anyway
    assert panel.window.value == 272 and "same as dense" in panel.text.value
    with pytest.warns(UserWarning, match="channels=2000 is outside what the panel offers, 16..512; using channels=512"):
        assert W.BottleneckPanel(channels=2000).channels.value == 512


def test_a_value_set_in_code_outside_the_slider_warns():
    panel = W.SeqConvPanel(g=4, k=8)
    with pytest.warns(UserWarning, match=r"'groups g': 40 is outside the slider's range 1\.\.12; using 12"):
        panel.g.value = 40
    assert panel.g.value == 12 and "(g=12, k=8)" in panel.text.value
    _no_warnings(lambda: setattr(panel.g, "value", 3))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: W.SeqConvPanel(g=0), "g must be a positive integer, got 0"),
        (lambda: W.SeqConvPanel(k="8"), "k must be a positive integer, got '8'"),
        (lambda: W.SeqConvPanel(g=True), "g must be a positive integer, got True"),
        (lambda: W.SeqConvPanel(max_groups=-1), "max_groups must be a positive integer"),
        (lambda: W.SeqConvPanel(in_channels=5000), "in_channels must be between 1 and 1024"),
        (lambda: W.WindowPanel(window=0), "window must be a positive integer"),
        (lambda: W.BottleneckPanel(k=12), r"k must be one of \(4, 8, 16, 32, 64\), got 12"),
        (lambda: W.BottleneckPanel(k=16, subgroups=3), r"subgroups must divide k=16: one of \(1, 2, 4, 8, 16\)"),
        (lambda: W.BottleneckPanel(windowed="no"), "windowed must be True or False"),
        (lambda: W.LayerPicker("model"), "model must be a torch.nn.Module"),
    ],
)
def test_bad_arguments_are_refused_by_name(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_numpy_integers_are_accepted():
    np = pytest.importorskip("numpy")
    panel = W.SeqConvPanel(in_channels=np.int64(16), g=np.int64(5), k=np.int32(4))
    assert panel.values == {"g": 5, "k": 4}
    assert count_params(SeqConv2d(16, 20, 4)) in _numbers(panel.text.value)


def _pairs_in_text(text: str) -> int:
    return int(re.search(r"(\d+) pairs in view", text).group(1))


def test_layer_picker_on_a_model_with_nan_weights():
    torch.manual_seed(0)
    model = seqresnet_cifar(4, 1, 1)
    healthy = W.layer_picker(model).text.value
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    picker = W.layer_picker(model)  # used to fail: min() of an empty tensor
    assert bytes(picker.image.value).startswith(PNG)
    pairs = _pairs_in_text(healthy)
    assert _pairs_in_text(picker.text.value) == pairs  # the view is the layer's, whatever its weights
    assert f"{pairs} of them have non-finite weights" in picker.text.value
    picker.layer.value = "seqconv1"
    picker.normalize.value = "row"
    assert "non-finite" in picker.text.value and bytes(picker.image.value).startswith(PNG)


def test_layer_picker_counts_partly_broken_layers():
    torch.manual_seed(0)
    model = seqresnet_cifar(4, 1, 1)
    layer = dict(model.named_modules())["stages.0.0.layer_b"]
    with torch.no_grad():
        layer.transforms[0].first_conv.weight[0, 0, 0, 0] = float("inf")
    picker = W.layer_picker(model)
    broken = int(W._pairs_in_view(layer)[0].sum())  # group 1 sees these sources; one of them now holds inf
    assert "1 of them have non-finite weights" in picker.text.value, picker.text.value
    assert broken >= 1 and re.search(r"min \d\.\d{4}, max \d\.\d{4}", picker.text.value)
