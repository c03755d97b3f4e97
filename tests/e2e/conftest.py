"""End-to-end fixtures: a real JupyterLab with nbtasklog, and Debian's chromium driven by Playwright.

Recipe: ../../../shared/recipes/browser-e2e.md. Each session gets fresh Jupyter dirs and its own
database; the built labextension is found through JUPYTER_PATH (no install state is assumed).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from procs import free_port

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "nbtasklog"
CHROMIUM = os.environ.get("NBTASKLOG_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN = "e2e"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]



def _require() -> Any:
    """Playwright, a chromium and the built JS; a failure saying what is missing, never a silent skip
    (./dev test provides all three, so a missing one is a broken install step)."""
    try:
        import playwright.sync_api as api
    except ImportError:
        pytest.fail("pip install playwright (the e2e tests drive chromium with it)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no chromium at {CHROMIUM}: apt-get install -y chromium")
    if not (PACKAGE / "static" / "widget.js").exists() or not (PACKAGE / "labextension" / "package.json").exists():
        pytest.fail("the JS is not built: npm ci && npm run build:prod (pip install builds it too)")
    return api


class Lab:
    def __init__(self, url: str, root: Path, env: dict[str, str]) -> None:
        self.url = url
        self.root = root
        self.env = env

    def api(self, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            f"{self.url}nbtasklog/api/{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            data = response.read()
        return json.loads(data) if data else None


@contextlib.contextmanager
def serve_lab(base: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Lab]:
    """A jupyter lab subprocess with nbtasklog in fresh Jupyter dirs under `base`; `args` add server options,
    which may name classes of the tests' own modules (tests/authorizers.py: `authorizers.NoSettingsWrite`)."""
    root = base / "root"
    root.mkdir()
    data = base / "data"
    # The built extension from the source tree, whatever is installed in the environment.
    (data / "labextensions").mkdir(parents=True)
    (data / "labextensions" / "nbtasklog").symlink_to(PACKAGE / "labextension", target_is_directory=True)
    config = base / "config"
    (config / "labconfig").mkdir(parents=True)
    (config / "labconfig" / "default_setting_overrides.json").write_text(json.dumps(
        {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config), JUPYTER_DATA_DIR=str(base / "userdata"),
               JUPYTER_RUNTIME_DIR=str(base / "runtime"), IPYTHONDIR=str(base / "ipython"),
               JUPYTER_PATH=str(data), NBTASKLOG_DB=str(base / "logs.duckdb"), JUPYTER_PLATFORM_DIRS="1", **(env or {}))
    support = str(Path(__file__).parents[1])  # tests/, for the classes `args` may name
    env["PYTHONPATH"] = os.pathsep.join(p for p in (support, env.get("PYTHONPATH")) if p)
    env.pop("NBTASKLOG_SERVER_URL", None)
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    log = open(base / "server.log", "w")
    process = subprocess.Popen(
        [str(bin_dir / "jupyter-lab"), "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--allow-root",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         # window.jupyterapp in JupyterLab and in Notebook 7 (/tree, /notebooks/), for open_and_run
         "--LabApp.expose_app_in_browser=True", "--JupyterNotebookApp.expose_app_in_browser=True",
         "--ServerApp.jpserver_extensions", "nbtasklog=True", *args],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}/"
    lab = Lab(url, root, env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                lab.api("GET", "health")
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"jupyter lab did not start:\n{(base / 'server.log').read_text()[-3000:]}") from None
                time.sleep(0.3)
        yield lab
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        if os.environ.get("NBTASKLOG_E2E_KEEP"):
            ARTIFACTS.mkdir(exist_ok=True)
            shutil.copy(base / "server.log", ARTIFACTS / f"server-{base.name}.log")


@pytest.fixture(scope="package")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One server for all e2e modules (a start costs seconds), stopped when they are done; tests tell their tasks apart by id."""
    _require()
    with serve_lab(tmp_path_factory.mktemp("lab")) as lab:
        yield lab


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    # Package scope, not session: Playwright's sync API keeps an asyncio loop running in this thread
    # while it is open, and the server tests after these (pytest-jupyter) need to run their own.
    with _require().sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.dialogs = []  # any alert() would land here: log text must never run
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    yield page
    context.close()


def notebook(lab: Lab, name: str, cells: list[str]) -> str:
    """Write a notebook of code cells into the server's root; returns its Lab URL."""
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
          "cells": [{"cell_type": "code", "id": f"c{i}", "metadata": {}, "execution_count": None, "outputs": [], "source": src}
                    for i, src in enumerate(cells)]}
    (lab.root / name).write_text(json.dumps(nb))
    return f"{lab.url}lab/tree/{name}?reset&token={TOKEN}"  # reset: no tab of an earlier test comes back


def open_and_run(page: Any, url: str) -> None:
    """Open a notebook, wait until its kernel is really ready (not the toolbar's 'idle'), run all cells."""
    page.goto(url)
    run_all(page)


def run_all(page: Any) -> None:
    """Run all cells of the notebook open in `page` (JupyterLab or Notebook 7) once its kernel is ready."""
    page.wait_for_function("window.jupyterapp !== undefined", timeout=60_000)
    page.evaluate("""async () => {
        const app = window.jupyterapp; await app.restored;
        let nb; while (!(nb = app.shell.currentWidget) || !nb.sessionContext) await new Promise(r => setTimeout(r, 100));
        await nb.context.ready; await nb.sessionContext.ready; await nb.sessionContext.session.kernel.info; }""")
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def execute(page: Any, code: str) -> str:
    """Run code in the current notebook's kernel (not as a cell); returns what it printed."""
    return page.evaluate("""(code) => new Promise((resolve, reject) => {
        const future = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.requestExecute({code});
        let out = '';
        future.onIOPub = (m) => { if (m.header.msg_type === 'stream') out += m.content.text;
                                  if (m.header.msg_type === 'error') reject(new Error(m.content.evalue)); };
        future.done.then(() => resolve(out), reject); })""", code)


