"""seqlite.viz: the numbers behind the course figures, and that the figures show them."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
from torch import nn

from seqlite import analysis, viz
from seqlite.complexity import count_flops, count_params
from seqlite.layers import SeqConv2d, window_mask
from seqlite.seqresnet import seqresnet_cifar


def _image(fig):
    return np.ma.filled(fig.axes[0].images[0].get_array().astype(float), np.nan)


@pytest.mark.parametrize(
    "in_channels, out_channels, k, window", [(16, 32, 4, 16), (6, 12, 3, None), (5, 8, 2, 3), (8, 8, 8, 8)]
)
def test_window_mask_image_is_the_mask(in_channels, out_channels, k, window):
    fig = viz.plot_window_mask(in_channels, out_channels, k, window)
    np.testing.assert_array_equal(_image(fig), window_mask(in_channels, out_channels, k, window).numpy())
    assert len(fig.axes[0].get_yticks()) == out_channels // k
    assert not plt.get_fignums(), "the returned figure must be detached from pyplot"


def test_window_mask_rejects_bad_config():
    with pytest.raises(ValueError, match="out_channels"):
        viz.plot_window_mask(16, 30, 4)


def test_group_connectivity_by_hand():
    # in=16, k=8, out=32, window=16: F1 sees x0; F2 the last 8 channels of x0 and x1;
    # F3 x1, x2; F4 x2, x3.
    expected = torch.tensor(
        [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=torch.float32
    )
    torch.testing.assert_close(analysis.group_connectivity(16, 32, 8, 16), expected)
    torch.testing.assert_close(analysis.group_connectivity(16, 32, 8), torch.ones(4, 4).tril())


def test_exploded_view_draws_one_arrow_per_connection():
    config = {"in_channels": 16, "out_channels": 32, "k": 8, "window": 16}
    fig = viz.plot_exploded_view(config, split_input=False)
    ax = fig.axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == 5  # x0 and four groups
    assert sorted(a.get_gid() for a in arrows) == sorted(
        ["edge0->1", "edge0->2", "edge1->2", "edge1->3", "edge2->3", "edge2->4", "edge3->4"]
    )
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "depth 4" in texts and "sees 16" in texts


def test_windowed_exploded_view_splits_the_input_into_groups():
    # Windowed layers split x_0 by default (paper 3.1): group 2's window covers only x_0's second half.
    fig = viz.plot_exploded_view({"in_channels": 16, "out_channels": 32, "k": 8, "window": 16})
    ax = fig.axes[0]
    arrows = {p.get_gid(): p for p in ax.patches if isinstance(p, FancyArrowPatch)}
    boxes = [p.get_gid() for p in ax.patches if isinstance(p, FancyBboxPatch)]
    assert boxes[:2] == ["input-1", "input0"] and len(boxes) == 6
    assert sorted(arrows) == sorted(
        ["edge-1->1", "edge0->1", "edge0->2", "edge1->2", "edge1->3", "edge2->3", "edge2->4", "edge3->4"]
    )
    assert all(a.get_linestyle() == "-" for a in arrows.values())  # windows on group edges: no partial reads


def test_exploded_view_dashes_a_partly_read_group():
    # window 12 with k=8: group 1 reads the last 4 channels of x_{-1} only.
    fig = viz.plot_exploded_view({"in_channels": 16, "out_channels": 16, "k": 8, "window": 12})
    arrows = {p.get_gid(): p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)}
    assert arrows["edge-1->1"].get_linestyle() == "--" and arrows["edge0->1"].get_linestyle() == "-"


def test_residual_block_drawing_has_every_connection_and_shortcut():
    fig = viz.plot_residual_block(24, 8)  # g = 3
    gids = [p.get_gid() for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]
    edges = sorted(gid for gid in gids if gid.startswith("edge"))
    # Window C = 3 groups: every box at position p = 1..6 reads positions p-3 .. p-1.
    assert edges == sorted(f"edge{s}->{t}" for t in range(1, 7) for s in range(t - 3, t))
    assert sorted(gid for gid in gids if gid.startswith("shortcut")) == ["shortcut1", "shortcut2", "shortcut3"]
    with pytest.raises(ValueError):
        viz.plot_residual_block(20, 8)


def test_exploded_view_from_layer_matches_dense_triangle():
    layer = SeqConv2d(8, 20, 4, bottleneck=True)
    fig = viz.plot_exploded_view(layer)
    arrows = [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 5 * 6 // 2
    assert "Conv1x1" in fig.axes[0].get_title()


@pytest.mark.parametrize("bad", [{"in_channels": 8, "k": 4}, {"in_channels": 8, "out_channels": 8, "k": 4, "w": 2}, 42])
def test_exploded_view_rejects_bad_config(bad):
    with pytest.raises(ValueError, match="layer_or_config"):
        viz.plot_exploded_view(bad)


@pytest.mark.parametrize("window", [None, 16, 12])
@pytest.mark.parametrize("bottleneck", [False, True])
def test_param_growth_matches_built_layers(window, bottleneck):
    widths = [8, 24, 40]
    counts = analysis.param_growth(16, 8, window, widths, bottleneck)
    w = 16 if window is None else window
    for i, width in enumerate(widths):
        assert counts["dense"][i] == count_params(SeqConv2d(16, width, 8, bottleneck=bottleneck))
        assert counts["windowed"][i] == count_params(SeqConv2d(16, width, 8, window=w, bottleneck=bottleneck))
        plain = nn.Sequential(nn.Conv2d(16, width, 3, bias=False), nn.BatchNorm2d(width))
        assert counts["plain"][i] == count_params(plain)


def test_param_growth_is_quadratic_for_dense_and_linear_for_windowed():
    widths = list(range(32, 321, 32))  # past the window, every group sees 32 channels
    counts = analysis.param_growth(32, 8, 32, widths)
    dense2 = np.diff(counts["dense"], 2)
    assert (dense2 > 0).all() and len(set(dense2)) == 1  # constant positive 2nd difference
    assert (np.diff(counts["windowed"], 2) == 0).all()
    assert (np.diff(counts["plain"], 2) == 0).all()
    assert counts["windowed"] == counts["plain"]  # WSeqConv with window = in: a plain conv's parameters


def test_plot_param_growth_lines():
    fig = viz.plot_param_growth(16, 8, max_out_channels=64, mark_out_channels=32)
    lines = fig.axes[0].get_lines()
    curves = [line for line in lines if len(line.get_xdata()) > 1]
    assert len(curves) == 3
    np.testing.assert_array_equal(curves[0].get_xdata(), np.arange(8, 65, 8))
    assert curves[0].get_ydata()[-1] == count_params(SeqConv2d(16, 64, 8))
    assert len(lines) == 6  # plus three markers at width 32


def test_plot_param_growth_labels_plain_numbers_without_offset():
    fig = viz.plot_param_growth(16, 8, max_out_channels=256)
    fig.canvas.draw()
    axis = fig.axes[0].yaxis
    assert axis.get_offset_text().get_text() == ""  # no "1e5" above the axis
    labels = [t.get_text() for t in axis.get_ticklabels() if t.get_text()]
    assert any("," in label for label in labels), labels  # e.g. "100,000"


def test_layer_costs_match_built_layers_and_flop_counter():
    rows = {r["layer"]: r for r in analysis.layer_costs(16, 8, subgroups=2, spatial=(6, 6))}
    built = {
        "plain 3x3 conv": nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)),
        "windowed SeqConv": SeqConv2d(16, 16, 8, window=16),
        "windowed SeqConv-B": SeqConv2d(16, 16, 8, window=16, bottleneck=True),
        "windowed SeqConv-B, c=2": SeqConv2d(16, 16, 8, window=16, bottleneck=True, subgroups=2),
    }
    assert set(rows) == set(built)
    for name, module in built.items():
        assert rows[name]["params"] == count_params(module), name
        if isinstance(module, SeqConv2d):
            # Eq. 1-2's arithmetic: each F_i run on its own view. (The layer's fused fast path may
            # also multiply zeros outside the windows; those are not the paper's FLOPs.)
            macs = sum(
                count_flops(t, (stop - start, 6, 6)) for t, (start, stop) in zip(module.transforms, module.views)
            )
        else:
            macs = count_flops(module, (16, 6, 6))
        assert rows[name]["macs"] == macs, name


def test_layer_costs_dense_rows_and_errors():
    names = [r["layer"] for r in analysis.layer_costs(16, 8, windowed=False)]
    assert names == ["plain 3x3 conv", "dense SeqConv", "dense SeqConv-B"]
    with pytest.raises(ValueError, match="subgroups"):
        analysis.layer_costs(16, 8, subgroups=3)
    fig = viz.plot_cost_comparison(analysis.layer_costs(16, 8))
    assert len(fig.axes[0].patches) == 3


def test_source_groups_split_x0_from_its_end():
    expected = [("x_{-2}", 0, 1), ("x_{-1}", 1, 3), ("x_{0}", 3, 5), ("x_{1}", 5, 7), ("x_{2}", 7, 9)]
    assert analysis.source_groups(5, 6, 2) == expected
    assert [s[1:] for s in analysis.source_groups(4, 4, 2)] == [(0, 2), (2, 4), (4, 6)]


def _layer_with_channel_weights(in_channels, out_channels, k, window, bottleneck=False):
    """Layer whose first conv weight at view channel c is -(global channel index + 1) * (i + 1)."""
    layer = SeqConv2d(in_channels, out_channels, k, window=window, bottleneck=bottleneck)
    with torch.no_grad():
        for i, (t, (start, stop)) in enumerate(zip(layer.transforms, layer.views)):
            values = -torch.arange(start + 1, stop + 1, dtype=torch.float32) * (i + 1)
            t.first_conv.weight.copy_(values.view(1, -1, 1, 1).expand_as(t.first_conv.weight))
    return layer


def test_weight_usage_by_hand_windowed():
    # in=4, k=2, g=3, window=4. Sources: x_-1 = ch 0-1, x_0 = ch 2-3, x_1 = ch 4-5, x_2 = ch 6-7.
    # Views: F1 [0, 4), F2 [2, 6), F3 [4, 8). Weight of channel c in F_i: (c + 1) * i in magnitude.
    usage = analysis.weight_usage(_layer_with_channel_weights(4, 6, 2, window=4))
    nan = math.nan
    expected = torch.tensor(
        [
            [1.5, 3.5, nan, nan],
            [nan, 3.5 * 2, 5.5 * 2, nan],
            [nan, nan, 5.5 * 3, 7.5 * 3],
        ]
    )
    torch.testing.assert_close(usage, expected, equal_nan=True)


def test_weight_usage_partial_groups_and_bottleneck():
    # in=5, k=2, dense, bottleneck: sources x_-2 = ch 0, x_-1 = ch 1-2, x_0 = ch 3-4, x_1 = ch 5-6.
    usage = analysis.weight_usage(_layer_with_channel_weights(5, 4, 2, window=None, bottleneck=True))
    expected = torch.tensor([[1.0, 2.5, 4.5, math.nan], [2.0, 5.0, 9.0, 13.0]])
    torch.testing.assert_close(usage, expected, equal_nan=True)
    # A window of 3 cuts x_-1 in half for F1 ([2, 5)) and F2 ([4, 7)) sees half of x_0.
    usage = analysis.weight_usage(_layer_with_channel_weights(5, 4, 2, window=3))
    expected = torch.tensor([[math.nan, 3.0, 4.5, math.nan], [math.nan, math.nan, 5.0 * 2, 6.5 * 2]])
    torch.testing.assert_close(usage, expected, equal_nan=True)


def _with_bn_statistics(layer, seed=0):
    """``layer`` with random BN scales and running variances, as training leaves them."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in layer.transforms:
            for bn in (t.bn, getattr(t, "reduce_bn", None)):
                if bn is not None:
                    bn.weight.copy_(torch.rand(bn.num_features, generator=generator) * 2 - 0.5)
                    bn.running_var.copy_(torch.rand(bn.num_features, generator=generator) * 4 + 0.1)
    return layer


