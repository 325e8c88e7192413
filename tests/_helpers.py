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
