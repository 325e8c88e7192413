"""Gradient checkpointing that leaves BatchNorm's running statistics as the forward pass left them.

:func:`recomputed` runs a block under ``torch.utils.checkpoint``: only its input is kept for
backward, and its activations are recomputed while the gradient passes through it (as the
memory-efficient DenseNet implementations do). The recomputation must not update BatchNorm's
running statistics a second time, and dropout must redraw the same masks (the saved random
state), so a model with recomputation computes the same numbers as one without.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ._compat import COMPILED_CHECKPOINT_KEEPS_BATCHNORM

__all__ = ["recomputed"]


def recomputed(fn: Callable, features: Any, modules: tuple[nn.Module, ...] | None = None):
    """``fn(features)`` under ``torch.utils.checkpoint``: only ``features`` is kept, the rest recomputed.

    ``modules``: those ``fn`` runs (default: ``fn`` itself), whose BatchNorm statistics
    the recomputation must leave as the forward pass left them.

    Under ``torch.compile`` the checkpoint becomes a region of the traced graph: there,
    BatchNorm's buffer updates are outputs of the forward graph, applied once, and the
    backward graph recomputes only what the gradients need, so the eager-mode guard
    (a ``context_fn``, which Dynamo cannot trace) is neither needed nor given.
    """
    if torch.compiler.is_compiling():
        if not COMPILED_CHECKPOINT_KEEPS_BATCHNORM:  # older torch: see seqlite._compat
            return fn(features)
        return checkpoint(fn, features, use_reentrant=False)
    modules = (fn,) if modules is None else modules
    return checkpoint(
        fn,
        features,
        use_reentrant=False,
        preserve_rng_state=True,
        context_fn=lambda: (nullcontext(), _batchnorm_statistics_kept(modules)),
    )


@contextmanager
def _batchnorm_statistics_kept(modules: tuple[nn.Module, ...]) -> Iterator[None]:
    """Undo what a recomputation does to BatchNorm running statistics (forward already updated them)."""
    norms = [
        m
        for module in modules
        for m in module.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    kept = [[b.clone() for b in (m.running_mean, m.running_var, m.num_batches_tracked)] for m in norms]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, (mean, var, count) in zip(norms, kept):
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
