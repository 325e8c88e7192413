"""The course notebooks' shared conventions, checked on the committed files (no kernel is started).

nbval re-runs the notebooks and compares outputs (see README); these repository-lint tests check
what nbval cannot: every notebook opens the same way (Colab badge, paper link, learning goals, the
one set-up cell), links to the notebooks before and after it and to the glossary, has exercises
the reader can check, ends with references, was committed executed and clean, and reads nothing
outside the repository.

Exercises and nbval. A cell tagged ``exercise`` is the reader's (a template with ``None`` answers
or a function that raises ``NotImplementedError``); the cell after it checks the answer with
``seqlite.exercises`` and, unanswered, prints "Not answered yet": a fixed text that nbval compares
like any output. A cell tagged ``solution`` is collapsed (JupyterLab's ``jupyter.source_hidden``,
Colab's ``cellView: form`` with an ``#@title`` line) and calls the same check with
``strict=True, quiet=True``: it prints nothing when the solution is right and raises
``ExerciseError`` when it is not. So solution cells are *not* skipped by nbval: nbval runs them,
a solution that stops matching the library fails the notebook, and since they print nothing,
executing a notebook stores no output under them (checked here), so the answer never shows
under the exercise.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from seqlite.course import COLAB_ROOT

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]*_*.ipynb"))
# The reading order of the course; previous/next links follow it.
COURSE_ORDER = [
    "00_start_here.ipynb",
    "01_wide_vs_deep.ipynb",
    "02_seqconv_layer.ipynb",
    "03_windowing.ipynb",
    "03b_one_layer_many_depths.ipynb",
    "04_bottleneck_subgroups.ipynb",
    "05_downsampling.ipynb",
    "06_whole_networks.ipynb",
    "07_training_on_a_gpu.ipynb",
    "08_weight_heatmaps.ipynb",
    "09_drop_in_layer.ipynb",
    "10_capstone.ipynb",
    "11_the_papers_results.ipynb",
]
GLOSSARY_TERMS = ["`g`", "`k`", "`g'`", "`w`", "`r`", "`N`", "`c`", "C10+", "MACs vs FLOPs"]


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def markdown(nb: dict) -> str:
    return "\n".join(source(c) for c in nb["cells"] if c["cell_type"] == "markdown")


def tagged(nb: dict, tag: str) -> list[tuple[int, dict]]:
    return [(i, c) for i, c in enumerate(nb["cells"]) if tag in c.get("metadata", {}).get("tags", [])]


def test_every_notebook_has_its_place_in_the_course_order() -> None:
    names = [p.name for p in NOTEBOOKS]
    strays = [n for n in names if n not in COURSE_ORDER]
    assert not strays, f"notebooks outside COURSE_ORDER (add them there, in reading order): {strays}"
    for name in names:
        assert re.fullmatch(r"\d\d[a-z]?_[a-z0-9_]+\.ipynb", name), name
    missing = [n for n in COURSE_ORDER if n not in names]
    assert not missing, f"notebooks of COURSE_ORDER missing from notebooks/: {missing}"


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
def test_links_to_previous_and_next_notebook_and_the_glossary(path: Path) -> None:
    text = markdown(load(path))
    position = COURSE_ORDER.index(path.name)
    links = re.findall(r"(Previous|Next): \[[^\]]+\]\(([^)#]+)\)", text)
    if position > 0:
        assert ("Previous", COURSE_ORDER[position - 1]) in links, f"no 'Previous:' link to {COURSE_ORDER[position - 1]}"
    if position + 1 < len(COURSE_ORDER):
        assert ("Next", COURSE_ORDER[position + 1]) in links, f"no 'Next:' link to {COURSE_ORDER[position + 1]}"
    wrong = [target for _, target in links if target not in COURSE_ORDER]
    assert not wrong, f"previous/next links to notebooks outside the course: {wrong}"
    assert "](GLOSSARY.md)" in text, "a link to the glossary"


def test_the_glossary_explains_every_symbol() -> None:
    text = (NOTEBOOKS_DIR / "GLOSSARY.md").read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    for term in GLOSSARY_TERMS:
        assert any(row.split("|")[1].strip().startswith(term) or term in row.split("|")[1] for row in rows), term


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_has_summary_exercises_with_hinting_checks_and_references(path: Path) -> None:
    nb = load(path)
    text = markdown(nb)
    assert re.search(r"^#+ Summary", text, re.M), "a Summary section"
    assert re.search(r"^#+ Exercises?", text, re.M), "an Exercise section"
    exercises = tagged(nb, "exercise")
    assert exercises, "at least one cell tagged 'exercise'"
    for i, cell in exercises:
        assert cell["cell_type"] == "code", f"exercise cell {i} must be a code cell"
        after = [c for c in nb["cells"][i + 1 :] if c["cell_type"] == "code"][:1]
        assert after, f"exercise cell {i} has no cell after it that checks or runs it"
    check_cells = [c for c in code_cells(nb) if "seqlite.exercises import" in source(c)]
    assert check_cells, "exercise checks use seqlite.exercises (what is wrong, and a hint), not bare asserts"
    last = source(nb["cells"][-1])
    assert re.search(r"^#+ References", last, re.M), "the last cell lists the references"
    assert "arxiv.org/abs/1811.10798" in last, "the references start with the paper"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_are_collapsed_and_store_no_output(path: Path) -> None:
    nb = load(path)
    for i, cell in tagged(nb, "solution"):
        meta = cell["metadata"]
        assert meta.get("jupyter", {}).get("source_hidden"), f"solution cell {i} is not collapsed in JupyterLab"
        assert meta.get("cellView") == "form" and source(cell).startswith("#@title"), (
            f"solution cell {i} is not collapsed in Colab (cellView 'form' and an #@title first line)"
        )
        assert not cell.get("outputs"), f"solution cell {i} stores output: the answer would show under the exercise"
        assert "strict=True" in source(cell), f"solution cell {i} must run its check with strict=True"


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
