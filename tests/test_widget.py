"""The notebook widgets' Python side: requests with ids, streams with history, live records and the seam."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from nbtasklog import widget as w


class Recorder:
    """Collects what a widget sends to the front end."""

    def __init__(self, view: w._Base) -> None:
        self.messages: list[tuple[dict[str, Any], list[bytes] | None]] = []
        self.lock = threading.Lock()
        original = view.send

        def send(content: dict[str, Any], buffers: list[bytes] | None = None) -> None:
            with view._send_lock:
                if content.get("type") in ("reply", "stream", "task", "deleted"):
                    with self.lock:
                        self.messages.append((content, buffers))
                else:
                    original(content, buffers)

        view.send = send  # type: ignore[method-assign]

    def wait(self, predicate: Any, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for content, _ in self.messages:
                    if predicate(content):
                        return content
            time.sleep(0.01)
        raise AssertionError(f"no such message; got {[m for m, _ in self.messages]}")

    def records(self, stream: int) -> list[dict[str, Any]]:
        out = []
        with self.lock:
            for content, buffers in self.messages:
                if content.get("stream") == stream and content.get("event") == "records":
                    columns = json.loads(buffers[0])
                    out.extend(dict(zip(columns, row)) for row in zip(*columns.values()))
        return out


def request(view: w._Base, rec: Recorder, request_id: int, method: str, **args: Any) -> dict[str, Any]:
    view._on_msg(view, {"type": "request", "id": request_id, "method": method, "args": args}, [])
    return rec.wait(lambda m: m.get("type") == "reply" and m.get("id") == request_id)


def test_requests_reply_with_their_id_and_errors_as_error(engine):
    """Each reply carries the request's id; a failing request answers {error, id} and the widget keeps working."""
    task = engine.run_task(lambda params, ctx: ctx.logger.info("hi", n=1.0), {})
    task.wait(10)
    view = w.LogViewer(task)
    rec = Recorder(view)
    reply = request(view, rec, 7, "task", task_id=task.id)
    assert reply["result"]["status"] == "SUCCESS" and reply["id"] == 7
    stats = request(view, rec, 8, "stats", task_id=task.id)["result"]
    assert stats["levels"]["INFO"] >= 1
    bad = request(view, rec, 9, "task", task_id="nope")
    assert bad["id"] == 9 and "nope" in bad["error"]
    assert "unknown method" in request(view, rec, 10, "rm -rf")["error"]
    view.close()


def test_stream_sends_filtered_history_then_live_records_once_each(engine):
    """History under the filter, history_end, then live records as emitted; no seq twice, none missing."""
    gate = threading.Event()

    def plugin(params, ctx):
        api = ctx.logger.with_source("superset_api")
        for i in range(50):
            api.info("before %d", i, dashboard_id=i)
            ctx.logger.debug("hidden %d", i)
        gate.wait(10)
        for i in range(50):
            api.info("after %d", i, ratio=1.0)
            ctx.logger.info("plugin %d", i)

    task = engine.run_task(plugin, {})
    deadline = time.monotonic() + 10
    while len(task.logs(source="superset_api")) < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    view = w.LogViewer(task)
    rec = Recorder(view)
    view._on_msg(view, {"type": "open", "stream": 1, "task": task.id, "filter": {"level": "INFO", "source": ["superset_api"]}}, [])
    rec.wait(lambda m: m.get("event") == "history_end")
    gate.set()
    rec.wait(lambda m: m.get("event") == "end")
    records = rec.records(1)
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(set(seqs))
    assert [r["message"] for r in records] == [f"before {i}" for i in range(50)] + [f"after {i}" for i in range(50)]
    assert all(r["source"] == "superset_api" for r in records)
    assert json.loads(records[0]["meta"]) == {"dashboard_id": 0}
    assert records[-1]["meta"] == '{"ratio":1.0}'  # metadata text as stored: 1.0 stays 1.0
    view.close()


def test_filter_message_resets_the_stream(engine):
    """A new filter on an open stream: reset, then the history under the new filter."""
    task = engine.run_task(lambda p, ctx: [ctx.logger.warning("w%d", i) if i % 2 else ctx.logger.info("i%d", i) for i in range(10)], {})
    task.wait(10)
    view = w.LogViewer(task)
    rec = Recorder(view)
    view._on_msg(view, {"type": "open", "stream": 3, "task": task.id, "filter": {"level": "INFO"}}, [])
    rec.wait(lambda m: m.get("event") == "end")
    rec.messages.clear()
    view._on_msg(view, {"type": "filter", "stream": 3, "filter": {"level": "WARNING"}}, [])
    rec.wait(lambda m: m.get("event") == "end")
    assert rec.messages[0][0]["event"] == "reset"
    assert [r["message"] for r in rec.records(3)] == [f"w{i}" for i in range(1, 10, 2)]
    view._on_msg(view, {"type": "filter", "stream": 3, "filter": {"level": "LOUD"}}, [])
    assert "unknown log level" in rec.wait(lambda m: m.get("event") == "error")["message"]
    view.close()


