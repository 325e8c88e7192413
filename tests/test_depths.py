"""seqlite.depths: path lengths inside one layer (counted) and receptive fields per group (measured)."""

from __future__ import annotations

import math

import pytest
import torch

from seqlite.blocks import init_weights
from seqlite.depths import mass_radius, path_length_counts, path_length_summary, receptive_fields
from seqlite.layers import SeqConv2d

# --------------------------------------------------------------------------- path lengths


def test_path_counts_of_a_tiny_dense_layer_by_hand():
    # in=2, k=2, g=3 (dense). Paths from x_0, written out:
    #   x_1: x0-F1                                              -> one path of length 1
    #   x_2: x0-F2, x0-F1-F2                                    -> lengths 1, 2
    #   x_3: x0-F3, x0-F1-F3, x0-F2-F3, x0-F1-F2-F3             -> lengths 1, 2, 2, 3
    expected = torch.tensor([[0, 1, 0, 0], [0, 1, 1, 0], [0, 1, 2, 1]])
    assert torch.equal(path_length_counts(2, 6, 2), expected)


def test_path_counts_of_a_tiny_windowed_layer_by_hand():
    # in=2, k=2, g=4, window=4 (two groups wide). Group 3 reads [x_1, x_2], group 4 [x_2, x_3].
    #   x_3: x0-F1-F3, x0-F2-F3, x0-F1-F2-F3                     -> lengths 2, 2, 3
    #   x_4: via x_2 (x0-F2, x0-F1-F2) + F4, via x_3 (above) + F4 -> lengths 2, 3, 3, 3, 4
    expected = torch.tensor([[0, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 2, 1, 0], [0, 0, 1, 3, 1]])
    assert torch.equal(path_length_counts(2, 8, 2, window=4), expected)


@pytest.mark.parametrize("g", [1, 4, 9])
def test_dense_paths_are_binomial(g):
    counts = path_length_counts(16, 8 * g, 8)
    for i in range(1, g + 1):
        row = [math.comb(i - 1, length - 1) if length >= 1 else 0 for length in range(g + 1)]
        assert counts[i - 1].tolist() == row
    assert path_length_summary(counts)["paths"] == [2.0 ** (i - 1) for i in range(1, g + 1)]


@pytest.mark.parametrize(("in_channels", "k", "window"), [(16, 4, 16), (8, 4, 8), (12, 4, 4), (16, 8, 16)])
def test_window_sets_the_shortest_path_as_predicted(in_channels, k, window):
    # A window of w channels reaches back w / k groups: group i reads x_0 directly only while
    # (i - 1) k < w, so with w = in its shortest path has ceil(i / (w / k)) transforms.
    # The longest path is i (every group reads x_{i-1}), as in the dense layer.
    g = 10
    summary = path_length_summary(path_length_counts(in_channels, g * k, k, window))
    dense = path_length_summary(path_length_counts(in_channels, g * k, k))
    reach = window // k
    assert summary["shortest"] == [float(math.ceil(i / reach)) for i in range(1, g + 1)]
    assert summary["longest"] == dense["longest"] == [float(i) for i in range(1, g + 1)]
    assert dense["shortest"] == [1.0] * g
    # fewer paths than dense once the window cuts anything, and a deeper mean
    for i in range(reach + 1, g):
        assert summary["paths"][i] < dense["paths"][i]
        assert summary["mean"][i] > dense["mean"][i]


def test_a_window_of_one_group_leaves_a_chain():
    counts = path_length_counts(4, 20, 4, window=4)
    assert torch.equal(counts[:, 1:], torch.eye(5, dtype=torch.int64))


def test_path_counts_reject_bad_configs():
    with pytest.raises(ValueError, match="out_channels must be divisible by k"):
        path_length_counts(8, 10, 4)
    with pytest.raises(ValueError, match="window"):
        path_length_counts(8, 16, 4, window=0)


# --------------------------------------------------------------------------- mass radius


def test_mass_radius_by_hand():
    centre = torch.zeros(5, 5)
    centre[2, 2] = 3.0
    assert mass_radius(centre) == 0.0
    # uniform 5x5: the squares of radius 0, 1, 2 hold 1/25, 9/25, 25/25 of the mass;
    # 95% lies between radius 1 and 2: 1 + (0.95 - 9/25) / (1 - 9/25)
    assert mass_radius(torch.ones(5, 5)) == pytest.approx(1 + (0.95 - 0.36) / 0.64)
    assert mass_radius(-torch.ones(5, 5), mass=9 / 25) == pytest.approx(1.0)
    assert math.isnan(mass_radius(torch.zeros(3, 3)))
    with pytest.raises(ValueError, match="odd"):
        mass_radius(torch.ones(4, 5))
    with pytest.raises(ValueError, match="mass"):
        mass_radius(torch.ones(3, 3), mass=1.5)


# --------------------------------------------------------------------------- receptive fields


def _layer(window, g=6, k=4, in_channels=8, seed=0):
    torch.manual_seed(seed)
    layer = SeqConv2d(in_channels, g * k, k, window=window)
    init_weights(layer)  # the paper's initialisation (4.2)
    return layer


def test_dense_fields_grow_with_the_group_index_at_init():
    layer = _layer(None)
    fields = receptive_fields(layer, samples=8)
    g = 6
    assert fields.maps.shape == (g, 2 * g + 3, 2 * g + 3)
    # the longest path of group i has i 3x3 convolutions: its field reaches exactly i pixels
    assert fields.extent.tolist() == list(range(1, g + 1))
    assert (fields.nonzero <= torch.tensor([(2 * i + 1) ** 2 for i in range(1, g + 1)])).all()
    assert (fields.radius.diff() > 0).all(), fields.radius
    assert (fields.nonzero.diff() > 0).all(), fields.nonzero


