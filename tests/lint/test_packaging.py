"""The README is the contract: its commands, the CI script, pyproject and environment.yml agree.

Repository lint, kept apart from the behaviour tests in ``tests/``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_runtime_dependencies_are_torch_torchvision_and_numpy_only():
    deps = [re.split(r"[<>=!~ \[]", d)[0] for d in _pyproject()["project"]["dependencies"]]
    assert sorted(deps) == ["numpy", "torch", "torchvision"]


# Declared, but used only by the notebooks, the lint and the browser tests, which need the main
# environment: the floor step does not install them (pyproject.toml says so).
NOT_IN_THE_FLOOR_STEP = {"jupyterlab", "torchviz", "nbval", "ruff", "playwright"}


def _declared_floors() -> dict[str, str]:
    project = _pyproject()["project"]
    floors: dict[str, str] = {}
    for requirement in project["dependencies"] + sum(project["optional-dependencies"].values(), []):
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9][0-9.]*)", requirement)
        assert match, f"{requirement!r}: every requirement is name>=floor, the oldest version CI tests"
        name, floor = match.group(1).lower(), match.group(2)
        assert floors.setdefault(name, floor) == floor, f"{name} has two floors"
    return floors


def _floor_step() -> tuple[str, dict[str, str]]:
    text = (ROOT / ".ci" / "floors").read_text()
    python = re.search(r"^PYTHON_FLOOR=(\S+)$", text, re.M).group(1)
    block = re.search(r"^FLOORS=\((.*?)^\)", text, re.M | re.S).group(1)
    pins = dict(line.strip().split("==") for line in block.splitlines() if line.strip())
    return python, {name.lower(): version for name, version in pins.items()}


def test_the_floor_step_installs_exactly_the_declared_floors():
    version = pytest.importorskip("packaging.version").Version
    python, pins = _floor_step()
    assert python == _pyproject()["project"]["requires-python"].removeprefix(">=")
    floors = _declared_floors()
    assert set(pins) == set(floors) - NOT_IN_THE_FLOOR_STEP
    wrong = {name: (pin, floors[name]) for name, pin in pins.items() if version(pin) != version(floors[name])}
    assert not wrong, f"(installed by .ci/floors, declared in pyproject.toml) differ: {wrong}"


def test_ci_fails_when_the_floor_or_the_variation_step_fails():
    ci = (ROOT / ".ci" / "run").read_text()
    for step, variable in (("floors", "floors"), ("variations", "variations")):
        assert re.search(rf"^bash \.ci/{step} \|\| {variable}=\$\?$", ci, re.M), step
        assert f'"${variable}"' in ci.split("for step in", 1)[1].splitlines()[0], f"{step}'s exit code is not used"


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = _pyproject()["project"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert sorted(p for p in pip if not p.startswith("-e")) == sorted(project["dependencies"])
    editable = [p for p in pip if p.startswith("-e")]
    assert len(editable) == 1
    extras = re.search(r"\[(.*)\]", editable[0]).group(1).split(",")
    assert sorted(extras) == sorted(project["optional-dependencies"])
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))


def _quick_start_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_readme_quick_start_is_two_commands_that_ci_runs():
    setup, test = _quick_start_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert setup.startswith("bash setup.sh") and f"{setup} --no-start" in ci
    assert re.search(rf"^{re.escape(test)}\b", ci, re.M), f"CI does not run the README's test command {test!r}"
    assert (ROOT / "setup.sh").exists()


def test_console_script_is_declared():
    assert _pyproject()["project"]["scripts"]["seqlite"] == "seqlite.__main__:main"


@pytest.mark.skipif(shutil.which("ruff") is None and not (Path(sys.executable).parent / "ruff").exists(),
                    reason="ruff is not installed (pip install -e '.[dev]')")
def test_ruff_is_clean():
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff) if ruff.exists() else "ruff", "check", "."], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_model_table_matches_counted_parameters():
    import seqlite

    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \|(.*)$", readme, re.M)
    # Every network of a fixed size has a row; seqresnet_cifar is the template for any k, r, n.
    assert {name for name, _ in rows} == set(seqlite.list_models()) - {"seqresnet_cifar"}
    for name, rest in rows:
        counted = re.findall(r"([\d.]+)M", rest)[1]
        assert f"{seqlite.count_params(seqlite.create_model(name)) / 1e6:.2f}" == counted, name


def test_readme_model_table_errors_are_the_papers():
    from seqlite import paper

    readme = (ROOT / "README.md").read_text()
    for name, rest in re.findall(r"^\| `(\w+)` \|(.*)$", readme, re.M):
        last = rest.rstrip(" |").rsplit("|", 1)[1].strip()
        row = paper.lookup(name, dataset="cifar10" if "_k" in name else "imagenet")
        expected = (row.c10_error, row.c100_error) if "_k" in name else (row.top1_error, row.top5_error)
        assert last == " / ".join(f"{e:.2f}" for e in expected), (name, last, expected)