def test_weight_usage_fold_bn_by_hand():
    # Hand values of test_weight_usage_by_hand_windowed; F_i's BN scales output channel o by
    # gamma / sqrt(var + eps) = (o + 1) * i / 2 (gamma = (o + 1) * i, var = 4, eps = 0): all k = 2 channels
    # of one source share |w|, so the mean |w| of F_i gains the factor mean(1, 2) * i / 2 = 0.75 i.
    layer = _layer_with_channel_weights(4, 6, 2, window=4)
    with torch.no_grad():
        for i, t in enumerate(layer.transforms, start=1):
            t.bn.weight.copy_(torch.tensor([1.0, 2.0]) * i)
            t.bn.running_var.fill_(4.0)
            t.bn.eps = 0.0
    raw = analysis.weight_usage(layer)
    folded = analysis.weight_usage(layer, fold_bn=True)
    factor = torch.tensor([[0.75], [1.5], [2.25]])
    torch.testing.assert_close(folded, raw * factor, equal_nan=True)


@pytest.mark.parametrize("bottleneck", [False, True])
def test_folded_usage_ignores_a_rescaling_the_bn_undoes(bottleneck):
    # Scaling group i's first conv by c and its BN's running variance by c^2 leaves every x_i as it was
    # (the BN divides the c back out): the folded usage must not change, while raw |w| grows c-fold in row i.
    torch.manual_seed(0)
    layer = _with_bn_statistics(SeqConv2d(6, 12, 3, window=6, bottleneck=bottleneck))
    raw, folded = analysis.weight_usage(layer), analysis.weight_usage(layer, fold_bn=True)
    i, c = 2, 7.0
    transform = layer.transforms[i]
    bn = transform.reduce_bn if bottleneck else transform.bn
    with torch.no_grad():
        transform.first_conv.weight.mul_(c)
        bn.running_var.mul_(c**2)
    torch.testing.assert_close(analysis.weight_usage(layer, fold_bn=True), folded, equal_nan=True, rtol=1e-4, atol=0)
    rescaled = analysis.weight_usage(layer)
    expected = raw.clone()
    expected[i] *= c
    torch.testing.assert_close(rescaled, expected, equal_nan=True)
    assert not torch.allclose(rescaled.nan_to_num(0), raw.nan_to_num(0))


