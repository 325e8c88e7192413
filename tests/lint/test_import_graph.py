"""The import graph of seqlite/: no cycles, and no module imports one of a higher level.

Levels, lowest first (a module may import its own level and those below):

0. foundations, which know no network: argument checks, the layer shape (``spec``), the fast
   kernel, recomputation, the checkpoint file format, the model registry (the networks
   register themselves with it, timm's ``@register_model``; it imports none of them) and the
   datasets with their statistics (the networks read their mean and std from them);
1. layers; 2. blocks; 3. networks and what is computed from them (counts, twins, the numbers
   behind the figures, depths);
4. training (``seqlite.train`` and the paper's results, which read run folders);
5. visualisation and front ends (figures, widgets, the course helpers, the command line,
   the package itself).

Every import counts: at the top, inside a function, under ``TYPE_CHECKING``. Importing
``seqlite.a.b`` also runs ``seqlite/a/__init__.py``, so that package counts as imported too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "seqlite"

LEVELS: dict[int, set[str]] = {
    0: {"_compat", "checks", "spec", "fast", "recompute", "checkpoint", "registry", "data", "data.constants",
        "data.errors", "data.digits", "data.cifar", "data.imagenet", "data.augment", "data.device",
        "data.multiscale_digits"},
    1: {"layers"},
    2: {"blocks"},
    3: {"seqresnet", "twin", "complexity", "analysis", "depths"},
    4: {"train", "train.errors", "train.config", "train.recipe", "train.devices", "train.loaders", "train.setup",
        "train.run_folder", "train.resume", "train.loop", "train.evaluate", "train.projection", "train.callbacks",
        "metrics", "accel", "paper"},
    5: {"viz", "panel", "widgets", "course", "exercises", "__main__", ""},
}
LEVEL = {name: level for level, names in LEVELS.items() for name in names}


def _modules() -> dict[str, Path]:
    """Every module of seqlite by dotted name below the package ("" is seqlite/__init__.py)."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The seqlite modules ``name`` imports (relative or absolute), with the packages that run on the way."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [p for p in package if p]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            bases = [alias.name for alias in node.names]
            names: list[str] = []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                bases = [".".join(["seqlite", *base, *([node.module] if node.module else [])])]
            else:
                bases = [node.module or ""]
            names = [alias.name for alias in node.names]
        else:
            continue
        for base in bases:
            if base != "seqlite" and not base.startswith("seqlite."):
                continue
            inner = base.removeprefix("seqlite").removeprefix(".")
            # `from .data import constants` imports a module; `from .data import DATASETS` a name.
            found = [f"{inner}.{n}".lstrip(".") for n in names if f"{inner}.{n}".lstrip(".") in modules]
            for module in found or [inner]:
                parts = module.split(".")
                targets.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    own = {".".join(name.split(".")[:i]) for i in range(len(name.split(".")) + 1)}
    return {t for t in targets if t in modules and t not in own}


GRAPH = {name: _imports(name, path, _modules()) for name, path in _modules().items()}


def test_every_module_has_a_level():
    assert sorted(set(GRAPH) - set(LEVEL)) == [], "give each new module a level in LEVELS"
    assert sorted(set(LEVEL) - set(GRAPH)) == [], "LEVELS names modules that do not exist"


@pytest.mark.parametrize("name", sorted(GRAPH))
def test_no_module_imports_a_higher_level(name):
    upward = sorted(t for t in GRAPH[name] if LEVEL.get(t, -1) > LEVEL.get(name, -1))
    assert upward == [], f"seqlite.{name} (level {LEVEL.get(name)}) imports " + ", ".join(
        f"seqlite.{t} (level {LEVEL[t]})" for t in upward)


def test_no_cycles():
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(GRAPH[name]):
            if state.get(target) == 1:
                cycle = path[path.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(f"seqlite.{m}".rstrip(".") for m in cycle))
            if target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def test_the_checker_sees_what_it_must():
    # fast imports spec (and no longer layers); seqresnet reads its statistics from the datasets' constants.
    assert "spec" in GRAPH["fast"] and "layers" not in GRAPH["fast"]
    assert {"data", "data.constants", "registry"} <= GRAPH["seqresnet"]
    assert "layers" in GRAPH[""] and "train" in GRAPH["__main__"]  # relative and function-level imports
