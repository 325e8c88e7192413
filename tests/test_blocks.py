"""Residual block (Fig. 2) and down-sampling block (Fig. 3) as ARCHITECTURE.md describes them."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqlite import DownsamplingBlock, ResidualBlock, SeqConv2d, SeqConvOutput, init_weights


@pytest.mark.parametrize("bottleneck", [False, True])
def test_new_residual_block_passes_the_stream_through(bottleneck):
    """Zero-initialised 3x3 convs of layer B (paper 4.2): the block starts as the identity."""
    torch.manual_seed(0)
    block = init_weights(ResidualBlock(16, 4, bottleneck=bottleneck))
    raw = torch.randn(2, 16, 6, 6)
    out = block(SeqConvOutput(raw, torch.relu(raw)))
    torch.testing.assert_close(out.raw, raw)
    block.eval()
    out = block(SeqConvOutput(raw, torch.relu(raw)))
    bn = torch.cat([t.bn(raw[:, 4 * i : 4 * i + 4]) for i, t in enumerate(block.layer_b.transforms)], 1)
    torch.testing.assert_close(out.activated, torch.relu(bn))


def test_residual_block_initialisation():
    block = init_weights(ResidualBlock(16, 4, bottleneck=True))
    for t in block.layer_b.transforms:
        assert t.conv3x3.weight.abs().sum() == 0
        assert t.reduce.weight.abs().sum() > 0  # only the 3x3 convs start at zero
    for t in block.layer_a.transforms:
        assert t.conv3x3.weight.abs().sum() > 0
        # He/MSRA with fan-out: std = sqrt(2 / (out_channels * kernel area)).
        w = t.conv3x3.weight
        expected = (2 / (w.shape[0] * 9)) ** 0.5
        assert 0.6 * expected < w.std().item() < 1.4 * expected
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_residual_block_layers_are_windowed_or_dense():
    windowed = ResidualBlock(16, 4)
    assert windowed.layer_a.window == windowed.layer_b.window == 16
    dense = ResidualBlock(16, 4, windowed=False)
    assert dense.layer_a.window is None and dense.layer_b.window is None


def test_residual_block_trains():
    block = ResidualBlock(8, 4, drop_rate=0.1)
    raw = torch.randn(2, 8, 5, 5, requires_grad=True)
    out = block(SeqConvOutput(raw, torch.relu(raw)))
    (out.raw.square().mean() + out.activated.mean()).backward()
    assert raw.grad is not None
    assert all(p.grad is not None for p in block.parameters())


def test_downsampling_block_shapes_and_groups():
    block = DownsamplingBlock(32, 64, 8)
    assert isinstance(block.extension, SeqConv2d)
    assert (block.extension.in_channels, block.extension.out_channels, block.extension.window) == (32, 32, 32)
    assert block.downsize.groups == 64 // 8 and block.downsize.stride == (2, 2)
    out = block(torch.randn(2, 32, 16, 15))
    assert out.raw.shape == out.activated.shape == (2, 64, 8, 8)
    # SeqResNeXt: groups = C' / k_next * c_next (Table 2: 512 / 64 * 8 = 64 groups).
    assert DownsamplingBlock(256, 512, 32, k_next=64, subgroups=8, bottleneck=True).downsize.groups == 64


def test_grouped_downsizing_keeps_feature_groups_apart():
    """Fig. 3: output group j of the downsizing conv depends on input group j only."""
    block = DownsamplingBlock(16, 16, 4)  # no extension: the downsizing alone
    assert block.extension is None
    x = torch.randn(1, 16, 8, 8, requires_grad=True)
    block(x).raw[:, 4:8].sum().backward()
    per_group = x.grad.abs().sum((0, 2, 3)).view(4, 4).sum(1)
    assert per_group[1] > 0 and per_group[[0, 2, 3]].sum() == 0


def test_downsampling_block_rejects_bad_widths():
    with pytest.raises(ValueError, match="out_channels must be >= in_channels"):
        DownsamplingBlock(32, 16, 8)
    with pytest.raises(ValueError, match="out_channels must be divisible by k_next"):
        DownsamplingBlock(16, 36, 4, k_next=8)