# ---- the sidebar and the viewer, found as users and assistive tools find them: by role and name ----------
ACTIVE = {"PENDING", "RUNNING"}
# What a user can focus or operate; each must have a role and a non-empty accessible name.
INTERACTIVE = ("button, input:not([type=hidden]), select, textarea, summary, a[href], "
               "[tabindex]:not([tabindex='-1']), [contenteditable=true]")
NAMED_ROLES = {"button", "checkbox", "combobox", "link", "listbox", "menuitem", "option", "radio", "searchbox",
               "slider", "spinbutton", "switch", "tab", "textbox", "row", "list", "listitem", "region", "group"}


def open_lab(lab: Lab, page: Any) -> None:
    """A fresh JupyterLab, settled: after `restored` it still opens a Launcher and moves the focus into it
    (about a second later here), which would take the focus from whatever a test had focused by then."""
    page.goto(f"{lab.url}lab?reset&token={TOKEN}")
    page.wait_for_function("window.jupyterapp !== undefined", timeout=60_000)
    page.evaluate("""async () => { const app = window.jupyterapp; await app.restored;
        for (let i = 0; i < 300 && !app.shell.currentWidget?.node.contains(document.activeElement); i++)
            await new Promise(r => setTimeout(r, 50)); }""")


def open_sidebar(lab: Lab, page: Any) -> Any:
    """JupyterLab with the Task logs side panel open and its plugins loaded; returns the panel."""
    open_lab(lab, page)
    page.get_by_role("tab", name="Task logs").click()
    panel = page.get_by_role("region", name="Task logs")
    panel.get_by_role("combobox", name="Plugin", exact=True).get_by_role("option", name="dashboard_backup").wait_for(state="attached", timeout=30_000)
    return panel


def start_task(lab: Lab, plugin: str, params: dict[str, Any], log_level: str | None = None) -> str:
    body: dict[str, Any] = {"plugin": plugin, "params": params}
    if log_level:
        body["log_level"] = log_level
    return lab.api("POST", "tasks", body)["id"]


def wait_finished(lab: Lab, task_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (task := lab.api("GET", f"tasks/{task_id}"))["status"] in ACTIVE:
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id} still {task['status']} after {timeout} s")
        time.sleep(0.1)
    return task


def task_row(panel: Any, task_id: str) -> Any:
    """A task's row in the sidebar list: the row holding that task's Cancel or Delete button."""
    return panel.get_by_role("row").filter(has=panel.page.get_by_role("button", name=re.compile(rf"^(Cancel|Delete) task {task_id}$")))


def log_viewer(scope: Any, task_id: str | None = None) -> Any:
    return scope.get_by_role("region", name=f"Log of task {task_id}" if task_id else re.compile(r"^Log of task "))


def log_rows(viewer: Any) -> Any:
    """The rows of a viewer's record list now in the page (the list is virtual)."""
    return viewer.get_by_role("list", name="Log records").get_by_role("listitem")


def aria_line(control: Any) -> str:
    """The control's own line of its ARIA snapshot, unquoted: 'button "Source: all" [expanded]'."""
    for _ in range(3):  # a live list re-renders its rows: an element replaced mid-way has no snapshot
        line = (control.aria_snapshot().splitlines() or [""])[0].removeprefix("- ").removesuffix(":")
        if line:
            break
    if line.startswith("'"):  # YAML quotes a line that holds ': '
        line = line[1:-1].replace("''", "'")
    elif line.startswith('"'):
        line = json.loads(line)
    return line


def unnamed_controls(scope: Any) -> list[str]:
    """Visible controls under `scope` whose accessible role or name is missing, as the ARIA snapshot says."""
    problems = []
    for control in scope.locator(INTERACTIVE).all():
        if not control.is_visible():
            continue
        line = aria_line(control)
        named = re.match(r'(\w+) "(.+?)"', line)
        if not named or named.group(1) not in NAMED_ROLES or not named.group(2).strip():
            problems.append(f"{line or '(not in the accessibility tree)'} <- {control.evaluate('e => e.outerHTML.slice(0, 160)')}")
    return problems


def only_source(viewer: Any, source: str) -> None:
    """Leave only `source` checked in the viewer's Source list; wait until every row shown is from it."""
    viewer.get_by_role("button", name="Source: all").click()
    sources = viewer.get_by_role("group", name="Source")
    sources.get_by_role("checkbox", name=re.compile(rf"^{re.escape(source)} \(")).wait_for()
    for box in sources.get_by_role("checkbox").all():
        if not box.get_attribute("aria-label").startswith(f"{source} ("):
            box.uncheck()
    viewer.get_by_role("button", name=f"Source: {source}").wait_for()
    viewer.page.wait_for_function(
        "([el, source]) => [...el.querySelectorAll('[role=listitem]')].every(r => r.textContent.includes(source))",
        arg=[viewer.element_handle(), source])
    rows = log_rows(viewer).all_inner_texts()
    assert rows and all(text.split()[2] == source for text in rows), rows  # time, level, source, message
