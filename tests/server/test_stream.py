"""The WebSockets: one task's log stream (history, seam, live, filters) and the task-list stream."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from .conftest import read_json, read_until, records_of, seqs_of, until
from .test_rest import ARROW, ipc_stream, kernel_records, task_row


def is_end(message: dict) -> bool:
    return message["type"] == "end"


def is_history_end(message: dict) -> bool:
    return message["type"] == "history_end"


async def record_count(api, task_id: str, at_least: int) -> bool:
    return (await api("tasks", task_id)).json()["record_count"] >= at_least


async def held_task(api, start, gate, n: int, hold: int) -> tuple[str, Any]:
    """Start t_sources for `n` records, held after `hold` of them until the event is set; return once those are stored."""
    name, event = gate()
    task = (await start("t_sources", {"n": n, "gate": name, "hold": hold}))["id"]
    await until(lambda: record_count(api, task, hold + 1), what=f"{hold + 1} records")
    return task, event


# ---- the seam between history and live records ------------------------------------------------------
@pytest.mark.parametrize("hold", [0, 37, 150])
async def test_seam_complete_without_duplicates(api, start, gate, sockets, hold):
    """Subscribing while a task runs: history, then live; the whole stream is seq 1..N once each, then end."""
    n = 200
    task, event = await held_task(api, start, gate, n=n, hold=hold)
    ws = await sockets("tasks", task, "logs", "stream")
    history = await read_until(ws, is_history_end)
    assert seqs_of(records_of(history)) == list(range(1, hold + 2))
    assert history[-1]["cursor"] == hold + 1
    event.set()
    live = await read_until(ws, is_end)
    everything = records_of(history + live)
    assert seqs_of(everything) == list(range(1, n + 3))  # started, n records, succeeded
    assert all(r["task_id"] == task for r in everything)
    assert live[-1] == {"type": "end", "status": "SUCCESS", "cursor": n + 2}
    for message in history + live:  # every records message carries the cursor of its last record
        if message["type"] == "records":
            assert message["cursor"] == message["records"][-1]["seq"]


async def test_seam_while_the_task_is_emitting(api, start, gate, sockets):
    """A socket opened while the task emits fast (buffer and store both in play) still gets 1..N exactly once."""
    n = 20_000
    task, event = await held_task(api, start, gate, n=n, hold=0)
    event.set()
    ws = await sockets("tasks", task, "logs", "stream")
    messages = await read_until(ws, is_end, timeout=60)
    seqs = seqs_of(records_of(messages))
    assert len(seqs) == len(set(seqs)) == n + 2
    assert seqs == list(range(1, n + 3))


@pytest.mark.parametrize("nbtasklog_config", [{"stream_queue": 50}])
async def test_lagging_client_is_told_and_loses_nothing(api, start, gate, sockets):
    """A client whose queue overflows gets a lagging message and catches up from its cursor: nothing lost."""
    n = 20_000
    task, event = await held_task(api, start, gate, n=n, hold=0)
    ws = await sockets("tasks", task, "logs", "stream")
    history = await read_until(ws, is_history_end)
    event.set()
    messages = history + await read_until(ws, is_end, timeout=60)
    assert any(m["type"] == "lagging" for m in messages)
    assert seqs_of(records_of(messages)) == list(range(1, n + 3))


# ---- the shared live window --------------------------------------------------------------------------
async def test_sockets_share_one_live_window(api, start, gate, sockets, jp_serverapp):
    """Three sockets with different filters on one task: one live subscriber for all, each gets exactly its records."""
    services = jp_serverapp.web_app.settings["nbtasklog"]
    task, event = await held_task(api, start, gate, n=300, hold=10)
    filters = [{}, {"source": "superset_api"}, {"level": "WARNING"}]
    opened = [await sockets("tasks", task, "logs", "stream", params=params) for params in filters]
    history = [await read_until(ws, is_history_end) for ws in opened]
    subscribers = services.engine.runner.get(task).emitter.subscribers
    assert len(subscribers) == 1 and len(services.windows[task].readers) == 3
    event.set()
    for params, ws, before in zip(filters, opened, history):
        streamed = records_of(before + await read_until(ws, is_end))
        assert streamed == (await api("tasks", task, "logs", params=dict(params, limit=1000))).json()["records"]
        assert len(set(seqs_of(streamed))) == len(streamed)
    assert task not in services.windows  # the last socket's stream ended: the window went with it
    assert not services.engine._live.get(task)


@pytest.mark.parametrize("nbtasklog_config", [{"stream_queue": 50}])
async def test_sockets_behind_the_window_are_told_and_lose_nothing(api, start, gate, sockets):
    """A window of 50 records and a fast task: each socket falls behind, is told, and gets exactly its records."""
    n = 20_000
    task, event = await held_task(api, start, gate, n=n, hold=0)
    filters = [{}, {"source": "superset_api"}]
    opened = [await sockets("tasks", task, "logs", "stream", params=params) for params in filters]
    history = [await read_until(ws, is_history_end) for ws in opened]
    event.set()
    for params, ws, before in zip(filters, opened, history):
        messages = before + await read_until(ws, is_end, timeout=60)
        assert any(m["type"] == "lagging" for m in messages)
        expected = [r["seq"] for r in (await api("tasks", task, "logs", params=dict(params, limit=n + 2))).json()["records"]]
        assert seqs_of(records_of(messages)) == expected
    assert len(expected) == n // 2


@pytest.mark.parametrize("nbtasklog_config", [{"stream_queue": 1000}])
async def test_window_reads_back_what_a_stalled_loop_missed(api, start, gate, sockets):
    """The server's loop held up while 900 records come (its live deque holds 500): read back once, no socket lags."""
    n = 900
    task, event = await held_task(api, start, gate, n=n, hold=0)
    opened = [await sockets("tasks", task, "logs", "stream", params=params) for params in ({}, {"level": "WARNING"})]
    for ws in opened:
        await read_until(ws, is_history_end)
    event.set()
    time.sleep(0.5)  # blocks this event loop, which is the server's: the task emits everything meanwhile
    for params, ws in zip(({}, {"level": "WARNING"}), opened):
        messages = await read_until(ws, is_end)
        assert not any(m["type"] == "lagging" for m in messages)
        expected = (await api("tasks", task, "logs", params=dict(params, limit=n + 2))).json()["records"]
        assert records_of(messages) == [r for r in expected if r["seq"] > 1]


