"""Real processes: a `jupyter server` subprocess restarted on the same store (SC-003), a kernel started
through it running tasks with nbtasklog.run_task, and the CLI finding the running server."""

from __future__ import annotations

import asyncio
import datetime
import json
import shutil
import signal
import subprocess
import time
import uuid
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket
from servers import VENV_BIN, JupyterServer

pytestmark = pytest.mark.slow


# ---- (1) restart: every record is still there (SC-003) ----------------------------------------------
def test_restart_keeps_every_record(make_server, tmp_path):
    """Run tasks in a real server, stop it with SIGTERM right after, start it again: every record is there, same seqs."""
    db = tmp_path / "store" / "logs.duckdb"
    # No flush before the stop: every record is in the server's memory when SIGTERM arrives.
    server = make_server(db, args=["--NbTaskLogApp.flush_interval=3600", "--NbTaskLogApp.flush_size=10000000"])
    backup = server.post("nbtasklog/api/tasks", {"plugin": "dashboard_backup", "params": {"dashboards": 8, "delay": 0}})
    volume = server.post("nbtasklog/api/tasks", {"plugin": "high_volume", "params": {"records": 30_000}})
    rows = {t["id"]: server.wait_finished(t["id"]) for t in (backup, volume)}
    assert {r["status"] for r in rows.values()} == {"SUCCESS"}
    before = {task_id: server.all_logs(task_id) for task_id in rows}
    # high_volume logs one call in ten at DEBUG, below the default task level: 27,000 + 2 system records
    assert [r["seq"] for r in before[volume["id"]]] == list(range(1, 27_003)) == list(range(1, rows[volume["id"]]["record_count"] + 1))
    assert {r["source"] for r in before[backup["id"]]} >= {"plugin", "superset_api", "system"}
    assert server.get("nbtasklog/api/health")["pending"] == sum(len(r) for r in before.values())
    assert server.stop(signal.SIGTERM) == 0, server.output()

    again = make_server(db, home=tmp_path / "jupyter-2")
    for task_id, records in before.items():
        after = again.all_logs(task_id)
        assert [r["seq"] for r in after] == [r["seq"] for r in records]
        assert after == records, f"records of {task_id} changed across the restart"
        row = again.get(f"nbtasklog/api/tasks/{task_id}")
        assert row["status"] == "SUCCESS" and row["record_count"] == len(records)
        assert row == {**rows[task_id], "params": row["params"]}
    assert again.get("nbtasklog/api/tasks/" + backup["id"] + "/logs/stats")["total"] == len(before[backup["id"]])
    assert again.stop() == 0


def test_stop_during_a_task_keeps_its_records(make_server, tmp_path):
    """A server stopped while a task runs cancels it, writes every record emitted; after restart the log is contiguous."""
    db = tmp_path / "store" / "logs.duckdb"
    server = make_server(db)
    task = server.post("nbtasklog/api/tasks", {"plugin": "high_volume", "params": {"records": 2_000_000}})
    deadline = time.monotonic() + 30
    while server.get(f"nbtasklog/api/tasks/{task['id']}")["record_count"] < 20_000:
        assert time.monotonic() < deadline, "the task did not get going"
        time.sleep(0.05)
    assert server.stop(signal.SIGTERM) == 0, server.output()
    again = make_server(db, home=tmp_path / "jupyter-2")
    row = again.get(f"nbtasklog/api/tasks/{task['id']}")
    assert row["status"] in ("CANCELLED", "INTERRUPTED")
    seqs = [r["seq"] for r in again.all_logs(task["id"])]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) >= 20_000
    assert seqs[-1] == row["record_count"]


# ---- (2) a kernel started through the server -------------------------------------------------------
KERNEL_CODE = r'''
import json, nbtasklog
from nbtasklog.remote import RemoteStore
engine = nbtasklog.get_engine()
assert isinstance(engine.store, RemoteStore), f"the kernel did not find its server: {engine!r}"

@nbtasklog.register
def notebook_fn(params, context):
    """Defined in the notebook: runs in the kernel, its records are shipped to the server."""
    api = context.logger.with_source("superset_api")
    for i in range(params["n"]):
        (api if i % 2 else context.logger).info("nb record %d", i, dashboard_id=i)
    return params["n"]

mine = nbtasklog.run_task("notebook_fn", {"n": 50})
assert mine.wait(60) == "SUCCESS", mine.error
theirs = nbtasklog.run_task("dashboard_backup", {"dashboards": 3, "delay": 0})
assert theirs.wait(60) == "SUCCESS", theirs.error
assert engine.flush(), engine.health()
print(json.dumps({"kernel_task": mine.id, "server_task": theirs.id, "store": str(engine.store.url),
                  "mine_logs": len(mine.logs()), "theirs_logs": len(theirs.logs()),
                  "theirs_api": len(theirs.logs(source="superset_api"))}))
'''


