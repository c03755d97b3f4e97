"""The REST export and the notebook widget's export write the same bytes for the same filter."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

import nbtasklog.server.export
from nbtasklog import widget

AWKWARD = 'copied 3 rows, skipped "users"\nsee the next line, too'


def many_records(params: dict[str, Any], context: Any) -> None:
    """300 records over two sources and three levels, one of them AWKWARD (a comma, quotes and a newline)."""
    api = context.logger.with_source("superset_api")
    for i in range(300):
        logger = api if i % 3 else context.logger
        log = logger.warning if i % 11 == 0 else logger.debug if i % 5 == 0 else logger.info
        log(AWKWARD if i == 151 else f'record {i}, of "many"', dashboard_id=i % 20, note='a "quoted", comma')


def widget_export(engine: Any, task_id: str, spec: dict[str, Any], fmt: str) -> tuple[dict[str, Any], bytes]:
    """What the viewer's export request answers: the reply's result and its one buffer."""
    view = widget.LogViewer(task_id, engine=engine)
    sent: list[tuple[dict[str, Any], list[bytes] | None]] = []
    view.send = lambda content, buffers=None: sent.append((content, buffers))  # type: ignore[method-assign]
    try:
        view._on_msg(view, {"type": "request", "id": 1, "method": "export",
                            "args": {"task_id": task_id, "filter": spec, "format": fmt}}, [])
    finally:
        view.close()
    (reply, buffers), = [(content, buffers) for content, buffers in sent if content.get("type") == "reply"]
    assert "error" not in reply, reply
    return reply["result"], buffers[0]  # type: ignore[index]


@pytest.mark.parametrize(("spec", "params"), [
    ({}, {}),
    ({"level": "WARNING"}, {"level": "WARNING"}),
    ({"source": "superset_api", "search": "skipped"}, {"source": "superset_api", "search": "skipped"}),
    ({"level": "DEBUG", "meta": {"dashboard_id": 10}}, {"level": "DEBUG", "meta.dashboard_id": "10"}),
], ids=["everything", "level", "source and search", "metadata"])
async def test_rest_and_widget_exports_are_the_same_bytes(api, engine, finished, monkeypatch, spec, params):
    """JSONL and CSV of one filter, over pages of 64 records: REST's streamed download equals the widget's."""
    monkeypatch.setattr(nbtasklog.server.export, "PAGE", 64)  # several pages for a few hundred records
    task = engine.run_task(many_records, {}, log_level="DEBUG")
    await finished(task.id)
    expected = [r.seq for r in engine.logs(task.id, widget.filter_from_spec(spec))]
    assert expected
    for fmt in ("jsonl", "csv"):
        rest = await api("tasks", task.id, "logs", "export", params={"format": fmt, **params})
        assert rest.code == 200, rest
        result, data = widget_export(engine, task.id, spec, fmt)
        assert data == rest.body
        assert result["count"] == len(expected)
        text = data.decode("utf-8")
        if fmt == "jsonl":
            assert [json.loads(line)["seq"] for line in text.splitlines()] == expected
        else:
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
            assert [int(row["seq"]) for row in rows] == expected
            notes = {json.loads(row["metadata"])["note"] for row in rows if row["source"] != "system"}
            assert notes == {'a "quoted", comma'}
    if not spec:
        assert AWKWARD in [row["message"] for row in rows]
