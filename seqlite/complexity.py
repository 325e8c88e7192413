"""Parameter and FLOP counting (paper Tables 2-3).

FLOPs are counted by :class:`torch.utils.flop_counter.FlopCounterMode`, which counts
the convolutions and matrix products that run; we report multiply-accumulates
(its FLOPs / 2), the convention of the paper's GFLOPs column. While counting, every
SeqConv layer runs group by group as Eq. 1-2 write it (``SeqConv2d.fast`` off, see
:func:`~seqlite.layers.set_fast`): the fast path sums the same terms in another order
and multiplies some zeros on the way, which is a property of our implementation, not
of the architecture.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .checks import positive_int
from .layers import SeqConv2d, seqconv_param_count, set_fast

__all__ = ["count_flops", "count_flops_by_module", "count_params", "seqconv_param_count"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (BN affine included, buffers excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, input_size: Sequence[int]) -> int:
    """Multiply-accumulates of one forward pass of ``model`` on a ``(1, *input_size)`` batch.

    ``input_size`` is ``(C, H, W)`` (or ``(N, C, H, W)``). The model runs once in eval
    mode on zeros, on its own device and dtype; its training mode is restored.
    """
    return count_flops_by_module(model, input_size)[""]


@torch.no_grad()
def count_flops_by_module(model: nn.Module, input_size: Sequence[int]) -> dict[str, int]:
    """Multiply-accumulates of one forward pass per module, keyed as ``model.named_modules()``.

    ``""`` is the whole model; every module's figure includes its submodules'. Same
    conventions as :func:`count_flops`.
    """
    shape = _input_shape(input_size)
    param = next(model.parameters(), None)
    x = torch.zeros(shape, device=param.device if param is not None else None,
                    dtype=param.dtype if param is not None else None)
    was_training = model.training
    model.eval()
    try:
        # Every SeqConv runs group by group, so each conv is a module call the counter can name.
        with _layers_as_written(model), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    # The counter files each op under every module active when it ran; a module that was
    # not itself called (e.g. a SeqConv run through forward_residual) is the sum of its children.
    counts = {key: sum(ops.values()) // 2 for key, ops in counter.get_flop_counts().items()}
    root = type(model).__name__
    by_module: dict[str, int] = {}

    def visit(name: str, module: nn.Module) -> int:
        children = [visit(f"{name}.{child}" if name else child, m) for child, m in module.named_children()]
        key = f"{root}.{name}" if name else root
        by_module[name] = counts[key] if key in counts else sum(children)
        return by_module[name]

    visit("", model)
    by_module[""] = counter.get_total_flops() // 2
    return by_module


def _input_shape(input_size: Sequence[int]) -> tuple[int, int, int, int]:
    """``(N, C, H, W)`` from ``(C, H, W)`` or ``(N, C, H, W)`` of positive integers (numpy's too)."""
    error = ValueError(f"input_size must be (C, H, W) or (N, C, H, W) of positive ints, got {input_size!r}")
    try:
        sizes = [positive_int("input_size", s) for s in input_size]
    except (TypeError, ValueError):
        raise error from None
    if len(sizes) == 3:
        sizes = [1, *sizes]
    if len(sizes) != 4:
        raise error
    return tuple(sizes)


@contextmanager
def _layers_as_written(model: nn.Module) -> Iterator[None]:
    """Run every :class:`SeqConv2d` of ``model`` group by group for the duration."""
    previous = [(m, m.fast) for m in model.modules() if isinstance(m, SeqConv2d)]
    set_fast(model, False)
    try:
        yield
    finally:
        for m, fast in previous:
            m.fast = fast
