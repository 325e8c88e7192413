"""count_params and count_flops against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from seqlite import SeqConv2d, count_flops, count_params, seqconv_param_count


def test_count_params():
    assert count_params(nn.Linear(10, 5)) == 55
    model = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8))
    model[1].weight.requires_grad_(False)
    assert count_params(model) == 3 * 8 * 9 + 16
    assert count_params(model, trainable_only=True) == 3 * 8 * 9 + 8


def test_count_flops_of_a_conv_and_a_linear():
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    assert count_flops(conv, (4, 10, 12)) == 4 * 6 * 9 * 10 * 12
    assert count_flops(nn.Linear(7, 3), (1, 2, 7)) == 2 * 7 * 3  # (N, C, H, W) form: N = 1, 2x7 inputs


def test_windowed_seqconv_costs_a_plain_conv():
    """WSeqConv (w = in) does the multiply-accumulates of a plain in -> out conv (paper 3.1)."""
    layer = SeqConv2d(32, 64, 8, window=32)
    assert count_flops(layer, (32, 8, 8)) == 32 * 64 * 9 * 64
    dense = SeqConv2d(32, 64, 8)
    views = sum(32 + 8 * i for i in range(8))
    assert count_flops(dense, (32, 8, 8)) == views * 8 * 9 * 64
    assert seqconv_param_count(32, 64, 8) == views * 8 * 9 + 2 * 64


def test_count_flops_restores_mode_and_checks_input():
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)).train()
    count_flops(model, (1, 4, 4))
    assert model.training
    for bad in [(4, 4), (1, 0, 4), (1, 4.0, 4), (True, 4, 4), "abc", 5]:
        with pytest.raises(ValueError, match="input_size"):
            count_flops(model, bad)
    assert torch.is_grad_enabled()


def test_count_flops_takes_numpy_sizes():
    """A shape taken from a numpy array (np.int64 entries) is a shape: operator.index takes it."""
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=False)
    expected = 4 * 6 * 9 * 10 * 12
    assert count_flops(conv, np.array([4, 10, 12])) == expected
    assert count_flops(conv, (np.int64(1), np.int32(4), 10, 12)) == expected


def test_count_flops_counts_the_per_group_loop_and_restores_each_switch():
    """The count is Eq. 1-2's (fast path off while counting); each layer's own setting comes back."""
    model = nn.Sequential(SeqConv2d(16, 32, 8, window=16), SeqConv2d(32, 32, 8, window=32))
    model[1].fast = False
    calls = []
    for layer in model:
        layer.transforms[0].conv3x3.register_forward_hook(lambda *_: calls.append(1))  # basic layers: the loop only
    assert count_flops(model, (16, 4, 4)) == (16 * 32 + 32 * 32) * 9 * 16
    assert len(calls) == 2
    assert [layer.fast for layer in model] == [True, False]


def test_count_flops_by_module_adds_up():
    from seqlite import count_flops_by_module, create_model

    model = create_model("seqresnet_k8_r4_n1", r=1)
    macs = count_flops_by_module(model, (3, 16, 16))
    assert macs[""] == count_flops(model, (3, 16, 16))
    assert sum(macs[name] for name, _ in model.named_children()) == macs[""]
    # layer B of the first block is a WSeqConv 16 -> 16 run through forward_residual (never
    # called as a module): its figure is its groups' convs, the cost of a plain 3x3 conv.
    assert macs["stages.0.0.layer_b"] == 16 * 16 * 9 * 16 * 16
    assert macs["stages.0.0"] == macs["stages.0.0.layer_a"] + macs["stages.0.0.layer_b"]
