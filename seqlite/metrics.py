"""Moved: ``metrics.csv`` is read and written by :mod:`seqlite.train.run_folder`, the owner of the run folder.

Kept so that code written before the move still imports from here.
"""

from .train.run_folder import METRICS_COLUMNS, append_metrics, read_metrics, write_metrics

__all__ = ["METRICS_COLUMNS", "append_metrics", "read_metrics", "write_metrics"]