def test_folded_usage_keeps_the_blanks_and_is_the_effective_weight():
    # Blanks stay NaN exactly where the view ends; where not blank, folding is what the layer computes:
    # in eval mode a group's output is relu(scale * conv(v) + shift), so the conv's weights act times scale.
    torch.manual_seed(1)
    layer = _with_bn_statistics(SeqConv2d(8, 16, 4, window=8)).eval()
    raw, folded = analysis.weight_usage(layer), analysis.weight_usage(layer, fold_bn=True)
    assert torch.equal(folded.isnan(), raw.isnan())
    sources = analysis.source_groups(8, 16, 4)
    outside = torch.tensor([[not (lo < stop and hi > start) for _, lo, hi in sources] for start, stop in layer.views])
    assert torch.equal(folded.isnan(), outside) and outside.any()
    t = layer.transforms[1]
    scale = t.bn.weight / (t.bn.running_var + t.bn.eps).sqrt()
    effective = t.conv3x3.weight.detach() * scale.detach().view(-1, 1, 1, 1)
    lo, hi = sources[2][1:]  # x_0 (channels 4-7): inside F_2's view [4, 12)
    start = layer.views[1][0]
    torch.testing.assert_close(folded[1, 2], effective[:, lo - start : hi - start].abs().mean())


