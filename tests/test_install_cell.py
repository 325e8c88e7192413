"""The notebooks' first cell, run the way Colab runs it.

The cell installs seqlite when it is missing (from ``course.INSTALL_SOURCE``, the project's GitHub
URL, or ``$SEQLITE_INSTALL_SOURCE``), then calls ``setup_notebook``. The slow test runs the cell's
code in a fresh virtual environment that has torch, torchvision, ipywidgets 7.7.1 and matplotlib
but not seqlite, as Colab has, with the install source pointed at a copy of this checkout; then it
imports seqlite from where the cell installed it and displays one panel. Before the real install
it asks pip for a dry-run report of the very command the cell runs, to check that installing
seqlite leaves the preinstalled torch (and Colab's ipywidgets) alone.

The preinstalled packages come from a "Colab-like" environment without seqlite: ``$SEQLITE_COLAB_BASE``,
else ``.venv-floors`` made by ``.ci/floors`` (CI makes it before the tests: Python 3.10, torch 2.4.1 and
the other declared floors, ipywidgets 7.7.1 among them), else one built here
(torch from this machine's disk: a few minutes). The fresh environment sees that environment's
packages through a ``.pth`` file, the way a Colab runtime's pip sees its system packages, and pip
installs into the fresh environment only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from seqlite.course import INSTALL_SOURCE, INSTALL_SOURCE_VARIABLE

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "00_start_here.ipynb"
# What Colab has preinstalled that matters here (the ipywidgets version Colab pins).
COLAB_IPYWIDGETS = "7.7.1"
KEPT = {"torch", "torchvision", "ipywidgets", "matplotlib", "numpy"}


def first_cell() -> str:
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    return "".join(cell["source"])


def test_the_cell_installs_from_the_projects_url_unless_told_otherwise():
    cell = first_cell()
    default = re.search(rf'os\.environ\.get\("{INSTALL_SOURCE_VARIABLE}", "([^"]+)"\)', cell)
    assert default, f"the install source must be one setting, read from ${INSTALL_SOURCE_VARIABLE}"
    assert default.group(1) == INSTALL_SOURCE
    assert cell.count(INSTALL_SOURCE) == 1, "the URL is spelled out once, in that setting"


def test_the_cell_leaves_colabs_widget_manager_alone():
    # The course uses core ipywidgets only, which Colab's own widget manager renders; the
    # third-party manager is for other widget libraries.
    assert "enable_custom_widget_manager" not in first_cell()


def test_the_cell_installs_nothing_where_seqlite_is_importable(monkeypatch, capsys):
    def no_pip(*args, **kwargs):
        raise AssertionError(f"the cell ran {args} although seqlite is importable")

    monkeypatch.setattr(subprocess, "run", no_pip)
    monkeypatch.setenv("SEQLITE_QUICK", "1")
    namespace: dict = {}
    exec(compile(first_cell(), str(NOTEBOOK), "exec"), namespace)
    assert namespace["ctx"].quick and "Quick mode" in capsys.readouterr().out


# The fresh environment runs this: the cell with subprocess.run recorded (and each pip install
# preceded by the same command as a dry run with a report), then one panel displayed.
DRIVER = r'''
import json, subprocess, sys
calls, real_run = [], subprocess.run
def run(cmd, *args, **kwargs):
    cmd = [str(c) for c in cmd]
    calls.append(cmd)
    if cmd[1:4] == ["-m", "pip", "install"]:
        real_run([*cmd[:4], "--dry-run", "--report", sys.argv[2], *cmd[4:]], check=True)
    return real_run(cmd, *args, **kwargs)
subprocess.run = run
exec(compile(open(sys.argv[1]).read(), "first cell", "exec"), {})

import ipywidgets, seqlite, torch
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display
from IPython.utils.capture import capture_output
from traitlets.config import Config
from seqlite.widgets import SeqConvPanel
config = Config()
config.HistoryManager.enabled = False
InteractiveShell.instance(config=config)
panel = SeqConvPanel(g=5, k=4)
with capture_output() as captured:
    display(panel)
print("RESULT " + json.dumps({
    "calls": calls,
    "seqlite": seqlite.__file__,
    "torch": [torch.__version__, torch.__file__],
    "ipywidgets": ipywidgets.__version__,
    "shown": [o.data for o in captured.outputs],
    "png": bytes(panel.image.value[:8]).hex(),
    "text": panel.text.value,
}))
'''


PROBE = """
import importlib.util, json
import ipywidgets, torch
print(json.dumps({"seqlite": importlib.util.find_spec("seqlite") and "found", "torch": torch.__version__,
                  "ipywidgets": ipywidgets.__version__}))
