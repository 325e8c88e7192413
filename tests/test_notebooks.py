"""The course notebooks' shared conventions, checked on the committed files (no kernel is started).

nbval (see README) re-runs the notebooks and compares outputs; these tests check what nbval
cannot: every notebook opens the same way (Colab badge, paper link, learning goals, the one
set-up cell), ends with an exercise the reader can check, was committed executed and clean,
and reads nothing outside the repository.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from seqlite.course import COLAB_ROOT

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
# The course of issue 4: ten notebooks, 00 to 09.
COURSE_NUMBERS = [f"{n:02d}" for n in range(10)]


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def markdown(nb: dict) -> str:
    return "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")


def test_the_course_has_all_ten_notebooks_named_nn_name() -> None:
    numbers = [p.name[:2] for p in NOTEBOOKS]
    assert numbers == COURSE_NUMBERS, f"expected notebooks {COURSE_NUMBERS}, found {[p.name for p in NOTEBOOKS]}"
    for path in NOTEBOOKS:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", path.name), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_opens_with_colab_badge_paper_link_and_learning_goals(path: Path) -> None:
    first = source(load(path)["cells"][0])
    assert f"]({COLAB_ROOT}/{path.name})" in first, "the Open in Colab badge must point at this notebook"
    assert "colab-badge.svg" in first
    assert re.search(r"https://(arxiv\.org/abs|ar5iv\.labs\.arxiv\.org/html)/1811\.10798", first), "paper link"
    assert "learning goals" in first.lower()
    goals = [line for line in first.splitlines() if line.startswith("- ")]
    assert len(goals) >= 2, "at least two learning goals as a bullet list"


def test_every_notebook_has_the_same_set_up_cell() -> None:
    firsts = {path.name: source(code_cells(load(path))[0]) for path in NOTEBOOKS}
    reference = firsts[NOTEBOOKS[0].name]
    assert 'importlib.util.find_spec("seqlite") is None' in reference
    assert "git+https://github.com/seqlite/seqlite" in reference
    assert "enable_custom_widget_manager" not in reference  # core widgets only: Colab renders them as they are
    assert "setup_notebook(seed=0)" in reference
    differing = [name for name, text in firsts.items() if text != reference]
    assert not differing, f"first code cell differs from {NOTEBOOKS[0].name}'s in {differing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_ends_with_summary_and_a_checkable_exercise(path: Path) -> None:
    nb = load(path)
    text = markdown(nb)
    assert re.search(r"^#+ Summary", text, re.M), "a Summary section"
    assert re.search(r"^#+ Exercises?", text, re.M), "an Exercise section"
    tail = nb["cells"][[i for i, c in enumerate(nb["cells"]) if "Exercise" in source(c)][0]:]
    checks = [c for c in tail if c["cell_type"] == "code" and "assert" in source(c)]
    assert checks, "the exercise needs an assert-based check"
    solutions = [c for c in tail if "solution" in c.get("metadata", {}).get("tags", [])]
    for cell in solutions:
        assert cell["metadata"].get("jupyter", {}).get("source_hidden"), "solution cells are hidden"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_executed_without_errors(path: Path) -> None:
    for i, cell in enumerate(code_cells(load(path))):
        assert cell.get("execution_count") is not None, f"code cell {i} was not executed before committing"
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"code cell {i} has a stored error: {errors[0].get('ename')}"


# Paths that exist only on one machine; a notebook must use repository- or package-relative paths.
ABSOLUTE_PATH = re.compile(r"""["'](/(home|Users|root|work|tmp|mnt|data)/|[A-Za-z]:\\)""")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_absolute_paths_in_code(path: Path) -> None:
    for i, cell in enumerate(code_cells(load(path))):
        match = ABSOLUTE_PATH.search(source(cell))
        assert match is None, f"code cell {i} uses the absolute path {match.group(0)!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_machine_paths_in_stored_outputs(path: Path) -> None:
    # A stored output with this machine's paths would fail nbval elsewhere (or hide behind sanitizers).
    for i, cell in enumerate(code_cells(load(path))):
        for output in cell.get("outputs", []):
            text = json.dumps(output.get("text", "")) + json.dumps(output.get("data", {}).get("text/plain", ""))
            assert "/work/main" not in text and ".venv/" not in text, f"code cell {i} stores a local path"
