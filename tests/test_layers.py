"""SeqConv2d against the paper: Eq. 1 (dense), Eq. 2 (window), Eq. 3-5 (mask form), parameter counts,
and SeqConvSpec, the layer's validated shape."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from seqlite import (
    HadamardSeqConv2d,
    SeqConv2d,
    SeqConvSpec,
    count_params,
    group_views,
    seqconv_param_count,
    set_fast,
    window_mask,
)


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "as-written"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_mask_form_equals_windowed_layer(layer_config, train, fast, randomised):
    """Eq. 5: F_i(view of the most recent w channels) == F_i([x_0, ..., x_{i-1}] * omega_i).

    The mask form is its own loop over dense views (no code shared with either path of
    SeqConv2d), so this checks both the per-group loop and the fast kernel against Eq. 3-5.
    """
    torch.manual_seed(0)
    spec = layer_config
    cin, cout, k, w, bottleneck = spec.in_channels, spec.out_channels, spec.k, spec.window, spec.bottleneck
    layer = set_fast(randomised(SeqConv2d.from_spec(spec).double()), fast)
    masked = HadamardSeqConv2d.from_windowed(layer)
    layer.train(train)
    masked.train(train)
    x1 = torch.randn(3, cin, 6, 5, dtype=torch.float64, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    s1 = torch.randn(3, cout, 6, 5, dtype=torch.float64, requires_grad=True)
    s2 = s1.detach().clone().requires_grad_()
    out1, out2 = layer.forward_residual(x1, s1), masked.forward_residual(x2, s2)
    torch.testing.assert_close(out1.raw, out2.raw)
    torch.testing.assert_close(out1.activated, out2.activated)

    weights = torch.randn_like(out1.activated)
    ((out1.activated * weights).sum() + out1.raw.square().sum()).backward()
    ((out2.activated * weights).sum() + out2.raw.square().sum()).backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(s1.grad, s2.grad)
    for i, (t, mt) in enumerate(zip(layer.transforms, masked.dense.transforms)):
        torch.testing.assert_close(t.first_conv.weight.grad, masked.window_grad(i))
        torch.testing.assert_close(t.bn.weight.grad, mt.bn.weight.grad)
        if bottleneck:
            torch.testing.assert_close(t.conv3x3.weight.grad, mt.conv3x3.weight.grad)
            torch.testing.assert_close(t.reduce_bn.weight.grad, mt.reduce_bn.weight.grad)
        # Weights outside the window get no gradient through the mask.
        outside = mt.first_conv.weight.grad.clone()
        start, stop = group_views(cin, cout, k, w)[i]
        outside[:, start:stop] = 0
        assert outside.abs().max() == 0


@pytest.mark.parametrize("bottleneck", [False, True])
def test_window_covering_everything_is_dense(bottleneck, randomised):
    torch.manual_seed(2)
    dense = randomised(SeqConv2d(8, 24, 4, bottleneck=bottleneck)).double().eval()
    wide = SeqConv2d(8, 24, 4, window=8 + 20, bottleneck=bottleneck).double().eval()
    wide.load_state_dict(dense.state_dict())  # same shapes: every group already sees everything
    x = torch.randn(2, 8, 7, 7, dtype=torch.float64)
    torch.testing.assert_close(wide(x), dense(x))
    assert group_views(8, 24, 4, None) == group_views(8, 24, 4, 28)


def test_windowed_views_and_mask():
    # in=16, k=8, w=16: every group sees exactly 16 channels, sliding by k (Eq. 2).
    assert group_views(16, 32, 8, 16) == [(0, 16), (8, 24), (16, 32), (24, 40)]
    mask = window_mask(16, 32, 8, 16)
    assert mask.shape == (4, 16 + 32 - 8)
    assert mask.sum(1).tolist() == [16, 16, 16, 16]
    assert mask[1, :8].sum() == 0 and mask[1, 8:24].sum() == 16 and mask[1, 24:].sum() == 0
    # Dense: group i sees in + (i-1)k channels (Eq. 1).
    assert window_mask(16, 32, 8).sum(1).tolist() == [16, 24, 32, 40]


def test_wseqconv_has_the_parameters_of_a_plain_conv():
    """Paper 3.1: with w = in, WSeqConv costs what a regular in -> out conv costs."""
    layer = SeqConv2d(64, 64, 8, window=64)
    plain = nn.Sequential(nn.Conv2d(64, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64))
    assert count_params(layer) == count_params(plain)


@settings(max_examples=60, deadline=None)
@given(
    cin=st.integers(1, 24),
    k=st.integers(1, 8),
    g=st.integers(1, 6),
    window=st.one_of(st.none(), st.integers(1, 60)),
    bottleneck=st.booleans(),
    c_index=st.integers(0, 3),
)
def test_closed_form_parameter_count(cin, k, g, window, bottleneck, c_index):
    divisors = [d for d in range(1, k + 1) if k % d == 0]
    c = divisors[c_index % len(divisors)] if bottleneck else 1
    layer = SeqConv2d(cin, g * k, k, window=window, bottleneck=bottleneck, subgroups=c)
    assert seqconv_param_count(cin, g * k, k, window, bottleneck, c) == count_params(layer)


def test_dense_parameters_grow_quadratically_windowed_linearly():
    dense = [seqconv_param_count(16, 16 * m, 8) for m in (1, 2, 4, 8)]
    windowed = [seqconv_param_count(16, 16 * m, 8, window=16) for m in (1, 2, 4, 8)]
    assert [b / a for a, b in zip(windowed, windowed[1:])] == [2.0, 2.0, 2.0]
    ratios = [b / a for a, b in zip(dense, dense[1:])]
    assert all(r > 2.5 for r in ratios) and ratios == sorted(ratios)


def test_outputs_shapes_and_residual_form():
    torch.manual_seed(3)
    layer = SeqConv2d(16, 32, 8, window=16).eval()
    x = torch.randn(2, 16, 9, 7)
    out = layer.forward_residual(x)
    assert out.raw.shape == out.activated.shape == (2, 32, 9, 7)
    torch.testing.assert_close(layer(x), out.activated)
    torch.testing.assert_close(out.activated, torch.relu(out.activated))
    shortcut = torch.randn(2, 32, 9, 7)
    with_shortcut = layer.forward_residual(x, shortcut)
    # Group 1's shortcut slice is added to its raw conv output, before BN.
    torch.testing.assert_close(with_shortcut.raw[:, :8], out.raw[:, :8] + shortcut[:, :8])
    first_bn = layer.transforms[0].bn
    torch.testing.assert_close(with_shortcut.activated[:, :8], torch.relu(first_bn(with_shortcut.raw[:, :8])))
    torch.testing.assert_close(layer.forward_residual(x, torch.zeros_like(shortcut)).raw, out.raw)


def test_backward_reaches_every_parameter():
    layer = SeqConv2d(8, 16, 4, window=8, bottleneck=True, subgroups=2)
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    layer(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "as-written"])
def test_dropout_on_each_group_view(fast):
    torch.manual_seed(4)
    layer = set_fast(SeqConv2d(8, 16, 4, window=8, drop_rate=0.5), fast)
    x = torch.randn(2, 8, 5, 5)
    layer.eval()
    torch.testing.assert_close(layer(x), layer(x))
    layer.train()
    assert not torch.equal(layer(x), layer(x))
    calls = []
    layer.dropout.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[1]))
    layer(x)
    assert calls == [8, 8, 8, 8]  # one Dropout2d per group view, each view w = 8 channels wide


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(in_channels=8, out_channels=20, k=8), "out_channels must be divisible by k"),
        (dict(in_channels=8, out_channels=16, k=0), "k must be a positive integer"),
        (dict(in_channels=8, out_channels=16, k=-4), "k must be a positive integer"),
        (dict(in_channels=8, out_channels=16, k=4, window=0), "window must be a positive integer"),
        (dict(in_channels=8, out_channels=16, k=4, bottleneck=True, subgroups=3), "subgroups must divide k"),
        (dict(in_channels=8, out_channels=16, k=4, subgroups=2), "subgroups > 1 needs bottleneck=True"),
        (dict(in_channels=0, out_channels=16, k=4), "in_channels must be a positive integer"),
        (dict(in_channels=8, out_channels=16, k=4, drop_rate=1.5), "drop_rate must be in"),
        (dict(in_channels=8, out_channels=16, k=4, drop_rate="0.1"), "drop_rate must be in"),
        (dict(in_channels=8, out_channels=16, k=4, bottleneck="no"), "bottleneck must be True or False"),
        (dict(in_channels=8, out_channels=16, k=4, bottleneck=1), "bottleneck must be True or False"),
        (dict(in_channels=8, out_channels=16, k=4.0), "k must be a positive integer"),
        (dict(in_channels=8, out_channels=16, k=True), "k must be a positive integer"),
        (dict(in_channels="8", out_channels=16, k=4), "in_channels must be a positive integer"),
        (dict(in_channels=8, out_channels=16, k=4, window=np.float64(8)), "window must be a positive integer"),
    ],
)
def test_bad_configuration_names_the_rule(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SeqConv2d(**kwargs)
    spec_kwargs = {name: value for name, value in kwargs.items() if name != "drop_rate"}
    if spec_kwargs != kwargs:
        return
    with pytest.raises(ValueError, match=match):
        SeqConvSpec(**spec_kwargs)  # the same rule, checked once, where the layer's shape is made


def test_wrong_input_channels_says_expected_and_got():
    layer = SeqConv2d(8, 16, 4)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 8, H, W\), got \(2, 3, 5, 5\)"):
        layer(torch.randn(2, 3, 5, 5))
    with pytest.raises(ValueError, match="expected shortcut"):
        layer.forward_residual(torch.randn(2, 8, 5, 5), torch.randn(2, 8, 5, 5))


def test_spec_accepts_any_integer_type_and_stores_int():
    """numpy's integers (what a config array or np.arange gives) are integers: operator.index takes them."""
    spec = SeqConvSpec(np.int64(16), np.int32(32), np.int64(8), window=np.int64(16), subgroups=np.int16(1))
    assert spec == SeqConvSpec(16, 32, 8, 16)
    assert all(type(v) is int for v in (spec.in_channels, spec.out_channels, spec.k, spec.window, spec.subgroups))
    layer = SeqConv2d(16, 32, np.int64(8), window=np.int64(16))
    assert layer.spec == spec and layer(torch.randn(1, 16, 4, 4)).shape == (1, 32, 4, 4)


