"""What seqlite does differently on the older torch releases it supports.

The oldest supported versions are pyproject.toml's floors, and CI tests exactly those
(``.ci/floors``). Each entry here names the releases it was measured on, so it can go when
the floor passes them.
"""

from __future__ import annotations

import re
import warnings

import torch
from torch import nn

__all__ = ["COMPILED_CHECKPOINT_KEEPS_BATCHNORM", "TORCH_VERSION", "warn_if_compile_skips_checkpointing"]


def _release(version: str) -> tuple[int, ...]:
    """``"2.9.1+cu128"`` -> ``(2, 9, 1)``; pre-releases count as their release."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


TORCH_VERSION = _release(torch.__version__)

# torch.compile of a model with gradient checkpointing. From torch 2.9 on the traced checkpoint
# region applies BatchNorm's running-statistics update once per step, as eager mode does (measured:
# 2.9.1, 2.13.0, 2.14.1). Older releases apply it again when the backward pass recomputes the region,
# so the statistics drift from eager mode's (measured: 2.4.1, 2.5.1, 2.7.1; 2.8 not measured). There
# the blocks run without checkpointing under torch.compile: eager mode's numbers, without the memory
# saving (recompute.recomputed).
COMPILED_CHECKPOINT_KEEPS_BATCHNORM = TORCH_VERSION >= (2, 9)


def warn_if_compile_skips_checkpointing(model: nn.Module) -> None:
    """Say so before ``torch.compile`` when it will run ``model`` without its gradient checkpointing."""
    if COMPILED_CHECKPOINT_KEEPS_BATCHNORM or not getattr(model, "grad_checkpointing", False):
        return
    warnings.warn(
        f"torch {torch.__version__}: under torch.compile the model runs without gradient checkpointing "
        "(memory_efficient), because this torch release would update BatchNorm statistics twice per step; "
        "torch >= 2.9 keeps both (more memory per step here, same numbers)",
        UserWarning,
        stacklevel=2,
    )