async def test_after_in_url_resumes_from_cursor(api, start, finished, sockets):
    """after=SEQ in the URL sends only records past SEQ (a client resuming)."""
    task = (await start("t_sources", {"n": 30}))["id"]
    await finished(task)
    ws = await sockets("tasks", task, "logs", "stream", params={"after": 25})
    messages = await read_until(ws, is_end)
    assert seqs_of(records_of(messages)) == list(range(26, 33))
    assert messages[-1]["cursor"] == 32


# ---- filters ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "params",
    [
        {"source": "superset_api"},
        [("source", "plugin"), ("source", "system")],
        {"search": "RECORD 1"},
        {"meta.dashboard_id": "7"},
        {"meta.nested.k": "v2", "source": "plugin"},
        {"level": "WARNING"},
    ],
)
async def test_url_filter_applies_to_history_and_live(api, start, gate, sockets, params):
    """A filter in the URL: history and live records are exactly what GET logs answers with the same filter."""
    task, event = await held_task(api, start, gate, n=60, hold=20)
    ws = await sockets("tasks", task, "logs", "stream", params=params)
    history = await read_until(ws, is_history_end)
    event.set()
    streamed = records_of(history + await read_until(ws, is_end))
    rest = (await api("tasks", task, "logs", params=params)).json()["records"]
    assert rest, "the filter should match some records"
    assert streamed == rest
    # and once more from the start, now that the task ended (history only)
    replay = records_of(await read_until(await sockets("tasks", task, "logs", "stream", params=params), is_end))
    assert replay == rest


