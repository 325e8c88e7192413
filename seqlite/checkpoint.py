"""Checkpoints: what one holds (defined once, here), written so a kill cannot tear them, read so they run no code.

* :data:`ENTRIES` is what ``seqlite train`` writes into ``last.pt`` and ``best.pt``, each entry
  with the form it must have. :func:`load_checkpoint` checks every entry a file has against it
  (and the ones a use needs: :data:`WEIGHTS`, :data:`EVALUATION`, :data:`RESUMPTION`), so a
  hand-edited or foreign file is refused with one :class:`CheckpointError` naming the file and
  the entry, whoever reads it: ``seqlite train --resume``, ``seqlite eval``, ``seqlite demo``
  and ``create_model(checkpoint_path=...)``.
* :func:`save_checkpoint` writes atomically: a temporary file in the same folder, flushed and
  fsync'ed, then ``os.replace`` onto the target and an fsync of the folder. A kill at any
  instant leaves the old file or the new one, never a torn one.
* :func:`load_checkpoint` uses ``torch.load(..., weights_only=True)``, so a checkpoint can hold
  only tensors and plain containers of numbers and strings. A missing, truncated or corrupt
  file raises :class:`CheckpointError` naming the file and the problem; nothing is deleted.
* :func:`capture_rng_state` / :func:`restore_rng_state` turn the torch, CUDA, numpy and
  Python random states into such plain data, so a resumed run draws the same numbers.
"""

from __future__ import annotations

import errno
import numbers
import os
import pickle
import random
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "ENTRIES",
    "EVALUATION",
    "RESUMPTION",
    "WEIGHTS",
    "CheckpointError",
    "capture_rng_state",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or not one of ours."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"checkpoint {self.path}: {problem}")


def _count(value: Any, least: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= least


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _tensor(value: Any, dtype: torch.dtype, length: int | None = None) -> bool:
    return (isinstance(value, torch.Tensor) and value.dtype == dtype and value.dim() == 1
            and (length is None or len(value) == length))


def _state_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _optimizer(value: Any) -> bool:
    groups = value.get("param_groups") if isinstance(value, dict) else None
    return (isinstance(value.get("state") if isinstance(value, dict) else None, dict) and isinstance(groups, list)
            and len(groups) > 0 and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups))


def _scaler(value: Any) -> bool:
    return value is None or (isinstance(value, dict) and _number(value.get("scale")))


def _history(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(row, dict) and "epoch" in row and all(isinstance(k, str) and _number(v) for k, v in row.items())
        for row in value)


def _config(value: Any) -> str | None:
    """What a run's settings need to rebuild its model: a model name, its model_args and a dataset name."""
    if not isinstance(value, dict):
        return f"is not a dict of run settings (found {_summary(value)})"
    lacking = [key for key in ("model", "model_args", "dataset") if key not in value]
    if lacking:
        return f"lacks {', '.join(lacking)}, so the model cannot be rebuilt"
    wrong = [f"{key} is {_summary(value[key])}, not {form}" for key, form, ok in (
        ("model", "a model name", isinstance(value["model"], str)),
        ("model_args", "a dict of builder arguments",
         isinstance(value["model_args"], dict) and all(isinstance(k, str) for k in value["model_args"])),
        ("dataset", "a dataset name", isinstance(value["dataset"], str))) if not ok]
    return f"has {'; '.join(wrong)}" if wrong else None


def _form(description: str, ok: Callable[[Any], bool]) -> Callable[[Any], str | None]:
    """A check that says what the entry should be when ``ok`` refuses it."""
    return lambda value: None if ok(value) else f"is not {description} (found {_summary(value)})"


def _rng_state(value: Any) -> bool:
    """One process's :func:`capture_rng_state`."""
    if not isinstance(value, dict) or set(value) != {"torch", "cuda", "numpy", "python"}:
        return False
    np_state, py_state = value["numpy"], value["python"]
    return (
        _tensor(value["torch"], torch.uint8)
        and isinstance(value["cuda"], list) and all(_tensor(s, torch.uint8) for s in value["cuda"])
        and isinstance(np_state, (list, tuple)) and len(np_state) == 5 and isinstance(np_state[0], str)
        and _tensor(np_state[1], torch.int64, 624) and _count(np_state[2]) and _count(np_state[3])
        and _number(np_state[4])
        and isinstance(py_state, (list, tuple)) and len(py_state) == 3 and _count(py_state[0])
        and isinstance(py_state[1], (list, tuple)) and len(py_state[1]) == 625 and all(_count(n) for n in py_state[1])
        and (py_state[2] is None or _number(py_state[2]))
    )


