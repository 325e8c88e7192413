"""Fixtures for the browser tests: JupyterLab served from this environment, driven by headless Chromium.

The course's widgets are judged by students in JupyterLab, so these tests open the notebooks there, run
them, move the sliders with the keyboard and pick from dropdowns, and check that the text and the figure
the widget shows change. nbval (``tests/test_notebooks*.py``) covers the kernel side only.

How to run::

    .venv/bin/pytest -m browser tests/browser

Needs Debian's Chromium (``apt-get install -y chromium``) and the Playwright Python package (dev extra:
``pip install -e '.[course,dev]'``, or ``pip install playwright``). Playwright's own browser download
(``playwright install``) is *not* used: the tests launch the system Chromium, found on ``PATH`` as
``chromium``/``chromium-browser``/``google-chrome`` or given by ``SEQLITE_CHROMIUM=/path/to/chrome``.
Without Chromium or Playwright the tests are skipped, saying how to install what is missing; with
``SEQLITE_BROWSER_REQUIRED=1`` (meant for CI, whose set-up installs both) they fail instead.

Screenshots (one per notebook after the interaction, plus one for any failing test) go to
``$SEQLITE_ARTIFACTS`` (default: a fresh pytest temporary directory); the directory is printed in
the terminal summary.

The server runs on 127.0.0.1 with a random free port and a random token, from a temporary copy of
``notebooks/`` (and ``assets/``), with temporary settings/workspace/runtime directories, so it never
writes into the repository or the user's Jupyter set-up. It is shut down, and the browser closed, also
when a test fails. Every wait has a timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[2]

# Seconds. Generous for a busy 2-core machine, short enough that a hang fails the suite well within 5 minutes.
SERVER_START_TIMEOUT = 90
NOTEBOOK_RUN_TIMEOUT = 180
WIDGET_UPDATE_TIMEOUT = 20
DEFAULT_ACTION_TIMEOUT = 30

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

INSTALL_HINT = (
    "install Debian's Chromium (`apt-get install -y chromium`) and the Playwright Python package "
    "(`.venv/bin/pip install -e '.[course,dev]'` or `.venv/bin/pip install playwright`; do not run "
    "`playwright install`), or point SEQLITE_CHROMIUM at a Chromium/Chrome executable"
)

# JupyterLab user settings for the test server: no news/update toasts over the page, no autosave, and every
# cell attached to the DOM (the default windowing may detach off-screen cells, hiding their widgets).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def find_chromium() -> str | None:
    """The Chromium executable to drive: ``$SEQLITE_CHROMIUM`` or the first browser found on ``PATH``."""
    override = os.environ.get("SEQLITE_CHROMIUM")
    if override:
        return override if Path(override).is_file() else None
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------------------------------------
# artifacts


def _artifact_dir(config: pytest.Config) -> Path:
    cached = getattr(config, "_seqlite_artifacts", None)
    if cached is None:
        env = os.environ.get("SEQLITE_ARTIFACTS")
        if env:
            cached = Path(env).resolve()
            cached.mkdir(parents=True, exist_ok=True)
        else:
            cached = config._tmp_path_factory.mktemp("browser-artifacts", numbered=True)  # type: ignore[attr-defined]
        config._seqlite_artifacts = cached  # type: ignore[attr-defined]
    return cached


@pytest.fixture(scope="session")
def artifacts(request: pytest.FixtureRequest) -> Path:
    """Directory for screenshots; ``$SEQLITE_ARTIFACTS`` or a pytest temporary directory."""
    return _artifact_dir(request.config)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    saved = getattr(config, "_seqlite_artifacts", None)
    if saved is not None:
        shots = sorted(p.name for p in Path(saved).glob("*.png"))
        terminalreporter.write_sep("-", "browser test artifacts")
        terminalreporter.write_line(f"screenshots in {saved}: {', '.join(shots) or 'none'}")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    # Keep each phase's report on the item so the page fixture can screenshot a failing test.
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# ----------------------------------------------------------------------------------------------------------
# requirements, server, browser


def _missing(what: str) -> NoReturn:
    # CI installs both, so there a missing browser is a broken set-up, not a reason to skip quietly.
    if os.environ.get("SEQLITE_BROWSER_REQUIRED") == "1":
        pytest.fail(f"{what} (SEQLITE_BROWSER_REQUIRED=1): {INSTALL_HINT}")
    pytest.skip(f"{what}: {INSTALL_HINT}")


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    """Path of the system Chromium; skips (with how to install) when it or Playwright is missing, or fails
    when ``SEQLITE_BROWSER_REQUIRED=1``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("Playwright for Python is not installed")
    exe = find_chromium()
    if exe is None:
        _missing("Chromium not found")
    return exe