def test_fold_bn_needs_running_statistics_and_a_bool():
    layer = SeqConv2d(4, 4, 2)
    with pytest.raises(ValueError, match="fold_bn"):
        analysis.weight_usage(layer, fold_bn="yes")
    layer.transforms[0].bn = nn.BatchNorm2d(2, track_running_stats=False)
    with pytest.raises(ValueError, match="running statistics"):
        analysis.weight_usage(layer, fold_bn=True)
    assert analysis.weight_usage(layer).shape == (2, 3)  # raw usage needs no BN


def test_weight_usage_rejects_other_modules():
    with pytest.raises(ValueError, match="layer"):
        analysis.weight_usage(nn.Conv2d(3, 3, 3))


@pytest.mark.parametrize("normalize", ["max", "row"])
def test_weight_heatmap_image_is_normalised_usage(normalize):
    layer = _layer_with_channel_weights(4, 6, 2, window=4)
    image = _image(viz.plot_weight_heatmap(layer, normalize=normalize))
    # Hand values from test_weight_usage_by_hand_windowed; layer max 22.5, row maxima 3.5, 11, 22.5.
    raw = np.array([[1.5, 3.5, np.nan, np.nan], [np.nan, 7.0, 11.0, np.nan], [np.nan, np.nan, 16.5, 22.5]])
    scale = 22.5 if normalize == "max" else np.array([[3.5], [11.0], [22.5]])
    np.testing.assert_allclose(image, raw / scale)