def test_windowed_fields_are_wider_than_dense_ones():
    # The window removes the short paths (shortest path ceil(i / 2) here), so the gradient mass of
    # the late groups lies further out than in the dense layer, whose groups all keep a
    # one-transform path from x_0.
    dense = receptive_fields(_layer(None), samples=8)
    windowed = receptive_fields(_layer(8), samples=8)
    chain = receptive_fields(_layer(4), samples=8)
    assert (windowed.radius.diff() > 0).all() and (chain.radius.diff() > 0).all()
    assert windowed.radius[-1] > dense.radius[-1]
    assert chain.radius[-1] > windowed.radius[-1]
    assert windowed.extent.tolist() == dense.extent.tolist() == chain.extent.tolist()


def test_one_group_field_is_the_3x3_kernel():
    # g = 1: x_1 = ReLU(BN(conv(x_0))); at the centre the gradient is the kernel (times the BN scale)
    # wherever the unit is active, so the field is inside the 3x3 square around the centre.
    layer = _layer(None, g=1)
    x = torch.randn(3, 8, 5, 5)
    fields = receptive_fields(layer, x, statistics="running")
    layer.eval()
    expected = torch.zeros(5, 5)
    for sample in x:
        sample = sample[None].clone().requires_grad_(True)
        layer(sample)[0, :, 2, 2].sum().backward()
        expected += sample.grad[0].abs().sum(0)
    torch.testing.assert_close(fields.maps[0].float(), expected / 3)
    assert fields.maps[0][[0, 4]].abs().sum() == 0 and fields.maps[0][:, [0, 4]].abs().sum() == 0


def test_measurement_leaves_the_layer_alone():
    layer = _layer(8).train()
    state = {name: value.clone() for name, value in layer.state_dict().items()}
    receptive_fields(layer, samples=2)
    receptive_fields(layer, samples=2, statistics="running")
    assert layer.training
    for name, value in layer.state_dict().items():
        assert torch.equal(value, state[name]), name


def test_inputs_statistics_normalise_like_training():
    # "inputs" freezes the batch statistics of the inputs: the same numbers as the layer in
    # training mode on that batch, for the forward pass.
    layer = _layer(None)
    x = torch.randn(4, 8, 9, 9)
    with torch.no_grad():
        reference = layer.train()(x)
    from seqlite.depths import _with_statistics_of

    frozen = _with_statistics_of(layer, x).eval()
    with torch.no_grad():
        torch.testing.assert_close(frozen(x), reference, rtol=1e-2, atol=1e-2)  # running variance is the unbiased one


def test_receptive_fields_reject_bad_input():
    layer = _layer(None, g=2)
    with pytest.raises(ValueError, match="inputs must have shape"):
        receptive_fields(layer, torch.randn(1, 8, 6, 7))
    with pytest.raises(ValueError, match="inputs must have shape"):
        receptive_fields(layer, torch.randn(1, 3, 7, 7))
    with pytest.raises(ValueError, match="size"):
        receptive_fields(layer, size=8)
    with pytest.raises(ValueError, match="samples"):
        receptive_fields(layer, samples=0)
    with pytest.raises(ValueError, match="statistics"):
        receptive_fields(layer, statistics="batch")
    with pytest.raises(ValueError, match="SeqConv2d"):
        receptive_fields(torch.nn.Conv2d(8, 8, 3))


# --------------------------------------------------------------------------- figures: the squares explained


def _legend_labels(fig) -> list[str]:
    return [text.get_text() for legend in fig.legends for text in legend.get_texts()]


def test_field_legend_entries_name_both_squares_in_the_maps_style():
    from seqlite.depths import field_legend_entries

    dashed, dotted = field_legend_entries(0.9)
    assert "90% of the gradient mass" in dashed.get_label() and "radius" in dashed.get_label()
    assert "reach of the longest path" in dotted.get_label()
    assert (dashed.get_linestyle(), dotted.get_linestyle()) == ("--", ":")
    assert not dashed.get_fill() and dashed.get_edgecolor() == dotted.get_edgecolor()


def test_field_figures_carry_the_legend_of_their_squares():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.patches import Rectangle

    from seqlite.depths import field_legend_entries, plot_depths, plot_receptive_fields

    torch.manual_seed(0)
    layer = SeqConv2d(8, 16, 4, window=8)
    init_weights(layer)
    fields = receptive_fields(layer, samples=2)
    counts = path_length_counts(8, 16, 4, window=8)
    expected = [h.get_label() for h in field_legend_entries(fields.mass)]
    for fig in (plot_depths(fields, counts, title="t"), plot_receptive_fields(fields)):
        assert _legend_labels(fig) == expected  # one figure legend, the two squares
        # ...and the squares on the maps are drawn in the legend's styles.
        squares = [p for ax in fig.axes for p in ax.patches if isinstance(p, Rectangle) and not p.get_fill()]
        styles = {p.get_linestyle() for p in squares}
        assert styles == {"--", ":"}
    # The same figure in the notebook and the widget: taller than before, to make room for it.
    assert plot_depths(fields, counts).get_size_inches()[1] == pytest.approx(5.0)
    # Drawn into a caller's axes, plot_receptive_fields leaves the legend to the caller.
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2)
    plt.close(fig)
    plot_receptive_fields(fields, list(axes))
    assert not fig.legends
