"""Moved: devices, mixed precision and determinism are :mod:`seqlite.train.devices`, the time projection
:mod:`seqlite.train.projection`.

Kept so that code written before the move still imports from here.
"""

from .train.devices import (
    AMP_MODES,
    DIST_TIMEOUT,
    autocast,
    available_cpus,
    check_local_rank,
    default_workers,
    init_distributed,
    make_scaler,
    resolve_amp,
    set_cuda_device,
    set_determinism,
    set_float32_precision,
)
from .train.projection import Projection, format_duration, time_steps

__all__ = [
    "AMP_MODES",
    "DIST_TIMEOUT",
    "Projection",
    "autocast",
    "available_cpus",
    "check_local_rank",
    "default_workers",
    "format_duration",
    "init_distributed",
    "make_scaler",
    "resolve_amp",
    "set_cuda_device",
    "set_determinism",
    "set_float32_precision",
    "time_steps",
]