@dataclass(frozen=True)
class LabServer:
    base_url: str
    token: str
    root: Path
    log: Path

    def notebook_url(self, relpath: str, workspace: str) -> str:
        # A workspace of its own per test: a fresh page never restores another test's open notebooks.
        return f"{self.base_url}lab/workspaces/{quote(workspace)}/tree/{quote(relpath)}?token={self.token}"

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no server log>"


def _copy_course(root: Path) -> None:
    """Copy notebooks/ and assets/ so relative paths between them keep working and the repo stays untouched."""
    ignore = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "runs", "*.pyc")
    for name in ("notebooks", "assets"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=ignore)
    (root / "notebooks").mkdir(exist_ok=True)


def _write_lab_settings(settings_dir: Path) -> None:
    for relpath, values in LAB_SETTINGS.items():
        target = settings_dir / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values))


def _stop(process: subprocess.Popen, server: LabServer | None) -> None:
    """Ask the server to shut down (it stops its kernels), then terminate, then kill its process group."""
    if process.poll() is None and server is not None:
        with contextlib.suppress(OSError, urllib.error.URLError):
            server.api("POST", "api/shutdown", timeout=5)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    # Kernels share the server's process group unless they made their own; clean up any left behind.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def lab_server(chromium_executable: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """JupyterLab from this environment on 127.0.0.1:<random port> with a random token, over a course copy."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root, settings, workspaces = base / "root", base / "settings", base / "workspaces"
    _copy_course(root)
    _write_lab_settings(settings)
    workspaces.mkdir()
    port, token = free_port(), secrets.token_hex(24)
    env = dict(os.environ)
    env.update(
        # The kernelspec says `python`: make that this environment's interpreter.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        JUPYTER_DATA_DIR=str(base / "data"),
        IPYTHONDIR=str(base / "ipython"),
        JUPYTER_PLATFORM_DIRS="1",
        SEQLITE_QUICK="1",  # the widgets need no training at full size
        # Kernel, server and Chromium share a small machine: torch's default thread pool, spinning against
        # them, made notebook 08's quick training ~10x slower here (164 s vs 14 s per model on 2 busy cores).
        OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
        PYTHONUNBUFFERED="1",
    )
    cmd = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
        f"--LabApp.user_settings_dir={settings}",
        f"--LabApp.workspaces_dir={workspaces}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.extension_manager=readonly",  # no PyPI queries from the test server
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI often run as root
        cmd.append("--allow-root")
    log = base / "server.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LabServer(base_url=f"http://127.0.0.1:{port}/", token=token, root=root, log=log)
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"JupyterLab exited with {process.returncode} while starting:\n{server.log_tail()}")
            try:
                server.api("GET", "api/status", timeout=2)
                break
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab not ready after {SERVER_START_TIMEOUT}s:\n{server.log_tail()}")
            time.sleep(0.25)
        yield server
    finally:
        _stop(process, server)