async def test_url_filter_source_streams_only_that_source(api, start, gate, sockets):
    """source=superset_api on a running task: only superset_api records arrive, every one of them (US1.1)."""
    task, event = await held_task(api, start, gate, n=40, hold=10)
    ws = await sockets("tasks", task, "logs", "stream", params={"source": "superset_api"})
    history = await read_until(ws, is_history_end)
    assert [r["source"] for r in records_of(history)] == ["superset_api"] * 5
    event.set()
    records = records_of(history + await read_until(ws, is_end))
    assert {r["source"] for r in records} == {"superset_api"}
    assert [r["metadata"]["dashboard_id"] for r in records] == list(range(2, 41, 2))


async def test_filter_change_on_open_socket(api, start, gate, sockets):
    """A filter message resets the stream: a reset message, then only matching records, new live ones too (US1.2)."""
    task, event = await held_task(api, start, gate, n=40, hold=10)
    ws = await sockets("tasks", task, "logs", "stream")
    before = await read_until(ws, is_history_end)
    assert seqs_of(records_of(before)) == list(range(1, 12))
    await ws.write_message(json.dumps({"type": "filter", "source": "superset_api"}))
    reset = await read_json(ws)
    assert reset == {"type": "reset", "filter": {"source": ["superset_api"]}}  # the filter's wire form (to_wire)
    replayed = await read_until(ws, is_history_end)
    assert [r["metadata"]["dashboard_id"] for r in records_of(replayed)] == [2, 4, 6, 8, 10]
    event.set()
    after = replayed + await read_until(ws, is_end)
    records = records_of(after)
    assert {r["source"] for r in records} == {"superset_api"}
    assert [r["metadata"]["dashboard_id"] for r in records] == list(range(2, 41, 2))  # live ones included
    assert len(set(seqs_of(records))) == len(records)
    # the filter can change again on the same socket after the end: replays the matching history
    await ws.write_message(json.dumps({"type": "filter", "search": "record 3 of", "meta": {"dashboard_id": 3}}))
    reset = await read_json(ws)
    assert reset["type"] == "reset" and reset["filter"] == {"search": "record 3 of", "meta": ["dashboard_id=3"]}
    assert [r["message"] for r in records_of(await read_until(ws, is_end))] == ["record 3 of 40"]
    # the widget's form (metadata as "key=value" texts, null for what is not set) is the same filter
    await ws.write_message(json.dumps({"type": "filter", "level": None, "source": None, "search": "record 3 of",
                                       "meta": ["dashboard_id=3"], "errors_only": False}))
    assert (await read_json(ws))["filter"] == {"search": "record 3 of", "meta": ["dashboard_id=3"]}
    assert [r["message"] for r in records_of(await read_until(ws, is_end))] == ["record 3 of 40"]


async def test_filter_change_with_after_and_level(api, start, finished, sockets):
    """A filter message may carry after (cursor) and level; the stream then starts past that cursor."""
    task = (await start("t_levels", log_level="DEBUG"))["id"]
    await finished(task)
    ws = await sockets("tasks", task, "logs", "stream")
    await read_until(ws, is_end)
    await ws.write_message(json.dumps({"type": "filter", "level": "ERROR", "after": 5}))
    assert (await read_json(ws))["type"] == "reset"
    assert [r["message"] for r in records_of(await read_until(ws, is_end))] == ["db error elderberry"]


@pytest.mark.parametrize(
    "message, words",
    [
        ("not json", ["expect"]),
        (json.dumps([1, 2]), ["filter"]),
        (json.dumps({"type": "subscribe"}), ["filter"]),
        (json.dumps({"type": "filter", "level": "LOUD"}), ["LOUD"]),
        (json.dumps({"type": "filter", "colour": "red"}), ["colour"]),
        (json.dumps({"type": "filter", "meta": "x"}), ["meta must be a list"]),
        (json.dumps({"type": "filter", "meta": {"bad key": 1}}), ["metadata key"]),
        (json.dumps({"type": "filter", "meta": ["k=1", "k=2"]}), ["two values"]),
        (json.dumps({"type": "filter", "source": 5}), ["source must be a name or a list of names"]),
        (json.dumps({"type": "filter", "after": "x"}), ["after"]),
        (json.dumps({"type": "filter", "search": 5}), ["search"]),
        (json.dumps({"type": "filter", "errors_only": "no"}), ["errors_only must be true or false"]),
        (json.dumps({"type": "filter", "since": "2024-05-01T12:00:00"}), ["since needs a UTC offset"]),
    ],
)
async def test_bad_filter_message_keeps_socket_open(api, start, finished, sockets, message, words):
    """A bad client message gets {"type": "error"} saying what was wrong; the socket stays open and usable."""
    task = (await start("t_sources", {"n": 4}))["id"]
    await finished(task)
    ws = await sockets("tasks", task, "logs", "stream")
    await read_until(ws, is_end)
    await ws.write_message(message)
    error = await read_json(ws)
    assert error["type"] == "error", error
    for word in words:
        assert word.lower() in error["message"].lower(), error
    assert ws.close_code is None
    await ws.write_message(json.dumps({"type": "filter", "source": "superset_api"}))
    assert (await read_json(ws))["type"] == "reset"
    assert seqs_of(records_of(await read_until(ws, is_end))) == [3, 5]


