"""Checkpoints that survive a kill and never run code when loaded.

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

import os
import pickle
import random
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
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


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically; returns the path.

    The temporary file lives in the target's folder so that ``os.replace`` is a rename
    within one file system (atomic on POSIX and Windows).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Whatever went wrong (disk full, Ctrl-C, an unpicklable value), the old file stays.
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


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
    """Load a checkpoint with ``weights_only=True``; :class:`CheckpointError` if it is unusable."""
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
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(path, f"missing entries {missing}; found {sorted(state)}")
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
