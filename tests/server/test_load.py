"""Load on a real `jupyter server`: 50 tasks of 10,000 records at once, ten of them followed by WebSocket
readers (half filtered on the server). Every reader gets exactly its task's records, once, in order, none
of another task; the store has every record; the server's peak memory is reported."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
import reliability
import tornado.httpclient
import tornado.websocket

from servers import JupyterServer

pytestmark = pytest.mark.slow

TASKS, RECORDS, READERS = 50, 10_000, 10
WAIT = 240.0  # the whole run takes ~20 s on the 2-core machine; this only bounds a hang


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


async def follow(server: JupyterServer, task_id: str, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every record a log socket sends until its end message."""
    query = "&".join(f"{k}={v}" for k, v in params.items())
    url = f"ws://127.0.0.1:{server.port}/nbtasklog/api/tasks/{task_id}/logs/stream?{query}"
    request = tornado.httpclient.HTTPRequest(url, headers={"Authorization": f"token {server.token}"})
    ws = await tornado.websocket.websocket_connect(request, max_message_size=1 << 30)
    records: list[dict[str, Any]] = []
    try:
        while True:
            raw = await asyncio.wait_for(ws.read_message(), WAIT)
            assert raw is not None, f"socket of {task_id} closed: {ws.close_code} {ws.close_reason}"
            message = json.loads(raw)
            if message["type"] == "records":
                records.extend(message["records"])
            elif message["type"] == "end":
                assert message["status"] == "SUCCESS"
                return records
    finally:
        ws.close()


async def test_fifty_tasks_with_ten_readers_keep_every_record_apart(make_server, tmp_path):
    server = make_server(tmp_path / "store" / "logs.duckdb", args=[f"--NbTaskLogApp.max_workers={TASKS}"])
    loop = asyncio.get_running_loop()
    started = time.monotonic()

    def post(_: int) -> str:
        return server.post("nbtasklog/api/tasks", {"plugin": "high_volume", "params": {"records": RECORDS},
                                                  "log_level": "DEBUG"})["id"]

    ids = [await loop.run_in_executor(None, post, i) for i in range(TASKS)]
    filters = [{} if i % 2 == 0 else {"source": "reader"} for i in range(READERS)]
    streams = await asyncio.gather(*(follow(server, ids[i], filters[i]) for i in range(READERS)))
    rows = [await loop.run_in_executor(None, server.wait_finished, task_id, WAIT) for task_id in ids]
    elapsed = time.monotonic() - started
    total = RECORDS + 2  # "Task started" and "Task succeeded" around the plugin's own records
    for task_id, spec, records in zip(ids, filters, streams):
        assert {r["task_id"] for r in records} == {task_id}, "a reader got another task's records"
        seqs = [r["seq"] for r in records]
        if spec:
            # high_volume's record i (from 0) has seq i + 2 and source number i % 4; "reader" is number 1.
            assert seqs == [i + 2 for i in range(RECORDS) if i % 4 == 1]
            assert {r["source"] for r in records} == {"reader"}
        else:
            assert seqs == list(range(1, total + 1))
    assert all(row["status"] == "SUCCESS" and row["record_count"] == total for row in rows)
    for task_id in ids:
        stats = await loop.run_in_executor(None, server.get, f"nbtasklog/api/tasks/{task_id}/logs/stats")
        assert stats["total"] == total
    health = await loop.run_in_executor(None, server.get, "nbtasklog/api/health")
    assert health["database_available"] and health["last_error"] is None
    figures = {"tasks": TASKS, "records_per_task": RECORDS, "readers": READERS,
               "records_stored": TASKS * total, "records_streamed": sum(len(s) for s in streams),
               "lost": 0, "foreign": 0, "seconds": round(elapsed, 1),
               "server_peak_rss_mb": round(peak_rss_mb(server.proc.pid), 1)}
    print("load:", figures)
    reliability.record("load", **figures)