def test_task_list_hears_changes_and_settings_update(engine):
    """TaskList pushes task rows as they change; SettingsPanel reads and writes the engine's settings."""
    tasks = w.TaskList(engine=engine)
    rec = Recorder(tasks)
    task = engine.run_task(lambda p, ctx: None, {})
    task.wait(10)
    rec.wait(lambda m: m.get("type") == "task" and m["task"]["id"] == task.id and m["task"]["status"] == "SUCCESS")
    listing = request(tasks, rec, 1, "tasks")["result"]
    assert task.id in [t["id"] for t in listing["tasks"]] and listing["cursor"] is None
    other = engine.run_task(lambda p, ctx: 1 / 0, {})
    other.wait(10)
    # the same query as GET tasks: by status and plugin, a page at a time with the cursor
    failed = request(tasks, rec, 3, "tasks", status="FAILED")["result"]
    assert [t["id"] for t in failed["tasks"]] == [other.id]
    first = request(tasks, rec, 4, "tasks", limit=1)["result"]
    assert [t["id"] for t in first["tasks"]] == [other.id] and first["cursor"] == other.id
    rest = request(tasks, rec, 5, "tasks", limit=1, before=first["cursor"])["result"]
    assert [t["id"] for t in rest["tasks"]] == [task.id]
    request(tasks, rec, 2, "delete", task_id=task.id)
    rec.wait(lambda m: m.get("type") == "deleted" and m["id"] == task.id)
    tasks.close()

    panel = w.SettingsPanel(engine=engine)
    rec = Recorder(panel)
    assert request(panel, rec, 1, "settings")["result"]["writable"] is True
    result = request(panel, rec, 2, "update_settings", changes={"task_log_level": "WARNING"})["result"]
    assert result["task_log_level"] == "WARNING" and engine.settings.task_log_level.name == "WARNING"
    panel.close()


def test_export_and_text_form(engine):
    """Export gives the filtered log as JSONL or CSV; the text form shows status and last lines, no address."""
    task = engine.run_task(lambda p, ctx: [ctx.logger.info("<img src=x onerror=alert(1)> %d", i) for i in range(3)], {})
    task.wait(10)
    view = w.LogViewer(task)
    rec = Recorder(view)
    view._on_msg(view, {"type": "request", "id": 1, "method": "export", "args": {"task_id": task.id, "format": "jsonl"}}, [])
    reply = rec.wait(lambda m: m.get("id") == 1)
    data = rec.messages[-1][1][0].decode()
    assert reply["result"]["count"] >= 3 and '"<img src=x onerror=alert(1)> 2"' in data
    text = w.task_text(task)
    assert "SUCCESS" in text and "0x" not in text and "<img src=x onerror=alert(1)> 2" in text
    assert task._repr_mimebundle_() == {"text/plain": text}  # no kernel here: text only
    view.close()


def test_widgets_text_forms_have_no_address(engine):
    """Where widgets don't render (nbconvert, GitHub) each widget's text/plain says what it shows."""
    task = engine.run_task("legacy_cleanup", {})
    task.wait(10)
    viewer, tasks, settings = w.LogViewer(task), w.TaskList(engine=engine), w.SettingsPanel(engine=engine)
    bundles = [view._repr_mimebundle_() for view in (viewer, tasks, settings)]
    texts = [(bundle[0] if isinstance(bundle, tuple) else bundle)["text/plain"] for bundle in bundles]
    assert texts[0] == w.task_text(task) and "SUCCESS" in texts[0]
    assert texts[1].splitlines()[1].split() == [task.id, "legacy_cleanup", "SUCCESS"]
    assert "task_log_level=INFO" in texts[2]
    assert not any(" at 0x" in text for text in texts)
    for view in (viewer, tasks, settings):
        view.close()


def test_task_list_reread_sends_what_was_missed_once(engine):
    """The re-read a TaskList makes when its server socket (re)connects sends rows changed unheard, and gone ids, once."""
    tasks = w.TaskList(engine=engine)
    rec = Recorder(tasks)
    tasks._unlisten()  # hear nothing, as while the server's socket is down
    task = engine.run_task(lambda p, ctx: None, {})
    task.wait(10)
    tasks.poll_once()
    assert [(m["task"]["id"], m["task"]["status"]) for m, _ in rec.messages if m["type"] == "task"] == [(task.id, "SUCCESS")]
    rec.messages.clear()
    tasks.poll_once()
    assert rec.messages == []  # nothing changed
    engine.delete_task(task.id)
    tasks.poll_once()
    assert [(m["type"], m.get("id")) for m, _ in rec.messages] == [("deleted", task.id)]
    tasks.close()
