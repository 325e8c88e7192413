"""Hooks into a run, for what :func:`~seqlite.train.train` does not do itself (logging, stopping, tests).

Subclass :class:`Callback`, override the events you need and pass instances to
``train(cfg, callbacks=[...])``. Each event gets the :class:`~seqlite.train.setup.Run` (its
configuration, model, optimiser, scaler, progress...). An exception raised in an event ends
the run there, exactly as if the process had been stopped at that point: what is on disk is
what a kill at that moment leaves, so the events are also how the tests interrupt runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .setup import Run

__all__ = ["Callback"]


class Callback:
    """No-op events; override those you need."""

    def on_run_start(self, run: Run) -> None:
        """Everything is built (and restored, when resuming) and the run folder written; no step taken yet."""

    def on_checkpoint_saved(self, run: Run, path: Path) -> None:
        """``path`` (``last.pt``, then ``best.pt`` on a new best) holds epoch ``run.progress.epoch`` (rank 0)."""

    def on_epoch_end(self, run: Run, row: dict[str, float]) -> None:
        """Epoch ``row["epoch"]`` is finished, saved and its ``metrics.csv`` row written (every process)."""
