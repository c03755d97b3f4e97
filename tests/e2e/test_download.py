"""Downloading the filtered log (JSONL and CSV) from the sidebar viewer and from the notebook widget."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .conftest import (ARTIFACTS, log_viewer, notebook, only_source, open_and_run, open_sidebar, start_task,
                       task_row, unnamed_controls, wait_finished)

KERNEL_TASK = '''
import nbtasklog
def two_sources(params, ctx):
    api = ctx.logger.with_source("superset_api")
    for i in range(5):
        api.debug("GET /dashboard/%d", i)
        api.info("GET /dashboard/%d -> 200", i, dashboard_id=i)
        ctx.logger.info("saved dashboard %d", i, dashboard_id=i)
    api.warning("slow answer, \\"quoted\\", with a comma")
    api.error("export failed: 502", status=502)
task = nbtasklog.run_task(two_sources, {}, log_level="DEBUG")
task.wait(60)
task
'''


def download(page, viewer, fmt: str, endpoint: bool = False) -> Path:
    """Click Download; with `endpoint`, also check the browser fetched the server's export with the viewer's filter."""
    with page.expect_download() as event:
        if endpoint:
            with page.expect_response(re.compile(r"/nbtasklog/api/tasks/[^/]+/logs/export\?")) as answer:
                viewer.get_by_role("button", name=f"Download {fmt}").click()
            query = parse_qs(urlsplit(answer.value.url).query)
            assert answer.value.status == 200 and query["format"] == [fmt.lower()], answer.value.url
            assert query["source"] == ["superset_api"] and query.get("level", ["INFO"]) == ["INFO"], query
        else:
            viewer.get_by_role("button", name=f"Download {fmt}").click()
    saved = ARTIFACTS / f"download-{event.value.suggested_filename}"
    event.value.save_as(saved)
    return saved


def assert_exactly_filtered(lab, task_id: str, jsonl: Path, csv_file: Path) -> None:
    """Both files hold exactly the records of source superset_api at INFO and above, as the REST API lists them."""
    expected = lab.api("GET", f"tasks/{task_id}/logs?source=superset_api&level=INFO&limit=1000")["records"]
    everything = lab.api("GET", f"tasks/{task_id}/logs?level=DEBUG&limit=1000")["records"]
    assert {r["level"] for r in everything} >= {"DEBUG", "INFO"} and {r["source"] for r in everything} > {"superset_api"}
    assert expected and {r["source"] for r in expected} == {"superset_api"} and "DEBUG" not in {r["level"] for r in expected}

    lines = jsonl.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == expected

    with csv_file.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["seq"]), r["level"], r["source"], r["message"]) for r in rows] == \
        [(r["seq"], r["level"], r["source"], r["message"]) for r in expected]
    assert [json.loads(r["metadata"]) if r["metadata"] else None for r in rows] == [r["metadata"] for r in expected]


def test_sidebar_downloads_the_filtered_log(lab, page):
    """JSONL and CSV from the sidebar viewer (the export endpoint) hold only superset_api records at INFO and above."""
    task_id = start_task(lab, "dashboard_backup", {"dashboards": 20, "delay": 0}, log_level="DEBUG")
    wait_finished(lab, task_id)
    panel = open_sidebar(lab, page)
    task_row(panel, task_id).click()
    viewer = log_viewer(panel, task_id)
    viewer.get_by_role("listitem").first.wait_for()
    assert viewer.get_by_role("combobox", name="Level").input_value() == "INFO"
    only_source(viewer, "superset_api")
    assert_exactly_filtered(lab, task_id, download(page, viewer, "JSONL", endpoint=True),
                            download(page, viewer, "CSV", endpoint=True))
    assert viewer.get_by_role("alert").count() == 0


def test_notebook_widget_downloads_the_filtered_log(lab, page):
    """The LogViewer widget's download goes through the kernel and holds the same filtered records; its controls are named."""
    open_and_run(page, notebook(lab, "download.ipynb", [KERNEL_TASK]))
    viewer = log_viewer(page)
    viewer.get_by_role("listitem").filter(has_text="export failed").wait_for(timeout=60_000)
    task_id = viewer.get_attribute("aria-label").removeprefix("Log of task ")
    only_source(viewer, "superset_api")
    assert unnamed_controls(viewer) == []
    page.screenshot(path=str(ARTIFACTS / "viewer-notebook-download.png"))
    assert_exactly_filtered(lab, task_id, download(page, viewer, "JSONL"), download(page, viewer, "CSV"))
    assert viewer.get_by_role("alert").count() == 0
