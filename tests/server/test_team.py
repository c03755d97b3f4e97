"""Two real `jupyter server` processes (A and B, each its own Jupyter directories) on one PostgreSQL store,
as a team's servers are: B shows A's running task live over its log WebSocket and hears A's task list
over its task-list WebSocket; a setting changed on A applies on B and to B's running task; B cancels
and deletes A's task, and A then neither runs nor lists it. Every record reaches B once, in order."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket
from sqlalchemy import make_url

pytestmark = pytest.mark.slow

WAIT = 30.0  # bound of every wait; each happens within a second or two when it works
LONG = {"plugin": "dashboard_backup", "params": {"dashboards": 100_000, "delay": 0.002}}  # runs until cancelled


def _until(predicate: Any, what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)


class Socket:
    """A WebSocket of a server, read into `messages` by a task of the test's loop."""

    def __init__(self, server: Any, path: str) -> None:
        self.server, self.path = server, path
        self.messages: list[dict[str, Any]] = []

    async def __aenter__(self) -> Socket:
        request = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{self.server.port}/{self.path}",
                                                 headers={"Authorization": f"token {self.server.token}"})
        self.ws = await tornado.websocket.websocket_connect(request)
        self.reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        while (raw := await self.ws.read_message()) is not None:
            self.messages.append(json.loads(raw))

    async def __aexit__(self, *exc: object) -> None:
        self.ws.close()
        self.reader.cancel()

    def records(self) -> list[dict[str, Any]]:
        return [r for m in self.messages if m["type"] == "records" for r in m["records"]]

    async def until(self, predicate: Any, what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not predicate():
            assert time.monotonic() < deadline, f"waited {WAIT} s for {what}; got {self.messages[-3:]}"
            await asyncio.sleep(0.05)


async def test_two_servers_on_one_store_show_and_manage_each_others_tasks(make_server, postgres, tmp_path):
    url = make_url(postgres.new_database()).render_as_string(hide_password=False)  # as the servers' health says it
    a = make_server(url, home=tmp_path / "a")
    b = make_server(url, home=tmp_path / "b")
    async with Socket(b, "nbtasklog/api/tasks/stream") as b_tasks:
        task = a.post("nbtasklog/api/tasks", LONG)
        await b_tasks.until(lambda: any(m.get("task", {}).get("id") == task["id"] for m in b_tasks.messages),
                            "A's task on B's task-list socket")
        _until(lambda: a.get(f"nbtasklog/api/tasks/{task['id']}")["status"] == "RUNNING", "A's task RUNNING")
        async with Socket(b, f"nbtasklog/api/tasks/{task['id']}/logs/stream") as b_log:
            await b_log.until(lambda: len(b_log.records()) > 200, "A's records live on B")
            assert a.get(f"nbtasklog/api/tasks/{task['id']}")["status"] == "RUNNING"

            # A setting changed on A applies on B, and to the task B runs.
            own = b.post("nbtasklog/api/tasks", LONG)
            status, body = a.request("PUT", "nbtasklog/api/settings", {"task_log_level": "DEBUG"})
            assert status == 200, body
            _until(lambda: b.get("nbtasklog/api/settings")["task_log_level"] == "DEBUG", "DEBUG on B")
            _until(lambda: any(r["level"] == "DEBUG" for r in
                               b.get(f"nbtasklog/api/tasks/{own['id']}/logs?order=desc&limit=50")["records"]),
                   "DEBUG records of B's running task")

            # B cancels A's task: A stops it.
            status, body = b.request("POST", f"nbtasklog/api/tasks/{task['id']}/cancel")
            assert status == 200, body
            assert json.loads(body)["cancelled"] is True
            row = a.wait_finished(task["id"])
            assert row["status"] == "CANCELLED"
            await b_log.until(lambda: any(m["type"] == "end" for m in b_log.messages), "the end on B's log socket")
        stored = [r["seq"] for r in a.all_logs(task["id"])]
        assert [r["seq"] for r in b_log.records()] == stored == list(range(1, len(stored) + 1))
        await b_tasks.until(lambda: any(m.get("task", {}).get("id") == task["id"] and m["task"]["status"] == "CANCELLED"
                                        for m in b_tasks.messages), "CANCELLED on B's task-list socket")
        b.post(f"nbtasklog/api/tasks/{own['id']}/cancel", {})
        b.wait_finished(own["id"])

    # B deletes A's task: A forgets it (no ghost in its list, 404 for the task).
    async with Socket(a, "nbtasklog/api/tasks/stream") as a_tasks:
        status, body = b.request("DELETE", f"nbtasklog/api/tasks/{task['id']}")
        assert status in (200, 204), body
        await a_tasks.until(lambda: {"type": "deleted", "id": task["id"]} in a_tasks.messages, "the delete on A's socket")
    assert task["id"] not in [t["id"] for t in a.get("nbtasklog/api/tasks")["tasks"]]
    assert a.request("GET", f"nbtasklog/api/tasks/{task['id']}")[0] == 404
