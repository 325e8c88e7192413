"""Checks for the course's exercises: say what is wrong and how to look for it.

Every exercise of the notebooks has a check function built on :class:`Check`. A
check never stops at a bare ``assert``: each failed expectation prints what was
expected, what came out and a hint. An unanswered exercise (an answer left at
``None``, or a function that still raises ``NotImplementedError``) prints how to
start instead of failing.

Solution cells call the same check with ``strict=True, quiet=True``: silent when the
solution is right, :class:`ExerciseError` when it is not. So a solution cell has no
output to store (it cannot give the answer away under the exercise), and a notebook
run, nbval's included, fails when a solution stops matching the library.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["Check", "ExerciseError", "unanswered"]


class ExerciseError(AssertionError):
    """A check run with ``strict=True`` (a solution cell's) found a problem."""


def unanswered(**answers: Any) -> bool:
    """True (and say which) when any answer is still ``None``."""
    missing = [name for name, value in answers.items() if value is None]
    if missing:
        print(f"Not answered yet: fill in {', '.join(missing)} above (or open the solution below).")
    return bool(missing)


class Check:
    """Collect the problems of one answer, then report them (:meth:`result`).

    >>> check = Check("groups of SeqConv2d(16, 48, k=8)")
    >>> check.equal(5, 6, "number of groups", "g = out_channels / k")
    False
    >>> check.result("right", strict=False)  # doctest: +NORMALIZE_WHITESPACE
    Not yet: groups of SeqConv2d(16, 48, k=8)
      - number of groups: expected 6, got 5
        hint: g = out_channels / k
    False
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self.problems: list[tuple[str, str]] = []
        self.unanswered = False

    def expect(self, ok: bool, wrong: str, hint: str) -> bool:
        """Record ``wrong`` (what is wrong) and ``hint`` unless ``ok``."""
        if not ok:
            self.problems.append((wrong, hint))
        return bool(ok)

    def equal(self, got: Any, want: Any, what: str, hint: str) -> bool:
        """``got == want`` for numbers, tuples, lists."""
        return self.expect(got == want, f"{what}: expected {want!r}, got {got!r}", hint)

    def close(self, got: Any, want: torch.Tensor, what: str, hint: str, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
        """``got`` is a tensor of ``want``'s shape whose values match up to float rounding."""
        if not isinstance(got, torch.Tensor):
            return self.expect(False, f"{what}: expected a tensor, got {type(got).__name__}", hint)
        if got.shape != want.shape:
            return self.expect(False, f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}", hint)
        got_f, want_f = got.detach().float().cpu(), want.detach().float().cpu()
        same_nan = torch.equal(got_f.isnan(), want_f.isnan())
        if not same_nan:
            where = (got_f.isnan() != want_f.isnan()).nonzero()[0].tolist()
            return self.expect(False, f"{what}: NaN (blank) cells differ, first at index {where}", hint)
        known = ~want_f.isnan()
        if not known.any():
            return True
        diff = (got_f[known] - want_f[known]).abs()
        worst = int(diff.argmax())
        ok = bool((diff <= atol + rtol * want_f[known].abs()).all())
        return self.expect(
            ok, f"{what}: values differ by up to {float(diff[worst]):.3g} (expected {float(want_f[known][worst]):.4g}, "
            f"got {float(got_f[known][worst]):.4g})", hint
        )

    def call(self, fn: Callable[..., Any], *args: Any, what: str = "your function") -> tuple[bool, Any]:
        """Call ``fn(*args)``: ``(True, result)``, or ``(False, None)`` with the error recorded.

        ``NotImplementedError`` marks the exercise unanswered rather than wrong.
        """
        try:
            return True, fn(*args)
        except NotImplementedError:
            self.unanswered = True
            return False, None
        except Exception as error:  # the student's code: report any error instead of a traceback
            wrong = f"{what} raised {type(error).__name__}: {error}"
            self.problems.append((wrong, "read the error message; check the shapes and slices in your code"))
            return False, None

    def result(self, success: str, *, strict: bool = False, quiet: bool = False) -> bool:
        """Print ``success`` or every problem with its hint; True when there is no problem.

        ``strict=True`` (solution cells) raises :class:`ExerciseError` instead of printing
        problems; ``quiet=True`` prints nothing on success.
        """
        if self.unanswered and not self.problems:
            message = "Not answered yet: replace `raise NotImplementedError` by your code (or open the solution below)."
            if strict:
                raise ExerciseError(message)
            print(message)
            return False
        if self.problems:
            lines = [f"Not yet: {self.title}"]
            lines += [f"  - {wrong}\n    hint: {hint}" for wrong, hint in self.problems]
            if strict:
                raise ExerciseError("\n".join(lines))
            print("\n".join(lines))
            return False
        if not quiet:
            print(f"Correct: {success}")
        return True
