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

**Build exercises switch the library off.** An exercise that rebuilds a piece of
``seqlite`` (a layer's forward pass, a block) compares the reader's code with that piece,
so an answer that simply calls the piece would pass. A check prevents this by naming
what the exercise rebuilds: ``Check(title, rebuilds=[...])``. Every :meth:`Check.call`
(the only way a check runs the reader's code) then runs inside :func:`library_off`,
which swaps those pieces for stand-ins that raise :class:`LibraryCallError` ("you
called the library's X; build it yourself"), and records the call even when the
reader's code catches the error. The check's own reference computations run outside
``call``, with the library intact; everything is restored when ``call`` returns::

    check = Check("WSeqConv by slicing (Eq. 2)", rebuilds=[SeqConv2d, SeqConv2d.views, seqconv_forward])
    ok, got = check.call(my_windowed_seqconv, layer, x0)   # library pieces off
    want = layer(x0)                                       # library on again
    check.close(got, want, "output", "hint")

What to list: the class, function or property the exercise asks the reader to write,
and every other public way to get the same numbers (the fast kernel, the mask form,
the helpers that compute the answer's key step). Leave alone what the exercise hands
over (e.g. a layer's group transforms ``F_i`` when the exercise is the aggregation).
:func:`library_off` documents what each kind of target switches off.

*Predict, then run* cells use :func:`check_prediction`: the reader writes a guess in one
cell, the next computes the answer and compares.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "Check",
    "ExerciseError",
    "LibraryCallError",
    "LibraryGuard",
    "check_prediction",
    "library_off",
    "unanswered",
]

# The methods a class target switches off besides building one (``__init__``): running an
# instance. Only those the class defines itself; a subclass inherits the stand-ins.
CLASS_ENTRY_POINTS = ("forward", "forward_residual")


class ExerciseError(AssertionError):
    """A check run with ``strict=True`` (a solution cell's) found a problem."""


class LibraryCallError(RuntimeError):
    """The reader's code called a library piece that its exercise asks it to rebuild."""


@dataclass
class LibraryGuard:
    """What :func:`library_off` switched off (``names``) and what was called anyway (``calls``)."""

    names: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)


_MISSING = object()


def _owner(qualname: str, module: str) -> tuple[Any, str]:
    """The object that holds ``module.qualname`` as an attribute, and the attribute's name."""
    if "<locals>" in qualname:
        raise ValueError(f"cannot switch off {module}.{qualname}: it is defined inside a function")
    owner: Any = importlib.import_module(module)
    *path, name = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    return owner, name


def _slots(target: object) -> list[tuple[Any, str, str, bool]]:
    """``(owner, attribute, readable name, is_property)`` for every attribute ``target`` stands for."""
    if isinstance(target, tuple):
        owner, name = target
        label = getattr(owner, "__name__", type(owner).__name__)
        is_property = isinstance(getattr(owner, name, None), property | functools.cached_property)
        return [(owner, name, f"{label}.{name}", is_property)]
    if isinstance(target, type):
        slots = [(target, "__init__", f"{target.__name__} (building one)", False)]
        slots += [(target, n, f"{target.__name__}.{n}", False) for n in CLASS_ENTRY_POINTS if n in vars(target)]
        return slots
    if isinstance(target, property | functools.cached_property):
        function = target.fget if isinstance(target, property) else target.func
        owner, name = _owner(function.__qualname__, function.__module__)
        return [(owner, name, function.__qualname__, True)]
    function = getattr(target, "__func__", target)  # a bound classmethod -> its function
    if not callable(function) or not hasattr(function, "__qualname__"):
        raise ValueError(f"library_off takes classes, functions, properties or (owner, name) pairs, got {target!r}")
    owner, name = _owner(function.__qualname__, function.__module__)
    return [(owner, name, function.__qualname__, False)]


def _aliases(functions: dict[int, tuple[Any, str]]) -> list[tuple[Any, str, str, bool]]:
    """Every other module-level name bound to one of ``functions`` (``id -> (defining module, label)``).

    A module-level function is also bound wherever it was imported (`from seqlite.layers import
    group_views`, seqlite's own re-exports, the notebook's namespace, which is ``sys.modules["__main__"]``
    in a Jupyter kernel). One pass over the loaded modules finds them all.
    """
    slots = []
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for alias, value in list(namespace.items()):
            found = functions.get(id(value))
            if found is not None and module is not found[0]:
                slots.append((module, alias, found[1], False))
    return slots


@contextmanager
def library_off(*targets: object, hint: str = "build it yourself") -> Iterator[LibraryGuard]:
    """Switch the library pieces ``targets`` off while the block runs; yields a :class:`LibraryGuard`.

    A switched-off piece raises :class:`LibraryCallError` when used, naming itself, and
    is added to ``guard.calls`` (so an answer that catches the error is still caught).
    Targets:

    * a class: building one (``__init__``) and running one (its own ``forward`` and
      ``forward_residual``), for every instance and subclass, made before the block or in it;
    * a method, classmethod or module-level function (``SeqConv2d.forward_residual``,
      ``seqlite.fast.seqconv_forward``): a function is switched off in its module and under
      every name any loaded module (the notebook's namespace included) has bound it to;
    * a property or ``functools.cached_property`` (``SeqConv2d.views``): reading it raises,
      a value cached on an instance included;
    * an ``(owner, "name")`` pair: that attribute of a class or module.

    Everything is put back when the block ends, however it ends.
    """
    guard = LibraryGuard()
    saved: list[tuple[Any, str, object]] = []

    def stand_in(label: str) -> Callable[..., Any]:
        def switched_off(*args: Any, **kwargs: Any) -> Any:
            guard.calls.append(label)
            raise LibraryCallError(f"you called the library's {label}; this exercise rebuilds it, so {hint}")

        return switched_off

    slots = [slot for target in targets for slot in _slots(target)]
    # Module-level functions: also every name they were imported under. Keyed by id: each function
    # stays bound in its module throughout, so no id can be reused while we look.
    functions = {id(vars(owner)[name]): (owner, label) for owner, name, label, is_property in slots
                 if isinstance(owner, type(sys)) and callable(vars(owner).get(name))}
    slots += _aliases(functions)
    try:
        for owner, name, label, is_property in slots:
            saved.append((owner, name, vars(owner).get(name, _MISSING)))
            replacement = stand_in(label)
            setattr(owner, name, property(replacement) if is_property else replacement)
            if label not in guard.names:
                guard.names.append(label)
        yield guard
    finally:
        for owner, name, original in reversed(saved):
            if original is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def check_prediction(guess: Any, actual: Any, why: str, *, tolerance: float = 0.0) -> bool | None:
    """The second half of a *predict, then run* pair: compare the reader's ``guess`` with ``actual``.

    Prints whether the guess was right (numbers within ``tolerance``; sequences compared
    element by element) and ``why``; a guess left at ``None`` prints a reminder instead.
    Returns ``None`` (no guess), ``True`` or ``False``.
    """
    if guess is None:
        print("No prediction written above: write one down first, then run this cell again.")
        return None

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            return abs(a - b) <= tolerance
        return a == b

    right = same(guess, actual)
    print(f"Your prediction {guess!r}: {'right' if right else 'not quite'}. {why}")
    return right


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

    def __init__(self, title: str, *, rebuilds: Iterable[object] = ()) -> None:
        self.title = title
        self.rebuilds = tuple(rebuilds)  # library pieces switched off while the reader's code runs
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
        """Call ``fn(*args)`` with :attr:`rebuilds` switched off: ``(True, result)``, or ``(False, None)``.

        ``NotImplementedError`` marks the exercise unanswered rather than wrong. Any other
        error is recorded as a problem; so is a call to a switched-off library piece, even
        one the reader's code caught (see :func:`library_off`).
        """
        with library_off(*self.rebuilds) as guard:
            try:
                result = fn(*args)
            except NotImplementedError:
                if not guard.calls:
                    self.unanswered = True
                    return False, None
                result = None
            except LibraryCallError:
                result = None
            except Exception as error:  # the student's code: report any error instead of a traceback
                if not guard.calls:
                    wrong = f"{what} raised {type(error).__name__}: {error}"
                    self.problems.append((wrong, "read the error message; check the shapes and slices in your code"))
                    return False, None
                result = None
        if guard.calls:
            called = ", ".join(dict.fromkeys(guard.calls))
            self.problems.append((
                f"{what} used the library's {called}: the exercise asks you to write that part yourself",
                "use torch and the pieces the exercise hands you; switched off while your code runs: "
                + ", ".join(guard.names),
            ))
            return False, None
        return True, result

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