async def test_two_tasks_streams_never_mix(api, start, gate, sockets):
    """Two tasks running at once: each socket gets its own task's records only, each stream complete."""
    name_a, event_a = gate()
    name_b, event_b = gate()
    a = (await start("t_sources", {"n": 300, "gate": name_a, "hold": 5}))["id"]
    b = (await start("t_sources", {"n": 200, "gate": name_b, "hold": 50}))["id"]
    ws_a = await sockets("tasks", a, "logs", "stream")
    ws_b = await sockets("tasks", b, "logs", "stream")
    ws_b_api = await sockets("tasks", b, "logs", "stream", params={"source": "superset_api"})
    event_a.set()
    event_b.set()
    got_a = records_of(await read_until(ws_a, is_end))
    got_b = records_of(await read_until(ws_b, is_end))
    got_b_api = records_of(await read_until(ws_b_api, is_end))
    assert {r["task_id"] for r in got_a} == {a} and seqs_of(got_a) == list(range(1, 303))
    assert {r["task_id"] for r in got_b} == {b} and seqs_of(got_b) == list(range(1, 203))
    assert {(r["task_id"], r["source"]) for r in got_b_api} == {(b, "superset_api")} and len(got_b_api) == 100


# ---- status, end, unknown task ----------------------------------------------------------------------
async def test_status_messages_carry_progress(api, start, gate, sockets):
    """Status messages carry the task's progress and message; the end follows the final status."""
    (g1, e1), (g2, e2) = gate(), gate()
    task = (await start("t_steps", {"gates": [g1, g2]}))["id"]
    ws = await sockets("tasks", task, "logs", "stream")
    await read_until(ws, is_history_end)
    e1.set()
    seen = await read_until(ws, lambda m: m["type"] == "status" and m["task"]["progress"] == 0.5)
    status = seen[-1]["task"]
    assert status["id"] == task and status["status"] == "RUNNING" and status["progress_message"] == "step 1 of 2"
    e2.set()
    rest = await read_until(ws, is_end)
    final = [m for m in rest if m["type"] == "status"][-1]["task"]
    assert final["status"] == "SUCCESS" and final["progress"] == 1.0 and final["progress_message"] == "step 2 of 2"
    assert rest[-2]["type"] == "status" and rest[-1]["type"] == "end"
    records = records_of(seen + rest)
    assert [r["message"] for r in records if r["source"] == "plugin"] == ["step 1", "step 2"]
    assert records[-1]["source"] == "system" and records[-1]["message"].startswith("Task succeeded")


async def test_unknown_task_closes_with_4404(sockets):
    """A stream for an unknown task closes with code 4404 and a reason naming the task."""
    ws = await sockets("tasks", "no-such-task", "logs", "stream")
    assert await read_json(ws) is None
    assert ws.close_code == 4404 and "no-such-task" in ws.close_reason


@pytest.mark.parametrize("params, words", [({"level": "LOUD"}, ["LOUD"]), ({"colour": "red"}, ["colour"]),
                                            ({"meta.a b": "1"}, ["metadata key"])])