def test_weight_heatmap_passes_fold_bn_and_says_what_it_shows():
    layer = _with_bn_statistics(_layer_with_channel_weights(4, 6, 2, window=4))
    for fold_bn, measure in ((False, "raw mean |w| (not BN-folded)"), (True, "BN-folded mean |w|")):
        fig = viz.plot_weight_heatmap(layer, fold_bn=fold_bn)
        usage = analysis.weight_usage(layer, fold_bn=fold_bn).numpy()
        np.testing.assert_allclose(_image(fig), usage / np.nanmax(usage), rtol=1e-6)
        assert fig.axes[1].get_ylabel() == f"{measure} / layer max"
    assert not np.allclose(_image(viz.plot_weight_heatmap(layer, fold_bn=True)),
                           _image(viz.plot_weight_heatmap(layer)), equal_nan=True)


def test_weight_heatmap_blanks_are_hatched_grey_with_a_legend():
    # The paper's "white = not in the view" clashes with coolwarm's near-white midpoint (half the maximum):
    # blanks get a hatched grey no colormap entry is close to (white is 0.23 from the midpoint, this grey over
    # 0.4 from every entry), and a legend patch says what it means.
    layer = _layer_with_channel_weights(4, 6, 2, window=4)
    fig = viz.plot_weight_heatmap(layer)
    ax = fig.axes[0]
    legend = ax.get_legend()
    assert legend is not None and [t.get_text() for t in legend.get_texts()] == ["not in the view"]
    assert legend.legend_handles[0].get_hatch()
    canvas = FigureCanvasAgg(fig)  # the figure is detached from pyplot: give it a canvas that renders
    canvas.draw()
    pixels = np.asarray(canvas.buffer_rgba())[..., :3].astype(float) / 255
    colormap = matplotlib.colormaps["coolwarm"](np.linspace(0, 1, 256))[:, :3]
    height = pixels.shape[0]

    def cell(row, col):  # the inner third of a heatmap cell, in pixels
        (x0, y0), (x1, y1) = ax.transData.transform([(col - 0.17, row - 0.17), (col + 0.17, row + 0.17)])
        top, bottom = sorted((height - int(y0), height - int(y1)))  # display y runs up, image rows down
        return pixels[top:bottom, int(min(x0, x1)) : int(max(x0, x1))].reshape(-1, 3)

    def distance_to_colormap(rgb):
        return np.linalg.norm(rgb[:, None, :] - colormap[None], axis=2).min(axis=1)

    blank = cell(2, 0)  # F_3 does not see x_{-1}; away from the legend in the upper right
    assert blank.size and distance_to_colormap(blank).min() > 0.3, "a blank cell looks like a colormap colour"
    used = cell(1, 1)  # F_2 sees x_0: a colormap colour
    assert distance_to_colormap(used).max() < 0.05
    plt.close(fig)


def test_weight_heatmap_options():
    layer = SeqConv2d(8, 16, 4, window=8)
    with pytest.raises(ValueError, match="normalize"):
        viz.plot_weight_heatmap(layer, normalize="minmax")
    fig, ax = plt.subplots()
    assert viz.plot_weight_heatmap(layer, ax=ax, title="layer B") is fig
    assert ax.get_title() == "layer B"
    plt.close(fig)