# What a checkpoint of `seqlite train` holds: entry -> its check (None, or what is wrong with the value).
ENTRIES: dict[str, Callable[[Any], str | None]] = {
    "model": _form("a state dict (parameter names -> tensors)", _state_dict),
    "optimizer": _form("an optimizer state dict (a 'state' dict and a non-empty list of 'param_groups')", _optimizer),
    "scheduler": _form("a learning-rate scheduler state dict", lambda v: isinstance(v, dict)),
    "scaler": _form("a GradScaler state dict or None", _scaler),
    "epoch": _form("a non-negative integer (the epochs done)", _count),
    "best_error": _form("a number", _number),
    "best_epoch": _form("a non-negative integer", _count),
    "history": _form("a list of metrics rows (dicts of numbers with an 'epoch')", _history),
    "config": _config,
    "num_classes": _form("a positive integer", lambda v: _count(v, 1)),
    "in_chans": _form("a positive integer", lambda v: _count(v, 1)),
    "rng": _form("a non-empty list of RNG states (torch, cuda, numpy, python), one per process",
                 lambda v: isinstance(v, list) and len(v) > 0 and all(_rng_state(s) for s in v)),
    "world_size": _form("a positive integer", lambda v: _count(v, 1)),
}
# The entries each use needs: a model's weights, an evaluation, a resumed run.
WEIGHTS = ("model",)
EVALUATION = ("model", "config", "num_classes", "in_chans")
RESUMPTION = ("model", "optimizer", "scheduler", "epoch", "config", "rng", "history")


def _check_entries(state: dict[str, Any], path: Path, required: Iterable[str]) -> None:
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(path, f"missing entries {missing}; found {sorted(state, key=str)}")
    for key, check in ENTRIES.items():
        problem = check(state[key]) if key in state else None
        if problem:
            raise CheckpointError(path, f"its {key} {problem}")
    if "epoch" in state and "history" in state and len(state["history"]) != state["epoch"]:
        raise CheckpointError(path, f"its history has {len(state['history'])} rows for {state['epoch']} epochs")
    if "epoch" in state and "best_epoch" in state and state["best_epoch"] > state["epoch"]:
        raise CheckpointError(path, f"its best epoch {state['best_epoch']} is after its last, {state['epoch']}")


def _summary(value: Any) -> str:
    text = repr(value) if not isinstance(value, (dict, list, torch.Tensor)) else type(value).__name__
    if isinstance(value, (dict, list)):
        text += f" of {len(value)}"
    return text if len(text) <= 60 else text[:57] + "..."


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically; returns the path.

    The temporary file lives in the target's folder so that ``os.replace`` is a rename
    within one file system (atomic on POSIX and Windows). A write that fails raises ``OSError``,
    ``ENOSPC`` when the disk is full, also where torch's zip writer reports it as a
    ``RuntimeError`` (``[enforce fail at inline_container.cc] unexpected pos``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
        except RuntimeError as err:
            if not any(mark in str(err) for mark in ("inline_container", "PytorchStreamWriter", "unexpected pos")):
                raise
            cause = err.__cause__ or err.__context__  # the file's own OSError, when torch wrote through Python
            raise (cause if isinstance(cause, OSError) else _write_error(path.parent, err)) from err
        os.replace(tmp, path)
    except BaseException:
        # Whatever went wrong (disk full, Ctrl-C, an unpicklable value), the old file stays.
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _write_error(folder: Path, err: RuntimeError) -> OSError:
    """An ``OSError`` for a failed write of torch's zip writer that kept no ``errno``: ``ENOSPC`` if the disk is full.

    Asked while the half-written file still holds its space.
    """
    try:
        usage = os.statvfs(folder)
        full = usage.f_bavail * usage.f_frsize < 64 * 1024
    except (AttributeError, OSError):  # no statvfs on Windows
        full = False
    if full:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return OSError(errno.EIO, f"the checkpoint writer failed ({str(err).splitlines()[0]})")


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on Windows, where it is not needed.
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(
    path: str | os.PathLike,
    map_location: str | torch.device = "cpu",
    required: Iterable[str] = ("model",),
) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; :class:`CheckpointError` if it is unusable.

    ``required``: the entries the caller needs (:data:`WEIGHTS`, :data:`EVALUATION`,
    :data:`RESUMPTION`); every entry of :data:`ENTRIES` the file has is checked for its form.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "file is empty (0 bytes)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # weights_only refuses anything that would have to run code to be rebuilt.
        raise CheckpointError(path, f"not a plain-data checkpoint, refused by weights_only loading ({err})") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise CheckpointError(path, f"truncated or corrupt file ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict):
        raise CheckpointError(path, f"expected a dict, found {type(state).__name__}")
    _check_entries(state, path, required)
    return state


def capture_rng_state() -> dict[str, Any]:
    """Every random state a training step touches, as tensors and plain containers."""
    mt_name, mt_keys, mt_pos, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [mt_name, torch.from_numpy(mt_keys.astype(np.int64)), int(mt_pos), int(has_gauss),
                  float(cached_gaussian)],
        "python": [version, list(internal), gauss_next],
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state` (CUDA states: as many as there are visible devices)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        # A run saved on more GPUs than are visible now (two GPUs, resumed on Colab's one):
        # restore the devices that exist; the others' states have no device to go to.
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
    mt_name, mt_keys, mt_pos, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((mt_name, mt_keys.numpy().astype(np.uint32), mt_pos, has_gauss, cached_gaussian))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
