"""The log viewer in a notebook (anywidget), in real JupyterLab under headless chromium."""

from __future__ import annotations

import time

from .conftest import ARTIFACTS, execute, notebook, open_and_run

VIEWER = ".jp-OutputArea-output .ntl-viewer"

SETUP = '''
import threading, nbtasklog
go, done = threading.Event(), threading.Event()

def two_sources(params, ctx):
    api = ctx.logger.with_source("superset_api")
    ctx.logger.info("plugin starts")
    for i in range(3):
        api.info("GET /dashboard/%d", i, dashboard_id=i)
    ctx.logger.info("<img src=x onerror=alert(1)>", html="<script>alert(2)</script>")
    with nbtasklog.belief_scope("load_users"):
        ctx.logger.info("loading users")
    go.wait(120)
    api.info("live api record")
    ctx.logger.info("live plugin record")
    done.wait(120)

task = nbtasklog.run_task(two_sources, {}, log_level="DEBUG")
task
'''


def messages(page) -> list[str]:
    return page.eval_on_selector_all(f"{VIEWER} .ntl-row .ntl-message", "els => els.map(e => e.textContent)")


def sources(page) -> set[str]:
    return set(page.eval_on_selector_all(f"{VIEWER} .ntl-row .ntl-source", "els => els.map(e => e.textContent)"))


def test_source_filter_live_records_debug_and_html(lab, page):
    """US1.1, US1.2, US4.2/4.3 and text-only rendering, on one running task in a notebook."""
    open_and_run(page, notebook(lab, "viewer.ipynb", [SETUP]))
    page.wait_for_selector(VIEWER, timeout=60_000)
    page.wait_for_function(f"[...document.querySelectorAll('{VIEWER} .ntl-message')].some(e => e.textContent === 'GET /dashboard/2')", timeout=30_000)

    # text/plain and widget both there; the HTML in a message shows literally and runs nothing
    assert "<img src=x onerror=alert(1)>" in messages(page)
    assert page.query_selector(f"{VIEWER} .ntl-rows img") is None
    page.click(f"{VIEWER} .ntl-row:has-text('onerror') [data-action=details]")
    assert "<script>alert(2)</script>" in page.inner_text(f"{VIEWER} .ntl-meta")
    assert page.query_selector(f"{VIEWER} .ntl-rows script") is None

    # FR-010 / US4.3: the default view hides DEBUG, so belief_scope's Entry/Exit are not there
    assert page.locator(VIEWER).get_by_label("Level", exact=True).input_value() == "INFO"
    assert not any("[load_users][Entry]" in m for m in messages(page))
    # US4.2: DEBUG shows them
    page.locator(VIEWER).get_by_label("Level", exact=True).select_option("DEBUG")
    page.wait_for_function(f"[...document.querySelectorAll('{VIEWER} .ntl-message')].some(e => e.textContent.includes('[load_users][Entry]'))", timeout=15_000)
    assert any("[load_users][Exit]" in m for m in messages(page))
    page.locator(VIEWER).get_by_label("Level", exact=True).select_option("INFO")
    page.wait_for_function(f"![...document.querySelectorAll('{VIEWER} .ntl-message')].some(e => e.textContent.includes('[load_users]'))", timeout=15_000)

    # US1.1: only superset_api
    page.click(f"{VIEWER} .ntl-sources-summary")
    page.wait_for_selector(f"{VIEWER} .ntl-source-list input[value=superset_api]", timeout=15_000)
    for box in page.query_selector_all(f"{VIEWER} .ntl-source-list input[type=checkbox]"):
        if box.get_attribute("value") != "superset_api" and box.is_checked():
            box.uncheck()
    page.wait_for_function(f"[...document.querySelectorAll('{VIEWER} .ntl-source')].every(e => e.textContent === 'superset_api')")
    assert sources(page) == {"superset_api"}
    assert len(messages(page)) == 3
    page.screenshot(path=str(ARTIFACTS / "viewer-notebook.png"))

    # US1.2: a new matching record appears at once; a non-matching one never shows
    execute(page, "go.set()")
    page.wait_for_function(f"[...document.querySelectorAll('{VIEWER} .ntl-message')].some(e => e.textContent === 'live api record')", timeout=15_000)
    out = execute(page, "import time\nwhile not task.logs(search='live plugin record'): time.sleep(0.05)\nprint('emitted')")
    assert "emitted" in out
    time.sleep(0.5)  # longer than the widget's batch interval: had it come, it would show
    assert "live plugin record" not in messages(page)
    assert sources(page) == {"superset_api"}
    execute(page, "done.set(); task.wait(30)")
    page.wait_for_function(f"document.querySelector('{VIEWER} .ntl-status').textContent === 'SUCCESS'", timeout=30_000)
    assert page.dialogs == []


def test_hundred_thousand_records_scroll_to_end(lab, page):
    """100,000 records: End reaches the last one and the DOM holds at most 200 rows."""
    code = '''
import nbtasklog
def many(params, ctx):
    for i in range(100_000):
        ctx.logger.info("record %d", i + 1, row=i)
big = nbtasklog.run_task(many, {})
big.wait(120)
big
'''
    open_and_run(page, notebook(lab, "big.ipynb", [code]))
    page.wait_for_selector(VIEWER, timeout=120_000)
    started = time.monotonic()
    try:
        page.wait_for_function(f"[...document.querySelectorAll('{VIEWER} .ntl-message')].some(e => e.textContent === 'record 100000')", timeout=40_000)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "viewer-100k-failed.png"))
        print(messages(page)[-5:], page.inner_text(f"{VIEWER} .ntl-header"), page.inner_text(f"{VIEWER} .ntl-note"))
        raise
    loaded = time.monotonic() - started
    counts = page.inner_text(f"{VIEWER} .ntl-counts")
    info = int(next(line for line in counts.split("\n") if line.startswith("INFO")).split()[1].replace(",", ""))
    assert info >= 100_000, counts  # the 100,000 and the runner's own start/end records
    page.click(f"{VIEWER} [aria-label='Log records']")
    page.keyboard.press("Home")
    page.wait_for_function(f"[...document.querySelectorAll('{VIEWER} .ntl-message')].some(e => e.textContent === 'record 1')")
    assert len(page.query_selector_all(f"{VIEWER} .ntl-row")) <= 200
    page.keyboard.press("End")
    page.wait_for_function(f"[...document.querySelectorAll('{VIEWER} .ntl-message')].some(e => e.textContent === 'record 100000')")
    rows = len(page.query_selector_all(f"{VIEWER} .ntl-row"))
    assert rows <= 200, rows
    page.screenshot(path=str(ARTIFACTS / "viewer-100k.png"))
    print(f"100k records: visible after {loaded:.1f} s, {rows} rows in the DOM")
