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


def test_runtime_dependencies_are_torch_and_torchvision_only():
    deps = [re.split(r"[<>=!~ \[]", d)[0] for d in _pyproject()["project"]["dependencies"]]
    assert sorted(deps) == ["torch", "torchvision"]


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