def test_spec_is_frozen_hashable_and_answers_the_layer_questions():
    spec = SeqConvSpec(16, 32, 8, window=16)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.k = 4
    assert {spec: 1}[SeqConvSpec(16, 32, 8, 16)] == 1
    assert spec.groups == 4
    assert spec.views == ((0, 16), (8, 24), (16, 32), (24, 40))
    torch.testing.assert_close(spec.mask(), window_mask(16, 32, 8, 16))
    assert spec.param_count() == 16 * 8 * 9 * 4 + 2 * 32 == count_params(SeqConv2d.from_spec(spec))
    b = SeqConvSpec(8, 48, 4, None, True, 2)
    assert b.param_count() == seqconv_param_count(8, 48, 4, None, True, 2) == count_params(SeqConv2d.from_spec(b))


def test_layer_reads_its_shape_from_its_spec():
    spec = SeqConvSpec(10, 20, 4, 7, True, 4)
    layer = SeqConv2d.from_spec(spec, drop_rate=0.25)
    assert layer.spec == spec and layer.drop_rate == 0.25
    assert (layer.in_channels, layer.out_channels, layer.k, layer.window, layer.bottleneck, layer.subgroups) == (
        10, 20, 4, 7, True, 4)
    assert layer.num_groups == 5 == len(layer.transforms)
    assert list(layer.views) == group_views(10, 20, 4, 7)
    with pytest.raises(AttributeError):
        layer.window = 3  # the weights were built for this shape: it cannot change under them
    with pytest.raises(ValueError, match="spec must be a SeqConvSpec"):
        SeqConv2d.from_spec((10, 20, 4))
    masked = HadamardSeqConv2d.from_spec(spec)
    assert masked.spec == spec and masked.dense.spec == dataclasses.replace(spec, window=None)
    torch.testing.assert_close(masked.mask, spec.mask())


