"""The hostile corpus (tests/hostile.py) through the server's faces: REST (task rows, logs, stats, export
as JSONL, CSV and Parquet), both WebSockets and POST tasks with params no store can hold. No 5xx, no
socket closed on a record, every face shows the stored records; the store stays available."""

from __future__ import annotations

import csv
import io
import json

import pyarrow.parquet as pq
import pytest
import reliability
from hostile import hostile_plugin, only_nbtasklog_on_the_root_logger, record_key

import nbtasklog
from nbtasklog.record import REPLACEMENT

from .conftest import read_until, records_of, until

pytestmark = pytest.mark.slow

nbtasklog.register(name="t_hostile")(hostile_plugin)


def is_end(message: dict) -> bool:
    return message["type"] == "end"


@pytest.mark.parametrize("nbtasklog_config", [{"flush_interval": 3600.0, "flush_size": 10**9}])
async def test_every_face_shows_the_same_records_before_the_flush(api, start, engine, sockets):
    """With nothing flushed yet (the whole of an outage looks like this): REST, export and a live socket
    answer; a lone surrogate in a message no longer makes GET logs answer 500 or close the socket."""
    socket = await sockets("tasks", "stream")
    with only_nbtasklog_on_the_root_logger():  # pytest's handlers add their handlers per test phase
        task = await start("t_hostile", {"name": "a\ud800b"})
        log_socket = await sockets("tasks", task["id"], "logs", "stream")
        streamed = await read_until(log_socket, is_end, timeout=60)
    assert streamed[-1]["status"] == "SUCCESS", engine.task_info(task["id"])["error"]
    reference = [record_key(r.to_dict()) for r in engine.logs(task["id"])]
    assert [record_key(r) for r in records_of(streamed)] == reference
    await check_rest_faces(api, task["id"], reference)
    listed = []
    while not any(m.get("task", {}).get("status") == "SUCCESS" for m in listed):
        listed.extend(await read_until(socket, lambda m: m["type"] == "task"))
    assert all(m["task"]["params"] == {"name": f"a{REPLACEMENT}b"} for m in listed)
    reliability.record("hostile", faces=["task-list WebSocket"])


async def test_every_face_shows_the_same_records_after_the_flush(api, start, engine, finished, sockets):
    """Stored: the same answers; a socket opened afterwards reads the history; health says available."""
    with only_nbtasklog_on_the_root_logger():
        task = await start("t_hostile")
        await finished(task["id"], timeout=60)
    await until(lambda: engine.flush(), what="the flush")
    reference = [record_key(r.to_dict()) for r in engine.logs(task["id"])]
    log_socket = await sockets("tasks", task["id"], "logs", "stream")
    assert [record_key(r) for r in records_of(await read_until(log_socket, is_end, timeout=60))] == reference
    await check_rest_faces(api, task["id"], reference)
    health = (await api("health")).json()
    assert health["database_available"] and health["last_error"] is None


async def check_rest_faces(api, task_id: str, reference: list[tuple]) -> None:
    row = await api("tasks", task_id)
    assert row.code == 200, row
    assert row.json()["progress_message"] == f"progress {REPLACEMENT}"
    listing = await api("tasks")
    assert listing.code == 200 and task_id in [t["id"] for t in listing.json()["tasks"]]
    logs = await api("tasks", task_id, "logs", params={"limit": "1000"})
    assert logs.code == 200, logs
    assert [record_key(r) for r in logs.json()["records"]] == reference
    stats = await api("tasks", task_id, "logs", "stats")
    assert stats.code == 200 and stats.json()["total"] == len(reference)
    jsonl = await api("tasks", task_id, "logs", "export", params={"format": "jsonl"})
    assert jsonl.code == 200
    assert [record_key(json.loads(line)) for line in jsonl.body.decode("utf-8").splitlines()] == reference
    as_csv = await api("tasks", task_id, "logs", "export", params={"format": "csv"})
    assert as_csv.code == 200
    csv.field_size_limit(1 << 30)  # the reader's own default (128 kB) is below a 1 MB message
    rows = list(csv.DictReader(io.StringIO(as_csv.body.decode("utf-8"), newline="")))
    assert [(int(r["seq"]), r["message"]) for r in rows] == [(k[0], k[3]) for k in reference]
    parquet = await api("tasks", task_id, "logs", "export", params={"format": "parquet"})
    assert parquet.code == 200
    table = pq.read_table(io.BytesIO(parquet.body))
    assert table.column("message").to_pylist() == [k[3] for k in reference]
    assert [json.loads(m) if m else None for m in table.column("metadata").to_pylist()] == [k[4] for k in reference]
    search = await api("tasks", task_id, "logs", params={"search": f"surrogates {REPLACEMENT}"})
    assert search.code == 200 and len(search.json()["records"]) == 1
    reliability.record("hostile", faces=["REST", "export JSONL", "export CSV", "export Parquet", "log WebSocket"])


async def test_post_tasks_with_params_no_store_can_hold(api, engine, finished):
    """A lone surrogate in params (a JSON escape) starts the task, is answered and stored repaired."""
    response = await api("tasks", method="POST", body='{"plugin": "t_schema", "params": {"x": 1, "f": "\\ud800"}}')
    assert response.code == 201, response
    assert response.json()["params"] == {"x": 1, "f": REPLACEMENT}
    row = await finished(response.json()["id"])
    assert row["status"] == "SUCCESS" and row["params"]["f"] == REPLACEMENT
    await until(lambda: engine.flush(), what="the flush")
    assert (await api("tasks")).code == 200
    assert (await api("health")).json()["database_available"]
