"""What a run's checkpoint records after each epoch, and how a run continues from it.

:func:`save_epoch` writes the finished epoch: ``last.pt`` (the model, optimiser, scheduler, AMP
scaler, every process's RNG states, the metrics so far and the configuration; the entries of
:data:`seqlite.checkpoint.ENTRIES`), ``best.pt`` on a new best, then the epoch's ``metrics.csv``
row. :func:`restore` loads such a checkpoint into a freshly built run, after checking that it
is the same run (:data:`~seqlite.train.config.IDENTITY`), so the next epoch is the one the
uninterrupted run would have trained. :func:`repair_best` mends ``best.pt`` after a kill between
the two checkpoint writes.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch.distributed as dist

from ..checkpoint import (
    RESUMPTION,
    CheckpointError,
    capture_rng_state,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from .config import IDENTITY
from .run_folder import RunFolder, append_metrics
from .setup import Progress, Run, load_weights

__all__ = ["best_epoch", "check_same_run", "load_run_checkpoint", "repair_best", "restore", "save_epoch"]


def save_epoch(run: Run, improved: bool) -> None:
    """Checkpoint the finished epoch (``last.pt``, ``best.pt`` on a new best) and add its metrics row."""
    rng_states = [capture_rng_state()]
    if run.proc.world_size > 1:
        rng_states = [None] * run.proc.world_size
        dist.all_gather_object(rng_states, capture_rng_state())
    if not run.proc.main:
        return
    progress = run.progress
    state = {
        "model": run.net.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "epoch": progress.epoch,
        "best_error": progress.best_error,
        "best_epoch": progress.best_epoch,
        "history": progress.history,
        "config": asdict(run.cfg),
        "num_classes": run.spec.num_classes,
        "in_chans": run.spec.in_chans,
        "rng": rng_states,
        "world_size": run.proc.world_size,
    }
    # last.pt, then best.pt, then the metrics row. A kill between the checkpoints leaves a last.pt that
    # records itself as the best epoch, from which a resume rewrites best.pt (repair_best); a kill
    # before the row loses nothing, as a resume rewrites metrics.csv from the checkpoint's history.
    folder = run.folder
    for path in (folder.last, folder.best) if improved else (folder.last,):
        with folder.writing(path):
            save_checkpoint(state, path)
        run.notify("on_checkpoint_saved", path)
    with folder.writing(folder.metrics):
        append_metrics(folder.metrics, progress.history[-1])


def load_run_checkpoint(path: Path) -> dict[str, Any]:
    """``path`` (a ``last.pt``) with every entry a resume needs, each of the form it must have."""
    return load_checkpoint(path, required=RESUMPTION)


def check_same_run(saved: dict[str, Any], cfg: Any, path: Path) -> None:
    """``ValueError`` unless the run recorded in ``path`` (its settings ``saved``) is the run ``cfg`` describes."""
    ours, then = asdict(cfg), "checkpoint" if path.suffix == ".pt" else path.name
    differ = [f"{k}: {then} {saved.get(k)!r}, now {ours[k]!r}" for k in IDENTITY if saved.get(k) != ours[k]]
    if differ:
        raise ValueError(
            f"cannot resume {path}: the run was started with other settings ({'; '.join(differ)}). "
            "Repeat the original options, or choose another --out."
        )


def restore(run: Run, ckpt: dict[str, Any], path: Path) -> Progress:
    """Load every state of ``ckpt`` (read from ``path``) into ``run``, RNGs included; returns where the run stood."""
    check_same_run(ckpt["config"], run.cfg, path)
    load_weights(run.net, ckpt["model"], path)
    parts = [("optimizer", run.optimizer), ("scheduler", run.scheduler)]
    if run.scaler is not None and ckpt.get("scaler"):
        parts.append(("scaler", run.scaler))
    for key, part in parts:
        try:
            part.load_state_dict(ckpt[key])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(path, f"its {key} state does not fit this run ({type(err).__name__}: {err})") \
                from None
    rng = ckpt["rng"][run.proc.rank] if len(ckpt["rng"]) == run.proc.world_size else ckpt["rng"][0]
    try:
        # Now: the time projection runs under fork_rng and the data order is (seed, epoch)'s, so the
        # first step after it draws what the uninterrupted run's next step drew.
        restore_rng_state(rng)
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(path, f"its RNG state cannot be restored ({type(err).__name__}: {err})") from None
    return Progress(ckpt["epoch"], list(ckpt["history"]), ckpt.get("best_error", math.inf), best_epoch(ckpt), rng)


def best_epoch(ckpt: dict[str, Any]) -> int:
    """The epoch ``best.pt`` should hold: recorded, or (older checkpoints) the first epoch of least test error."""
    if "best_epoch" in ckpt:
        return int(ckpt["best_epoch"])
    history = ckpt.get("history") or []
    if not history:
        return 0
    return int(min(history, key=lambda row: row.get("test_error", math.inf))["epoch"])


def repair_best(folder: RunFolder, last: dict[str, Any], say) -> None:
    """Make ``best.pt`` hold the best epoch ``last.pt`` records, after a kill between the two writes.

    ``last.pt`` is written first and ``best.pt`` second, so the only state a kill can leave is a
    ``last.pt`` whose own epoch is the new best and a ``best.pt`` that is older or missing; then
    ``last.pt`` itself is the best checkpoint, and is copied.
    """
    wanted = best_epoch(last)
    if wanted == 0:
        return
    try:
        held = load_checkpoint(folder.best, required=("epoch",))["epoch"] if folder.best.exists() else None
    except CheckpointError:
        held = "unreadable"
    if held == wanted:
        return
    if wanted != last["epoch"]:
        say(f"warning: {folder.best} holds epoch {held}, but the best epoch was {wanted}, whose weights are in no "
            "checkpoint any more; best.pt is left as it is")
        return
    with folder.writing(folder.best):
        save_checkpoint(last, folder.best)
    say(f"repaired {folder.best}: it held epoch {held}, now epoch {wanted} (the best, from {folder.last})")