def test_set_fast_sets_every_layer_and_returns_the_model():
    model = nn.Sequential(SeqConv2d(4, 8, 4), nn.ReLU(), nn.Sequential(SeqConv2d(8, 8, 4, window=8)))
    layers = [m for m in model.modules() if isinstance(m, SeqConv2d)]
    assert all(m.fast for m in layers)  # on by default
    assert set_fast(model, False) is model
    assert not any(m.fast for m in layers)
    assert "fast=False" in repr(layers[0])
    set_fast(model, True)
    assert all(m.fast for m in layers)
    with pytest.raises(ValueError, match="enabled must be True or False"):
        set_fast(model, "no")


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "as-written"])
def test_shortcut_with_another_batch_size_is_refused(fast):
    """A batch-1 shortcut would broadcast over the batch without a word: refuse it."""
    layer = set_fast(SeqConv2d(8, 16, 4, window=8), fast)
    with pytest.raises(ValueError, match=r"expected shortcut of shape \(3, 16, 5, 5\), got \(1, 16, 5, 5\)"):
        layer.forward_residual(torch.randn(3, 8, 5, 5), torch.randn(1, 16, 5, 5))


@pytest.mark.parametrize("bottleneck", [False, True])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "as-written"])
def test_empty_batch_in_training_with_dropout(fast, bottleneck):
    """N = 0 gives an empty output (and an empty gradient), like nn.Conv2d, in train mode with dropout."""
    layer = set_fast(SeqConv2d(8, 16, 4, window=8, bottleneck=bottleneck, drop_rate=0.2), fast).train()
    x = torch.randn(0, 8, 5, 5, requires_grad=True)
    out = layer.forward_residual(x, torch.zeros(0, 16, 5, 5))
    assert out.raw.shape == out.activated.shape == (0, 16, 5, 5)
    assert layer(x).shape == (0, 16, 5, 5)
    layer(x).sum().backward()
    assert x.grad.shape == x.shape
