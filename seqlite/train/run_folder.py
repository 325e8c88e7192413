"""The run folder, the one place that knows its files: checkpoints, ``metrics.csv``, ``config.json``.

A run folder ``out`` holds ``config.json`` (the resolved configuration, written at the start),
``metrics.csv`` (one row per finished epoch), ``last.pt`` and ``best.pt`` (after every epoch;
``best.pt`` on a new best) and ``projection.json`` (the time projection). :class:`RunFolder`
names them; ``seqlite train``, ``seqlite demo``, :mod:`seqlite.paper` and :mod:`seqlite.viz`
all find them through it.

Nothing is replaced unasked: a folder holding any run file is a run (:meth:`RunFolder.holds_run`),
and one run at a time writes to a folder (:meth:`RunFolder.lock`, an ``fcntl.flock`` on a lock
file that the kernel releases when its process dies, however it dies).
Writes are atomic (a temporary file, then ``os.replace``) except the appended metrics row, which a
resume rewrites from the checkpoint; leftovers of writes a kill interrupted are removed when a
run starts there. A failed write becomes one :class:`~seqlite.train.OutputError` naming the file.

``metrics.csv``: :data:`METRICS_COLUMNS`, errors in percent, ``seconds`` the wall-clock time of
the epoch; :func:`read_metrics` reads it (and already-read rows) for plots and comparisons.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import math
import os
import warnings

try:
    import fcntl
except ImportError:  # Windows: no flock; runs there are not protected from a second run on the same folder
    fcntl = None
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..checkpoint import CheckpointError, load_checkpoint
from .errors import ConfigError, OutputError

__all__ = [
    "METRICS_COLUMNS",
    "RUN_FILES",
    "RunFolder",
    "append_metrics",
    "read_metrics",
    "run_files",
    "write_metrics",
]

RUN_FILES = ("last.pt", "best.pt", "metrics.csv", "config.json", "projection.json")
LOCK_FILE = ".seqlite-run.lock"  # exists only while a run holds the folder (or after a killed one, unlocked)
METRICS_COLUMNS = (
    "epoch", "lr", "train_loss", "train_error", "test_loss", "test_error", "test_top5_error", "seconds",
)
# The lock files this process holds, by descriptor. A forked child (a DataLoader worker) closes its
# copies at once: a flock belongs to the open file, which the copies share, so a worker outliving its
# killed parent for a few seconds would otherwise keep the folder locked.
_HELD_LOCKS: set[int] = set()


def _close_inherited_locks() -> None:
    for fd in _HELD_LOCKS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_inherited_locks)


def run_files(folder: str | os.PathLike) -> list[str]:
    """The run files (:data:`RUN_FILES`) present in ``folder``."""
    return RunFolder(Path(folder)).files()


@dataclass(frozen=True)
class RunFolder:
    """The files of a run in ``path`` (a ``str`` or path-like is made a ``Path``)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def projection(self) -> Path:
        return self.path / "projection.json"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the folder for this run: a second run on it is refused until this one ends.

        Makes the folder. The lock is an ``fcntl.flock`` on :data:`LOCK_FILE`, which the kernel
        releases when the process ends, however it ends (forked loader workers close their copies
        of it): the file a killed run leaves behind locks nothing. Without ``fcntl`` (Windows)
        nothing is locked.
        """
        with self.writing(self.path):
            self.path.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            yield
            return
        path = self.path / LOCK_FILE
        while True:
            with self.writing(path):
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
                os.close(fd)
                raise FileExistsError(f"{self.path} is in use by another seqlite run (process {holder}); wait for it "
                                      "to end, or choose another --out") from None
            try:  # locked; but if the file was replaced meanwhile (a run ending), the lock is on a dead file
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        _HELD_LOCKS.add(fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            yield
        finally:
            path.unlink(missing_ok=True)  # before the lock goes: no later run can lock this file
            _HELD_LOCKS.discard(fd)
            os.close(fd)

    def files(self) -> list[str]:
        """The run files present, in :data:`RUN_FILES` order."""
        return [name for name in RUN_FILES if (self.path / name).exists()] if self.path.is_dir() else []

    def holds_run(self, resume: bool, overwrite: bool) -> bool:
        """Whether a run continues the one here (``resume``); refuses to replace a run unasked.

        Any run file means a run is there, not only ``last.pt``: a folder holding only an earlier
        run's ``best.pt`` or ``metrics.csv`` is not empty. Nothing is written here.
        """
        self.check_writable()
        present = self.files()
        if not present or overwrite:
            return False
        if resume and self.last.exists():
            return True
        if resume and self.unstarted():
            return False  # started but stopped before its first epoch ended: start it (again)
        listed = ", ".join(present)
        if resume:
            raise FileExistsError(
                f"{self.path} holds a run ({listed}) but no last.pt to resume it from; pass --overwrite to replace "
                "it, or choose another --out"
            )
        raise FileExistsError(
            f"{self.path} already holds a run ({listed}); pass --resume to continue it, --overwrite to start afresh "
            "there, or choose another --out"
        )

    def unstarted(self) -> bool:
        """Whether the run here never finished an epoch: its ``config.json`` and a header-only ``metrics.csv``.

        What a run stopped during its first epoch leaves (its projection too, perhaps).
        """
        if not {"config.json", "metrics.csv"} <= set(self.files()) <= {"config.json", "metrics.csv", "projection.json"}:
            return False
        try:
            with open(self.metrics, newline="") as f:
                rows = [row for row in csv.reader(f) if row]
        except OSError:
            return False
        return rows == [list(METRICS_COLUMNS)]

    def check_writable(self) -> None:
        """Refuse a folder that cannot become a writable folder, before any dataset is loaded."""

        def refuse(problem: str):
            return ConfigError("out", f"out {str(self.path)!r} {problem}")

        limit = os.pathconf("/", "PC_NAME_MAX") if hasattr(os, "pathconf") else 255
        too_long = [part for part in self.path.parts if len(os.fsencode(part)) > limit]
        if too_long:
            raise refuse(f"cannot be made: a name of {len(os.fsencode(too_long[0]))} bytes is longer than the "
                         f"{limit} the file system allows")
        existing = self.path
        try:
            while not existing.exists() and existing != existing.parent:
                existing = existing.parent
        except OSError as err:
            raise refuse(f"cannot be made: {err.strerror or err}") from None
        if existing == self.path and not self.path.is_dir():
            raise refuse("is a file, not a folder")
        if not existing.is_dir():
            raise refuse(f"cannot be made: {existing} is a file, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise refuse(f"cannot be written: {existing} is not writable for this user")

    @contextlib.contextmanager
    def writing(self, path: Path) -> Iterator[None]:
        """Turn a failed write of ``path`` into one :class:`OutputError` that names it."""
        try:
            yield
        except OSError as err:
            problem = "no space left on the device" if err.errno == errno.ENOSPC else (err.strerror or str(err))
            kept = f"; the last good checkpoint {self.last} is kept (continue with --resume)" if self.last.exists() \
                else ""
            raise OutputError(f"cannot write {path}: {problem}{kept}") from err

    def prepare(self, config: Mapping[str, Any], history: list[dict[str, float]], fresh: bool) -> None:
        """Make the folder; write ``config.json`` and ``metrics.csv`` (after a resume: the checkpointed epochs).

        Temporary files left by writes that a kill interrupted are removed: they are never read.
        ``fresh`` (not a resume): an old ``last.pt`` or ``best.pt`` there is removed, so that it
        cannot be resumed as if it were this run's.
        """
        with self.writing(self.path):
            self.path.mkdir(parents=True, exist_ok=True)
            for name in RUN_FILES:
                for leftover in self.path.glob(f".{name}.*tmp"):
                    leftover.unlink(missing_ok=True)
            if fresh:
                self.last.unlink(missing_ok=True)
                self.best.unlink(missing_ok=True)
        self.write_json(self.config, config)
        with self.writing(self.metrics):
            write_metrics(self.metrics, history)

    def write_json(self, path: Path, data: Mapping[str, Any]) -> None:
        """``data`` as indented JSON in ``path``, replaced atomically (tuples in model_args become lists)."""
        tmp = path.with_name(f".{path.name}.tmp")
        with self.writing(path):
            try:
                tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

    def read_config(self) -> dict[str, Any] | None:
        """The settings of the run here: ``config.json``, else those stored in its checkpoints; None if none."""
        try:
            saved = json.loads(self.config.read_text(encoding="utf-8"))
            if isinstance(saved, dict):
                return saved
        except (OSError, ValueError):
            pass
        for path in (self.last, self.best):
            try:
                return load_checkpoint(path, required=("config",))["config"]
            except CheckpointError:
                continue
        return None


# --- metrics.csv ------------------------------------------------------------------------------


def write_metrics(path: str | os.PathLike, history: Iterable[Mapping[str, float]]) -> None:
    """Rewrite ``path`` from ``history`` atomically (after a resume: exactly the checkpointed epochs)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRICS_COLUMNS)
            writer.writeheader()
            writer.writerows(history)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def append_metrics(path: str | os.PathLike, row: Mapping[str, float]) -> None:
    """Add one epoch's row. A kill mid-write can tear this last row; a resume rewrites the file."""
    with open(path, "a", newline="") as f:
        csv.DictWriter(f, fieldnames=METRICS_COLUMNS).writerow(row)


