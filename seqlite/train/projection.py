"""Time before commitment: a few warm training steps timed before the first epoch, projected over the run.

:func:`project` times ``time_steps`` steps of a built run on real batches and undoes them (the
run continues exactly as without them); :class:`Projection` says what they project for an
epoch and for the epochs still to run, so a student knows the cost before committing to it.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from .devices import reduce_sum
from .loaders import to_device
from .setup import Run

__all__ = ["Projection", "format_duration", "project", "time_steps"]


def format_duration(seconds: float) -> str:
    """``42 s``, ``7.5 min``, ``3 h 05 min``: the unit a person would use."""
    if seconds < 90:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min"


@dataclass(frozen=True)
class Projection:
    """Measured seconds per training step, and what they project for an epoch and a run."""

    seconds_per_step: float
    timed_steps: int
    steps_per_epoch: int
    epochs: int  # the epochs still to run

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds_per_step * self.steps_per_epoch

    @property
    def seconds_total(self) -> float:
        return self.seconds_per_epoch * self.epochs

    def line(self) -> str:
        """The line ``seqlite train`` prints before the first epoch."""
        return (
            f"time projection: {self.seconds_per_step * 1e3:.1f} ms per training step ({self.timed_steps} warm steps "
            f"timed) x {self.steps_per_epoch} steps = {format_duration(self.seconds_per_epoch)} per epoch, "
            f"{format_duration(self.seconds_total)} for {self.epochs} epoch{'s' * (self.epochs != 1)} "
            "(training steps only; evaluation adds a little)"
        )

    def as_dict(self) -> dict[str, float]:
        return {"seconds_per_step": self.seconds_per_step, "timed_steps": self.timed_steps,
                "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs,
                "seconds_per_epoch": self.seconds_per_epoch, "seconds_total": self.seconds_total}


def time_steps(
    step: Callable[[object], object],
    batches: Iterable,
    steps: int,
    warmup: int = 2,
    sync: bool = False,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, int] | None:
    """Mean seconds of ``step(batch)`` over up to ``steps`` batches after ``warmup`` untimed ones.

    The time includes waiting for each batch (data loading is part of a step's cost).
    Returns ``(seconds per step, steps timed)``, or ``None`` when ``batches`` ran out before
    one step could be timed. ``sync``: wait for CUDA before reading the clock.
    """
    iterator = iter(batches)
    for batch in itertools.islice(iterator, warmup):
        step(batch)
    if sync:
        torch.cuda.synchronize()
    began, timed = clock(), 0
    for batch in itertools.islice(iterator, steps):
        step(batch)
        timed += 1
    if sync:
        torch.cuda.synchronize()
    if timed == 0:
        return None
    return (clock() - began) / timed, timed


def project(run: Run, step: Callable) -> Projection | None:
    """Time ``run.cfg.time_steps`` warm steps ``step(model, images, targets, optimizer, scaler, amp, device)``.

    The steps run on real batches of the next epoch, then are undone: the weights, BatchNorm
    statistics, optimiser and scaler states and every RNG come back as they were, and the
    data order is a function of (seed, epoch), so the run (and a resume) continues exactly as
    without the projection. The first steps are not timed (cuDNN autotuning,
    ``torch.compile``, the loader's first batches). ``None`` when an epoch has too few batches.
    """
    cfg, device = run.cfg, run.device
    saved = copy.deepcopy((run.net.state_dict(), run.optimizer.state_dict(),
                           run.scaler.state_dict() if run.scaler else None))
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    run.model.train()
    with torch.random.fork_rng(devices=cuda):
        run.loaders.set_epoch(run.progress.epoch)

        def timed_step(batch) -> None:
            images, targets = to_device(*batch, device, cfg.channels_last)
            step(run.model, images, targets, run.optimizer, run.scaler, cfg.amp, device)

        timed = time_steps(timed_step, run.loaders.train, cfg.time_steps, sync=device.type == "cuda")
    run.net.load_state_dict(saved[0])
    run.optimizer.load_state_dict(saved[1])
    if run.scaler is not None:
        run.scaler.load_state_dict(saved[2])
    if timed is None:
        return None
    seconds = reduce_sum([timed[0]], device, run.proc)[0] / run.proc.world_size
    return Projection(seconds, timed[1], len(run.loaders.train), cfg.epochs - run.progress.epoch)
