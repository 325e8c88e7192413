"""What goes wrong with a dataset on disk: not there, or not readable. Every message names the file."""

from __future__ import annotations

__all__ = ["CorruptDataError", "DatasetNotFoundError"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk and could not be downloaded."""


class CorruptDataError(ValueError):
    """A dataset file cannot be read (truncated, corrupt, not in its format); the message names the file."""

    def __init__(self, message: str):
        # A DataLoader worker's error comes back as type(error)(a text with the worker's traceback);
        # keep its last line, the message itself.
        marker = f"{type(self).__name__}: "
        if "Original Traceback" in message and marker in message:
            message = message.rsplit(marker, 1)[1].strip()
        super().__init__(message)
