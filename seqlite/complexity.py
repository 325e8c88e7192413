"""Parameter and FLOP counting (paper Tables 2-3).

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode`, which counts
the convolutions and matrix products that run; we report multiply-accumulates
(its FLOPs / 2), the convention of the paper's GFLOPs column.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .layers import seqconv_param_count

__all__ = ["count_flops", "count_params", "seqconv_param_count"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (BN affine included, buffers excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_flops(model: nn.Module, input_size: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on a ``(1, *input_size)`` batch.

    ``input_size`` is ``(C, H, W)`` (or ``(N, C, H, W)``). The model runs once in eval
    mode on zeros, on its own device and dtype; its training mode is restored.
    """
    shape = tuple(input_size)
    if len(shape) == 3:
        shape = (1, *shape)
    if len(shape) != 4 or any(not isinstance(s, int) or s <= 0 for s in shape):
        raise ValueError(f"input_size must be (C, H, W) or (N, C, H, W) of positive ints, got {input_size!r}")
    param = next(model.parameters(), None)
    x = torch.zeros(shape, device=param.device if param is not None else None,
                    dtype=param.dtype if param is not None else None)
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2
