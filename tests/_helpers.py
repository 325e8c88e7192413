"""Helpers shared by the layer tests."""

from __future__ import annotations

import torch
from torch import nn


def randomised(layer: nn.Module) -> nn.Module:
    """Random weights and BN statistics, so nothing matches by accident."""
    with torch.no_grad():
        for p in layer.parameters():
            p.normal_()
        for name, b in layer.named_buffers():
            if name.endswith("running_mean"):
                b.normal_()
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
    return layer


# (in, out, k, window, bottleneck, subgroups): every kind of view the fast path plans for.
LAYER_CONFIGS = [
    (16, 32, 8, 16, False, 1),  # WSeqConv: window = in
    (16, 32, 4, 16, False, 1),  # WSeqConv with 8 groups: several blocks of groups
    (16, 16, 8, 16, False, 1),  # the residual block's C -> C
    (8, 24, 4, None, False, 1),  # dense
    (8, 40, 4, None, False, 1),  # dense, 10 groups
    (12, 12, 4, 5, False, 1),  # window not a multiple of k, smaller than in
    (6, 24, 4, 14, False, 1),  # window wider than in, narrower than the dense view
    (6, 18, 6, 100, False, 1),  # window larger than any view: dense
    (4, 8, 8, 4, False, 1),  # fewer input channels than k
    (16, 32, 8, 16, True, 1),  # WSeqConv-B
    (8, 48, 4, None, True, 2),  # dense SeqConv-B with subgroups
    (10, 20, 4, 7, True, 4),
]