@pytest.fixture(scope="session")
def browser_context(chromium_executable: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium with a fresh user-data dir, driven by Playwright's sync API."""
    from playwright.sync_api import sync_playwright

    user_data = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(user_data),
            executable_path=chromium_executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1100},
            timeout=60_000,
        )
        try:
            context.set_default_timeout(DEFAULT_ACTION_TIMEOUT * 1000)
            context.set_default_navigation_timeout(60_000)
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any, artifacts: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh tab; screenshotted into the artifacts when the test fails, and always closed."""
    tab = browser_context.new_page()
    console_errors: list[str] = []
    tab.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: console_errors.append(f"page error: {exc}"))
    tab.console_errors = console_errors  # type: ignore[attr-defined]
    try:
        yield tab
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed and tab.url != "about:blank":
            shot = artifacts / f"FAILED-{request.node.name}.png"
            try:
                tab.screenshot(path=str(shot), timeout=10_000)
                print(f"screenshot of the failing page: {shot}")
            except Exception as exc:  # noqa: BLE001 - a failed screenshot must not hide the test's failure
                print(f"could not screenshot the failing page: {exc}")
        tab.close()


# ----------------------------------------------------------------------------------------------------------
# driving a notebook


# Read from the JupyterLab application (exposed as window.jupyterapp by the server option above): the kernel
# status, how many non-empty code cells are still unexecuted or running, and every error output.
_NOTEBOOK_STATE_JS = """
(path) => {
  const app = window.jupyterapp;
  if (!app) return null;
  let panel = null;
  for (const widget of app.shell.widgets('main')) {
    if (widget.context && widget.context.path === path && widget.content) panel = widget;
  }
  if (!panel || !panel.sessionContext) return null;
  const session = panel.sessionContext.session;
  const kernel = session ? session.kernel : null;
  let total = 0, pending = 0;
  const errors = [];
  panel.content.widgets.forEach((cell, index) => {
    if (cell.model.type !== 'code' || !cell.model.sharedModel.getSource().trim()) return;
    total += 1;
    if (cell.model.executionCount === null || cell.model.executionState === 'running') pending += 1;
    const outputs = cell.model.outputs;
    for (let i = 0; i < outputs.length; i++) {
      const out = outputs.get(i).toJSON();
      if (out.output_type === 'error') errors.push(`cell ${index}: ${out.ename}: ${out.evalue}`);
    }
  });
  return {kernel: kernel ? kernel.status : 'none', total, pending, errors};
}
"""

# SHA-256 and length of the bytes an <img> shows. ipywidgets' Image puts its bytes behind a blob: URL that
# changes on every update, so compare the bytes, not the URL.
_IMAGE_DIGEST_JS = """
async (img) => {
  if (!img.src) return null;
  const response = await fetch(img.src);
  const bytes = await response.arrayBuffer();
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return Array.from(digest, b => b.toString(16).padStart(2, '0')).join('') + ':' + bytes.byteLength;
}
"""

# What a student would see as a broken widget or cell, in the rendered page itself.
_VISIBLE_ERROR_MARKERS = (
    "Traceback (most recent call last)",
    "Error displaying widget",
    "Failed to load model class",
    "Error creating widget",
)


def wait_for(condition: Any, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``condition()`` until it returns something truthy; fail saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last seen: {last!r})")


class NotebookPage:
    """One notebook opened in JupyterLab in a browser tab, operated through the page as a person would."""

    def __init__(self, page: Any, server: LabServer, relpath: str) -> None:
        self.page, self.server, self.relpath = page, server, relpath

    # -- opening and running
    def open(self) -> NotebookPage:
        workspace = f"w{secrets.token_hex(4)}"
        self.page.goto(self.server.notebook_url(self.relpath, workspace), wait_until="domcontentloaded")
        self.page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for(state="visible")
        self.wait_kernel_idle()
        return self

    def state(self) -> dict | None:
        return self.page.evaluate(_NOTEBOOK_STATE_JS, self.relpath)

    def wait_kernel_idle(self, timeout: float = 60) -> None:
        wait_for(
            lambda: (s := self.state()) is not None and s["kernel"] == "idle",
            timeout,
            f"the kernel of {self.relpath} to be idle",
        )

    def menu(self, menu: str, item: str) -> None:
        """Click ``menu`` in the menu bar, then ``item`` in it."""
        self.page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
        entry = self.page.locator(".lm-Menu-item:not(.lm-mod-disabled) .lm-Menu-itemLabel", has_text=item)
        entry.first.click()

    def run_all(self, timeout: float = NOTEBOOK_RUN_TIMEOUT) -> dict:
        """Clear the stored outputs, run every cell from the Run menu, and wait until all ran and idle.

        Clearing first makes "every cell has an execution count" mean "ran in this kernel", and makes
        every figure on the page one the kernel drew just now.
        """
        self.page.locator(".jp-NotebookPanel .jp-Notebook").first.click(position={"x": 5, "y": 5})
        self.menu("Edit", "Clear Outputs of All Cells")
        wait_for(
            lambda: (s := self.state()) is not None and s["pending"] == s["total"],
            10,
            "the stored outputs to be cleared",
        )
        self.menu("Run", "Run All Cells")

        def finished() -> dict | None:
            s = self.state()
            if s is None or s["kernel"] != "idle":
                return None
            # Run All stops at the first error: then nothing more will run.
            return s if s["pending"] == 0 or s["errors"] else None

        try:
            state = wait_for(finished, timeout, f"all cells of {self.relpath} to run")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; notebook state: {self.state()}") from None
        # A settled page: output widgets render asynchronously after the kernel reports idle.
        self.page.wait_for_timeout(500)
        return state

    def visible_errors(self) -> list[str]:
        """Error outputs in the notebook model plus error text rendered in any output area."""
        state = self.state() or {"errors": ["notebook state unavailable"]}
        errors = list(state["errors"])
        for output in self.page.locator(".jp-OutputArea-output").all():
            text = output.inner_text(timeout=5000)
            errors += [f"output shows {m!r}: {text[:300]!r}" for m in _VISIBLE_ERROR_MARKERS if m in text]
        return errors

    # -- widgets
    def wait_until(self, condition: Any, what: str, timeout: float = WIDGET_UPDATE_TIMEOUT) -> Any:
        """:func:`wait_for` for tests, which do not import this conftest."""
        return wait_for(condition, timeout, what)

    def widget(self, css_class: str) -> Any:
        """The (single) rendered widget carrying ``css_class``, scrolled into view."""
        found = self.page.locator(f".jp-OutputArea-output .{css_class}")
        wait_for(lambda: found.count() > 0, WIDGET_UPDATE_TIMEOUT, f"a widget with class {css_class!r}")
        assert found.count() == 1, f"expected one widget with class {css_class!r}, found {found.count()}"
        found.first.scroll_into_view_if_needed()
        return found.first

    @staticmethod
    def slider_value(slider: Any) -> str:
        return slider.locator(".widget-readout").inner_text().strip()

    def press_slider(self, slider: Any, key: str, times: int = 1) -> str:
        """Focus the slider's handle by clicking it, press ``key`` (e.g. ArrowRight) ``times``; return readout."""
        handle = slider.locator(".noUi-handle").first
        handle.click()
        for _ in range(times):
            handle.press(key)
        return self.slider_value(slider)

    def image_digest(self, image: Any) -> str | None:
        for _ in range(5):  # the blob URL may be replaced (and revoked) while we read it
            try:
                return image.evaluate(_IMAGE_DIGEST_JS)
            except Exception:  # noqa: BLE001
                self.page.wait_for_timeout(200)
        return None

    def wait_text_change(self, locator: Any, before: str, what: str) -> str:
        """Wait until the text differs from ``before`` and has settled (a slider moved by several key
        presses sends several updates); return the settled text."""
        return self._wait_settled(lambda: locator.inner_text().strip(), before, f"{what} to change from {before!r}")

    def wait_image_change(self, image: Any, before: str | None, what: str) -> str:
        """Like :meth:`wait_text_change` for the bytes of an image; returns the settled digest."""
        return self._wait_settled(lambda: self.image_digest(image), before, f"the bytes of {what} to change")

    def _wait_settled(self, read: Any, before: Any, what: str, settle: float = 0.8) -> Any:
        """Poll ``read()`` until it differs from ``before`` and has not changed for ``settle`` seconds."""
        value, since = before, time.monotonic()
        deadline = since + WIDGET_UPDATE_TIMEOUT
        while time.monotonic() < deadline:
            current = read()
            if current != value:
                value, since = current, time.monotonic()
            if value and value != before and time.monotonic() - since >= settle:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out after {WIDGET_UPDATE_TIMEOUT}s waiting for {what} (last seen: {value!r})")

    def screenshot(self, path: Path, around: Any | None = None) -> Path:
        """Screenshot the window, with the top of ``around`` (e.g. a widget panel) scrolled to the top."""
        if around is not None:
            around.evaluate("el => el.scrollIntoView({block: 'start'})")
            self.page.wait_for_timeout(300)
        self.page.screenshot(path=str(path))
        print(f"screenshot: {path}")
        return path

    def shutdown_kernel(self) -> None:
        try:
            for session in self.server.api("GET", "api/sessions"):
                if session.get("path") == self.relpath:
                    self.server.api("DELETE", f"api/sessions/{session['id']}")
        except (OSError, urllib.error.URLError):
            pass


@pytest.fixture
def open_notebook(page: Any, lab_server: LabServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``open_notebook("notebooks/02_x.ipynb")`` opens it in the tab; its kernel is shut down afterwards."""
    opened: list[NotebookPage] = []

    def _open(relpath: str) -> NotebookPage:
        assert (lab_server.root / relpath).is_file(), f"{relpath} is not in the served copy of the course"
        notebook = NotebookPage(page, lab_server, relpath)
        opened.append(notebook)
        return notebook.open()

    yield _open
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"browser console errors: {page.console_errors[-20:]}")
        print(f"end of the JupyterLab log ({lab_server.log}):\n{lab_server.log_tail(3000)}")
    for notebook in opened:
        notebook.shutdown_kernel()