async def test_bad_url_filter_closes_with_4400(api, start, finished, sockets, params, words):
    """A bad filter in the stream URL closes with code 4400 and a reason saying what was wrong."""
    task = (await start("t_sources", {"n": 2}))["id"]
    ws = await sockets("tasks", task, "logs", "stream", params=params)
    assert await read_json(ws) is None
    assert ws.close_code == 4400
    for word in words:
        assert word in ws.close_reason


async def test_stream_of_ingested_task_is_live(api, sockets):
    """A task run in a kernel: records that arrive by ingest reach an open stream, then its end."""
    task_id = "kernel-live-1"
    await api("ingest", method="POST", body=ipc_stream([task_row(task_id)], kernel_records(task_id, 3)), headers=ARROW)
    ws = await sockets("tasks", task_id, "logs", "stream", params={"source": "kernel"})
    history = await read_until(ws, is_history_end)
    assert seqs_of(records_of(history)) == [1, 3]
    await api("ingest", method="POST", body=ipc_stream([], kernel_records(task_id, 4, first=4)), headers=ARROW)
    live = await read_until(ws, lambda m: m["type"] == "records" and m["cursor"] == 7)
    assert seqs_of(records_of(live)) == [5, 7]
    done = task_row(task_id, "SUCCESS", finished_at="2026-01-01T00:00:01+00:00")
    await api("ingest", method="POST", body=ipc_stream([done], kernel_records(task_id, 2, first=8)), headers=ARROW)
    rest = await read_until(ws, is_end)
    assert seqs_of(records_of(live + rest)) == [5, 7, 9]
    assert rest[-1] == {"type": "end", "status": "SUCCESS", "cursor": 9}


# ---- the task-list socket ---------------------------------------------------------------------------
async def test_task_list_stream(api, start, gate, finished, sockets):
    """The task-list socket sends {"type": "task"} for creation, status and progress, {"type": "deleted"} for deletion."""
    ws = await sockets("tasks", "stream")
    (g1, e1), (g2, e2) = gate(), gate()
    task = (await start("t_steps", {"gates": [g1, g2]}))["id"]
    ours = lambda m: m.get("task", {}).get("id") == task or m.get("id") == task  # noqa: E731
    first = await read_until(ws, ours)
    assert first[-1]["type"] == "task" and first[-1]["task"]["plugin"] == "t_steps"
    assert first[-1]["task"]["params"] == {"gates": [g1, g2]}
    assert first[-1]["task"]["status"] in ("PENDING", "RUNNING")
    e1.set()
    progress = await read_until(ws, lambda m: ours(m) and m["task"]["progress"] == 0.5)
    assert progress[-1]["task"]["progress_message"] == "step 1 of 2"
    e2.set()
    done = await read_until(ws, lambda m: ours(m) and m["task"]["status"] not in ("PENDING", "RUNNING"))
    assert done[-1]["task"]["status"] == "SUCCESS" and done[-1]["task"]["progress"] == 1.0
    statuses = [m["task"]["status"] for m in first + progress + done if ours(m)]
    order = {"PENDING": 0, "RUNNING": 1, "SUCCESS": 2}
    assert statuses == sorted(statuses, key=order.__getitem__)  # never goes back
    other = (await start("t_schema", {"x": 1}))["id"]
    await finished(other)
    await read_until(ws, lambda m: m.get("task", {}).get("id") == other and m["task"]["status"] == "SUCCESS")
    assert (await api("tasks", task, method="DELETE")).code == 204
    deleted = await read_until(ws, lambda m: m["type"] == "deleted")
    assert deleted[-1] == {"type": "deleted", "id": task}


async def test_task_list_stream_sees_ingested_tasks_and_refuses_commands(api, sockets):
    """Ingested task rows appear on the task-list socket; a message sent to it gets an error, the socket stays."""
    ws = await sockets("tasks", "stream")
    await api("ingest", method="POST", body=ipc_stream([task_row("kernel-list-1")]), headers=ARROW)
    seen = await read_until(ws, lambda m: m["type"] == "task")
    assert seen[-1]["task"]["id"] == "kernel-list-1" and seen[-1]["task"]["params"] == {"a": 1}
    await ws.write_message(json.dumps({"type": "filter"}))
    error = await read_json(ws)
    assert error["type"] == "error" and "REST" in error["message"]
    assert ws.close_code is None
