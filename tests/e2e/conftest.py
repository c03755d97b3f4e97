"""End-to-end fixtures: a real JupyterLab with nbtasklog, and Debian's chromium driven by Playwright.

Recipe: ../../../shared/recipes/browser-e2e.md. Each session gets fresh Jupyter dirs and its own
database; the built labextension is found through JUPYTER_PATH (no install state is assumed).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    _require()
    base = tmp_path_factory.mktemp("lab")
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
               JUPYTER_PATH=str(data), NBTASKLOG_DB=str(base / "logs.duckdb"), JUPYTER_PLATFORM_DIRS="1")
    env.pop("NBTASKLOG_SERVER_URL", None)
    port = _free_port()
    bin_dir = Path(sys.executable).parent
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    log = open(base / "server.log", "w")
    process = subprocess.Popen(
        [str(bin_dir / "jupyter-lab"), "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--allow-root",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.jpserver_extensions", "nbtasklog=True"],
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
            shutil.copy(base / "server.log", ARTIFACTS / "server.log")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: Playwright's sync API keeps an asyncio loop running in this thread
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
