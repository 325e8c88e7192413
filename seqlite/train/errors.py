"""How a run can end badly, so that the command line can answer each with its exit code.

Bad input (:class:`ConfigError`, and a run folder that cannot be written, :class:`OutputError`)
is answered with one line and exit code 2; a diverging run (:class:`NonFiniteLossError`) with
exit code 1.
"""

from __future__ import annotations

__all__ = ["ConfigError", "NonFiniteLossError", "OutputError"]


class ConfigError(ValueError):
    """A :class:`~seqlite.train.TrainConfig` field has a value it cannot have; ``option`` names the field."""

    def __init__(self, option: str, message: str):
        self.option = option
        super().__init__(message)


class NonFiniteLossError(FloatingPointError):
    """The training or test loss became NaN or infinite; the run stopped before saving that epoch."""


class OutputError(RuntimeError):
    """A file of the run folder could not be written (no space left, read-only, not a folder...)."""