def test_seqconv_layers_lists_every_layer_in_order():
    model = seqresnet_cifar(4, 1, 1)
    names = [name for name, _ in analysis.seqconv_layers(model)]
    # dense first layer, 2 per residual block x 3 stages, 2 extension layers
    assert len(names) == 9
    assert names[0] == "seqconv1" and names[1].endswith("layer_a") and names[2].endswith("layer_b")


def test_training_curves_from_csv(tmp_path):
    # The training command's format: errors in percent, here all below 1 % (digits can get there).
    path = tmp_path / "metrics.csv"
    path.write_text(
        "epoch,lr,train_loss,train_error,test_loss,test_error,test_top5_error,seconds\n"
        "1,0.1,2.0,0.90,2.1,0.95,0.2,3.2\n"
        "2,0.1,1.0,0.50,1.2,0.60,0.1,3.1\n"
        "3,0.01,0.5,0.25,0.9,0.40,0.0,3.0\n"
    )
    fig = viz.plot_training_curves(path, title="digits")
    error_ax, loss_ax = fig.axes
    train_err, test_err, top5 = error_ax.get_lines()
    np.testing.assert_allclose(train_err.get_ydata(), [0.9, 0.5, 0.25])  # shown as written: percent
    np.testing.assert_allclose(test_err.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(top5.get_ydata(), [0.2, 0.1, 0.0])
    np.testing.assert_allclose(loss_ax.get_lines()[1].get_ydata(), [2.1, 1.2, 0.9])
    assert error_ax.get_ylabel() == "error (%)" and fig._suptitle.get_text() == "digits"


def test_training_curves_from_rows_as_fractions_and_missing_cells():
    rows = [
        {"epoch": 1, "train_loss": 1.0, "train_error": 0.40, "test_loss": "", "test_error": ""},
        {"epoch": 2, "train_loss": 0.5, "train_error": 0.20, "test_loss": "0.7", "test_error": "0.25"},
    ]
    fig = viz.plot_training_curves(rows, errors_in_percent=False)
    train_err, test_err = fig.axes[0].get_lines()  # no top-5 column: no top-5 line
    np.testing.assert_allclose(train_err.get_ydata(), [40, 20])
    assert math.isnan(test_err.get_ydata()[0]) and test_err.get_ydata()[1] == 25


@pytest.mark.parametrize("rows", [[], [{"lr": 0.1, "seconds": 2}]])
def test_training_curves_reject_bad_metrics(rows):
    with pytest.raises(ValueError, match="metrics"):
        viz.plot_training_curves(rows)


def test_figure_to_png_is_deterministic_and_closes():
    a = viz.figure_to_png(viz.plot_window_mask(8, 16, 4, 8))
    b = viz.figure_to_png(viz.plot_window_mask(8, 16, 4, 8))
    assert a[:8] == b"\x89PNG\r\n\x1a\n" and a == b
    fig = plt.figure()
    viz.figure_to_png(fig)
    assert not plt.get_fignums()


def test_plot_runs_puts_every_run_and_the_reference_on_one_axis():
    a = [{"epoch": e, "test_error": 10.0 / e, "train_loss": 1.0} for e in (1, 2, 3)]
    b = [{"epoch": e, "test_error": 12.0 / e, "train_loss": 1.0} for e in (1, 2, 3)]
    fig = viz.plot_runs({"plain": a, "SeqConv": b}, reference=("paper", 4.78))
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"plain", "SeqConv", "paper"}
    np.testing.assert_allclose(lines["SeqConv"].get_ydata(), [12.0, 6.0, 4.0])
    assert set(lines["paper"].get_ydata()) == {4.78}
    fig.canvas.draw()
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert all(float(t).is_integer() for t in ticks), ticks
    with pytest.raises(ValueError, match="column"):
        viz.plot_runs({"plain": a}, column="top1")
    with pytest.raises(ValueError, match="runs"):
        viz.plot_runs({})