def read_metrics(source: str | os.PathLike | Iterable[Mapping[str, Any]]) -> list[dict[str, float]]:
    """Rows of a training ``metrics.csv`` (or already-read rows) as floats.

    Needs ``epoch`` and at least one of the loss/error columns of :data:`METRICS_COLUMNS`;
    empty cells (e.g. no test evaluation that epoch) become NaN. A torn last line of a file
    (the run was killed while writing it, or is writing it right now) is skipped with a
    warning; a torn line anywhere else is an error naming the line.
    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            lines = [(reader.line_num, values) for values in reader if values]
        raw_rows: list[Mapping[str, Any]] = []
        for index, (line, values) in enumerate(lines):
            if len(values) != len(header) or not _is_number(values[header.index("epoch")] if "epoch" in header else ""):
                if index == len(lines) - 1:
                    warnings.warn(f"{source}: skipped the incomplete last line {line} ({','.join(values)!r})",
                                  stacklevel=2)
                    continue
                raise ValueError(f"{source}: line {line} has {len(values)} of the {len(header)} columns "
                                 f"{', '.join(header)}: {','.join(values)!r}")
            raw_rows.append(dict(zip(header, values)))
        columns = set(header)
    else:
        raw_rows = list(source)
        columns = set(raw_rows[0]) if raw_rows else set()
    if not raw_rows:
        raise ValueError("metrics must contain at least one row (one epoch)")
    if "epoch" not in columns or not columns & {"train_loss", "train_error", "test_loss", "test_error"}:
        raise ValueError(f"metrics must have the columns {', '.join(METRICS_COLUMNS)}; got {sorted(columns)}")
    rows = []
    for raw in raw_rows:
        row = {}
        for key, value in raw.items():
            if key is None:
                continue
            try:
                row[key] = math.nan if value in ("", None) else float(value)
            except (TypeError, ValueError):
                continue  # a text column the plot does not use
        rows.append(row)
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