"""


def _python(env_dir: Path) -> Path:
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _purelib(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()


def _colab_like_base(tmp_path: Path) -> Path:
    """An environment with Colab's relevant packages and no seqlite (see the module doc)."""
    given = os.environ.get("SEQLITE_COLAB_BASE")
    base = Path(given) if given else REPO / ".venv-floors"
    if _python(base).exists():
        return base
    if given:
        pytest.fail(f"SEQLITE_COLAB_BASE={given} has no Python environment")
    import torch
    import torchvision

    base = tmp_path / "colab-base"
    subprocess.run([sys.executable, "-m", "venv", str(base)], check=True)
    pins = [f"{m.__name__}=={m.__version__.split('+')[0]}" for m in (torch, torchvision)]
    subprocess.run(
        [str(_python(base)), "-m", "pip", "install", "-q", *pins, f"ipywidgets=={COLAB_IPYWIDGETS}", "matplotlib"],
        check=True,
    )
    return base


def _checkout_copy(dest: Path) -> Path:
    """The tracked files of this checkout as they are now (what a clone of the URL would hold)."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True)
    for name in listed.stdout.decode().split("\0"):
        if name and (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


@pytest.mark.slow
def test_first_cell_installs_seqlite_beside_colabs_torch_and_draws_a_panel(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is needed to list the checkout's files")
    base = _colab_like_base(tmp_path)
    base_python = _python(base)
    probe = subprocess.run(
        [str(base_python), "-c", PROBE], capture_output=True, text=True, check=True, cwd=tmp_path,
        env={"PATH": os.environ.get("PATH", "")},
    )
    before = json.loads(probe.stdout)
    assert before["seqlite"] is None, f"{base} must not have seqlite installed"

    fresh = tmp_path / "fresh"
    subprocess.run([str(base_python), "-m", "venv", str(fresh)], check=True)
    python = _python(fresh)
    # The base's packages are visible to the fresh environment (and its pip) as preinstalled ones.
    Path(_purelib(python), "colab_preinstalled.pth").write_text(_purelib(base_python) + "\n")

    source = _checkout_copy(tmp_path / "seqlite-src")
    (tmp_path / "cell.py").write_text(first_cell())
    (tmp_path / "driver.py").write_text(DRIVER)
    report = tmp_path / "pip-report.json"
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env.update({INSTALL_SOURCE_VARIABLE: str(source), "CI": "true", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"})
    done = subprocess.run(
        [str(python), str(tmp_path / "driver.py"), str(tmp_path / "cell.py"), str(report)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900,
    )
    assert done.returncode == 0, f"the first cell failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Quick mode" in done.stdout
    result = json.loads(done.stdout.split("RESULT ", 1)[1])

    installs = [c for c in result["calls"] if c[1:4] == ["-m", "pip", "install"]]
    assert len(installs) == 1 and str(source) in installs[0], result["calls"]
    # pip's own account of what that command installs: seqlite and what was missing, never a new torch.
    planned = {item["metadata"]["name"].lower(): item["metadata"]["version"] for item in json.loads(report.read_text())[
        "install"
    ]}
    assert "seqlite" in planned
    replaced = sorted(name for name in planned if name in KEPT or name.startswith(("nvidia-", "triton")))
    assert not replaced, f"installing seqlite would replace the preinstalled {replaced}: {planned}"

    site = Path(_purelib(python)).resolve()
    assert Path(result["seqlite"]).resolve().is_relative_to(site), "seqlite must come from the cell's install"
    assert not Path(result["torch"][1]).resolve().is_relative_to(site), "torch must still be the preinstalled one"
    assert result["torch"][0] == before["torch"] and result["ipywidgets"] == before["ipywidgets"]
    (shown,) = result["shown"]
    assert shown["text/plain"] == "SeqConvPanel(g=5, k=4)"
    assert "model_id" in shown["application/vnd.jupyter.widget-view+json"]
    assert result["png"] == b"\x89PNG\r\n\x1a\n".hex() and "(g=5, k=4)" in result["text"]
