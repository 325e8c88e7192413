"""The ``metrics.csv`` of a training run: one row per finished epoch.

``seqlite train`` writes it (:func:`write_metrics` after a start or resume, :func:`append_metrics`
after each epoch) and :mod:`seqlite.viz` reads it (:func:`read_metrics`); neither imports the
other. Errors are in percent; ``seconds`` is the wall-clock time of the epoch.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["METRICS_COLUMNS", "append_metrics", "read_metrics", "write_metrics"]

METRICS_COLUMNS = (
    "epoch", "lr", "train_loss", "train_error", "test_loss", "test_error", "test_top5_error", "seconds",
)


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
