"""The checks every public argument of seqlite goes through, one rule each, one message each.

Each check returns the value it accepts (as a plain ``int`` or ``float``) and raises
:class:`InvalidValue`, a ``ValueError`` naming the argument, the rule and the value given:
``k must be a positive integer, got 0``. The command line reports the same rule with the text
that was typed (``argument --epochs: must be a positive integer, got '0'``), so the rule is
kept apart from the sentence (:attr:`InvalidValue.rule`).

Integers may be of any integer type (``numpy.int64`` included: anything ``operator.index``
takes) but never ``bool``: ``True`` is an ``int`` to Python and a mistake here.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any

__all__ = ["InvalidValue", "boolean", "non_negative_int", "positive_finite", "positive_int", "probability", "seed"]


class InvalidValue(ValueError):
    """``name`` broke ``rule``; the message is ``"{name} {rule}, got {value!r}"``."""

    def __init__(self, name: str, value: Any, rule: str):
        self.name, self.value, self.rule = name, value, rule
        super().__init__(f"{name} {rule}, got {value!r}")


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def positive_int(name: str, value: Any) -> int:
    """``value`` as an ``int`` when it is an integer >= 1."""
    number = _integer(value)
    if number is None or number <= 0:
        raise InvalidValue(name, value, "must be a positive integer")
    return number


def non_negative_int(name: str, value: Any) -> int:
    """``value`` as an ``int`` when it is an integer >= 0."""
    number = _integer(value)
    if number is None or number < 0:
        raise InvalidValue(name, value, "must be a non-negative integer")
    return number


def seed(name: str, value: Any) -> int:
    """A seed numpy accepts too: an integer from 0 to 2**32 - 1."""
    number = _integer(value)
    if number is None or not 0 <= number < 2**32:
        raise InvalidValue(name, value, "must be an integer from 0 to 2**32 - 1")
    return number


def positive_finite(name: str, value: Any) -> float:
    """``value`` as a ``float`` when it is a real number > 0 and finite."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (value > 0 and math.isfinite(value)):
        raise InvalidValue(name, value, "must be a positive finite number")
    return float(value)


def probability(name: str, value: Any) -> float:
    """A dropout rate: a real number in [0, 1), as a ``float``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value < 1.0:
        raise InvalidValue(name, value, "must be in [0, 1)")
    return float(value)


def boolean(name: str, value: Any) -> bool:
    """``True`` or ``False`` only: a string such as ``"false"`` would silently count as true."""
    if not isinstance(value, bool):
        raise InvalidValue(name, value, "must be True or False")
    return value
