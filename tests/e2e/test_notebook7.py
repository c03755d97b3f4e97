"""Notebook 7 (the `notebook` package) on the same server: /tree lists the notebook, /notebooks/ runs it, the viewer filters."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from .conftest import (
    ARTIFACTS,
    TOKEN,
    execute,
    log_rows,
    log_viewer,
    notebook,
    only_source,
    run_all,
    unnamed_controls,
)

CELL = '''
import threading, nbtasklog
go = threading.Event()

def two_sources(params, ctx):
    api = ctx.logger.with_source("superset_api")
    for i in range(3):
        api.info("GET /dashboard/%d", i, dashboard_id=i)
        ctx.logger.info("saved dashboard %d", i)
    go.wait(120)
    api.info("live api record")
    ctx.logger.info("live plugin record")

task = nbtasklog.run_task(two_sources, {})
task
'''


def test_notebook7_tree_opens_notebook_whose_viewer_filters_by_source(lab, page):
    """The /tree file list opens the notebook at /notebooks/; its cell's viewer renders, filters, and takes live records."""
    notebook(lab, "notebook7.ipynb", [CELL])
    page.goto(f"{lab.url}tree?token={TOKEN}")
    # The listing names an entry "Name: notebook7.ipynb Size: … Modified: …"
    entry = page.get_by_role("listitem", name=re.compile(r"^Name: notebook7\.ipynb "))
    with page.context.expect_page() as opened:  # Notebook 7 opens a notebook in a new browser tab
        entry.dblclick()
    nb = opened.value
    dialogs: list[str] = []  # an alert() from log text would land here
    nb.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    nb.wait_for_url("**/notebooks/notebook7.ipynb*")
    run_all(nb)

    viewer = log_viewer(nb)
    records = log_rows(viewer)
    expect(records.filter(has_text="saved dashboard 2")).to_have_count(1, timeout=60_000)
    only_source(viewer, "superset_api")
    expect(records).to_have_count(3)
    execute(nb, "go.set(); task.wait(30)")
    expect(records.filter(has_text="live api record")).to_have_count(1)
    expect(viewer.get_by_role("status", name="Task status")).to_have_text("SUCCESS")
    assert records.filter(has_text="live plugin record").count() == 0
    assert unnamed_controls(viewer) == []
    nb.screenshot(path=str(ARTIFACTS / "viewer-notebook7.png"))
    assert dialogs == []