def kernel_message(session: str, code: str) -> dict[str, Any]:
    """An execute_request in the Jupyter messaging protocol (v5.3), for the kernel's WebSocket."""
    return {
        "header": {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request", "username": "test", "session": session,
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat(), "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }


async def execute(server: JupyterServer, kernel_id: str, code: str, timeout: float = 90.0) -> dict[str, Any]:
    """Run `code` in the kernel over /api/kernels/{id}/channels: stdout, results, errors and the reply."""
    url = f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels"
    request = tornado.httpclient.HTTPRequest(url, headers={"Authorization": f"token {server.token}"})
    ws = await tornado.websocket.websocket_connect(request)
    try:
        message = kernel_message(uuid.uuid4().hex, code)
        await ws.write_message(json.dumps(message))
        out: dict[str, Any] = {"stdout": "", "stderr": "", "results": [], "errors": [], "reply": None, "idle": False}
        deadline = time.monotonic() + timeout
        while out["reply"] is None or not out["idle"]:
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"kernel gave no reply within {timeout} s: {out}"
            raw = await asyncio.wait_for(ws.read_message(), remaining)
            assert raw is not None, f"kernel socket closed: {out}"
            if not isinstance(raw, str):
                continue
            reply = json.loads(raw)
            if reply.get("parent_header", {}).get("msg_id") != message["header"]["msg_id"]:
                continue
            kind, content = reply["msg_type"], reply["content"]
            if kind == "stream":
                out[content["name"]] += content["text"]
            elif kind == "execute_result":
                out["results"].append(content["data"])
            elif kind == "error":
                out["errors"].append("\n".join(content["traceback"]))
            elif kind == "execute_reply":
                out["reply"] = content
            elif kind == "status" and content["execution_state"] == "idle":
                out["idle"] = True
        return out
    finally:
        ws.close()


@pytest.fixture
def live_server(make_server, tmp_path) -> JupyterServer:
    return make_server(tmp_path / "store" / "logs.duckdb")


async def test_kernel_run_task_against_live_server(live_server):
    """A kernel started by the server runs a notebook plugin (shipped by ingest) and a server plugin; both land in the server's store."""
    server = live_server
    loop = asyncio.get_running_loop()
    status, body = await loop.run_in_executor(None, server.request, "POST", "api/kernels", {"name": "python3"})
    assert status == 201, body
    kernel_id = json.loads(body)["id"]
    try:
        out = await execute(server, kernel_id, KERNEL_CODE)
        assert out["reply"]["status"] == "ok" and not out["errors"], out
        report = json.loads(out["stdout"].strip().splitlines()[-1])
    finally:
        await loop.run_in_executor(None, server.request, "DELETE", f"api/kernels/{kernel_id}")
    assert report["store"].startswith("nbtasklog+http://127.0.0.1:")  # the kernel talked to the server
    assert report["mine_logs"] == 52 and report["theirs_logs"] > 0

    def check() -> None:
        mine = server.get(f"nbtasklog/api/tasks/{report['kernel_task']}")
        assert mine["plugin"] == "notebook_fn" and mine["status"] == "SUCCESS" and mine["record_count"] == 52
        records = server.all_logs(report["kernel_task"])
        assert [r["seq"] for r in records] == list(range(1, 53))
        assert [r["message"] for r in records[1:-1]] == [f"nb record {i}" for i in range(50)]
        api = server.get(f"nbtasklog/api/tasks/{report['kernel_task']}/logs?source=superset_api&meta.dashboard_id=7")
        assert [r["message"] for r in api["records"]] == ["nb record 7"]
        theirs = server.get(f"nbtasklog/api/tasks/{report['server_task']}")
        assert theirs["plugin"] == "dashboard_backup" and theirs["status"] == "SUCCESS"
        assert len(server.all_logs(report["server_task"])) == report["theirs_logs"]
        listed = {t["id"] for t in server.get("nbtasklog/api/tasks")["tasks"]}
        assert {report["kernel_task"], report["server_task"]} <= listed

    await loop.run_in_executor(None, check)


# ---- (3) the CLI finds the running server ------------------------------------------------------------
def test_cli_discovers_the_running_server(live_server, monkeypatch):
    """With a server running on the database, discovery by database path finds it (what the CLI uses)."""
    from nbtasklog.remote import discover_server

    server = live_server
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", server.env["JUPYTER_RUNTIME_DIR"])
    monkeypatch.delenv("NBTASKLOG_SERVER_URL", raising=False)
    connection = discover_server(database=str(server.db))
    assert connection is not None, "discover_server did not find the server holding the database"
    assert connection.url.rstrip("/") == server.url.rstrip("/") and connection.token == server.token
    assert discover_server(database=str(server.db.parent / "other.duckdb")) is None


def test_cli_lists_tasks_through_the_running_server(live_server):
    """`nbtasklog --db PATH tasks` while the server holds PATH: answered through the server, no lock error."""
    server = live_server
    task = server.post("nbtasklog/api/tasks", {"plugin": "dashboard_backup", "params": {"dashboards": 2, "delay": 0}})
    server.wait_finished(task["id"])
    cli = shutil.which("nbtasklog", path=str(VENV_BIN)) or "nbtasklog"
    result = subprocess.run([cli, "--db", str(server.db), "tasks"], env=server.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert task["id"] in result.stdout, result.stdout
