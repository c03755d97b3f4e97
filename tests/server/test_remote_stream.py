"""A kernel-side Engine (RemoteStore) reads server-run tasks over the WebSockets, not by polling REST:
Task.follow(), the kernel LogViewer and TaskList widgets; filters, lagging, a server restart, a clean exit."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nbtasklog.remote import RemoteStore, ServerConnection

from .conftest import off_loop, until
from servers import JupyterServer


def log_reads(requests: list[tuple[str, str]], task_id: str) -> list[str]:
    """Paths of REST reads of the task's records (…/tasks/ID/logs…), the socket's upgrade excluded."""
    return [path for method, path in requests
            if method == "GET" and f"/tasks/{task_id}/logs" in path and not path.endswith("/stream")]


async def started_with(api: Any, task_id: str, count: int) -> None:
    async def enough() -> bool:
        return (await api("tasks", task_id)).json()["record_count"] >= count

    await until(enough, what=f"{count} records of {task_id}")


class Follower:
    """Runs task.follow(**filter) in a thread, collecting what it yields."""

    def __init__(self, engine: Any, task_id: str, **filter: Any) -> None:
        self.records: list[Any] = []
        self.error: BaseException | None = None
        self.done = asyncio.get_running_loop().run_in_executor(None, self._run, engine, task_id, filter)

    def _run(self, engine: Any, task_id: str, filter: dict[str, Any]) -> None:
        for record in engine.task(task_id).follow(**filter):
            self.records.append(record)

    @property
    def seqs(self) -> list[int]:
        return [r.seq for r in self.records]


# ---- Task.follow ------------------------------------------------------------------------------------
async def test_follow_gets_history_and_live_records_over_the_socket(api, start, gate, kernel_engine, requests_seen):
    """follow() of a server task: seq 1..N once each, in order, all through the log WebSocket; REST never reads a record."""
    n, hold = 300, 120
    name, event = gate()
    task_id = (await start("t_sources", {"n": n, "gate": name, "hold": hold}))["id"]
    await started_with(api, task_id, hold + 1)
    client = await kernel_engine()
    follower = Follower(client, task_id)
    await until(lambda: len(follower.records) >= hold + 1, what="the history")
    assert follower.seqs == list(range(1, hold + 2))  # history up to the seam; the task still waits
    event.set()
    await follower.done
    assert follower.seqs == list(range(1, n + 3))  # started, n records, succeeded
    assert follower.records[-1].message.startswith("Task ") and follower.records[1].message == "record 1 of 300"
    assert client.store.socket_counts["records"] == n + 2 and client.store.socket_counts["connects"] == 1
    assert log_reads(requests_seen, task_id) == []  # polling would have read .../logs every 0.25 s
    await off_loop(client.close)


async def test_follow_filter_is_applied_by_the_server(api, start, gate, kernel_engine, requests_seen):
    """follow(source=…, level=…): only matching records cross the socket, and they equal REST's answer to the same filter."""
    n = 140
    name, event = gate()
    task_id = (await start("t_sources", {"n": n, "gate": name, "hold": 30}))["id"]
    await started_with(api, task_id, 31)
    client = await kernel_engine()
    follower = Follower(client, task_id, source="superset_api", level="WARNING")
    event.set()
    await follower.done
    expected = (await api("tasks", task_id, "logs", params={"source": "superset_api", "level": "WARNING"})).json()["records"]
    assert follower.seqs == [r["seq"] for r in expected] == [i + 1 for i in range(14, n + 1, 14)]  # even multiples of 7
    assert all(r.source == "superset_api" and r.level == "WARNING" for r in follower.records)
    assert client.store.socket_counts["records"] == len(expected)  # the others never crossed the socket
    reads = log_reads(requests_seen, task_id)
    assert len(reads) == 1 and reads[0].endswith(f"/nbtasklog/api/tasks/{task_id}/logs")  # the test's own read
    await off_loop(client.close)


@pytest.mark.parametrize("nbtasklog_config", [{"stream_queue": 50}])
async def test_follow_when_the_server_stream_lags(api, start, gate, kernel_engine):
    """The server's socket falls behind (tiny queue), says so and catches up: follow() still yields every seq once."""
    n = 20_000
    name, event = gate()
    task_id = (await start("t_sources", {"n": n, "gate": name, "hold": 0}))["id"]
    await started_with(api, task_id, 1)
    client = await kernel_engine()
    follower = Follower(client, task_id)
    await until(lambda: client.store.socket_counts["connects"] >= 1, what="the socket")
    event.set()
    await follower.done
    assert follower.seqs == list(range(1, n + 3))
    assert client.store.socket_counts["lagging"] >= 1
    await off_loop(client.close)


async def test_follow_of_an_unknown_task_falls_back_to_rest_and_says_so(kernel_engine):
    """The socket closes with 4404; follow() then reads over REST, which raises UnknownTaskError."""
    from nbtasklog.errors import UnknownTaskError

    client = await kernel_engine()
    with pytest.raises(UnknownTaskError):
        await off_loop(lambda: list(client.follow("no-such-task")))
    await off_loop(client.close)


# ---- the kernel's widgets ---------------------------------------------------------------------------
async def test_log_viewer_of_a_server_task_streams_over_the_socket(api, start, gate, kernel_engine, requests_seen):
    """The kernel LogViewer: filtered history, history_end, live records and end, each seq once, with no REST record reads."""
    pytest.importorskip("anywidget")
    from nbtasklog import widget as w

    from test_widget import Recorder  # tests/ is on sys.path (pytest prepends a conftest folder without __init__)

    n, hold = 200, 80
    name, event = gate()
    task_id = (await start("t_sources", {"n": n, "gate": name, "hold": hold}))["id"]
    await started_with(api, task_id, hold + 1)
    client = await kernel_engine()
    view = await off_loop(lambda: w.LogViewer(task_id, engine=client))
    rec = Recorder(view)
    await off_loop(view._on_msg, view, {"type": "open", "stream": 1, "task": task_id, "filter": {"source": ["superset_api"]}}, [])
    history_end = await off_loop(rec.wait, lambda m: m.get("event") == "history_end")
    assert history_end["cursor"] == hold + 1  # record `hold` (even: superset_api) has seq hold + 1
    event.set()
    end = await off_loop(rec.wait, lambda m: m.get("event") == "end")
    records = rec.records(1)
    assert [r["seq"] for r in records] == [i + 1 for i in range(2, n + 1, 2)]
    assert end["status"] == "SUCCESS" and end["cursor"] == n + 1
    statuses = [m for m, _ in rec.messages if m.get("event") == "status"]
    assert statuses[-1]["task"]["status"] == "SUCCESS"
    assert log_reads(requests_seen, task_id) == []
    await off_loop(view.close)
    await off_loop(client.close)


async def test_task_list_hears_the_server_over_the_socket(api, start, gate, kernel_engine, requests_seen):
    """The kernel TaskList: one read of the list when its socket opens, then created, status and deleted from the socket."""
    pytest.importorskip("anywidget")
    from nbtasklog import widget as w

    from test_widget import Recorder  # tests/ is on sys.path (pytest prepends a conftest folder without __init__)

    client = await kernel_engine()
    tasks = await off_loop(lambda: w.TaskList(engine=client))
    rec = Recorder(tasks)
    await until(lambda: client.store.socket_counts["connects"] >= 1, what="the task-list socket")
    await until(lambda: any(p.endswith("/nbtasklog/api/tasks") for _, p in requests_seen), what="the first read")
    name, event = gate()
    task_id = (await start("t_wait", {"gate": name}))["id"]
    await off_loop(rec.wait, lambda m: m.get("type") == "task" and m["task"]["id"] == task_id)
    event.set()
    await off_loop(rec.wait, lambda m: m.get("type") == "task" and m["task"]["id"] == task_id and m["task"]["status"] == "SUCCESS")
    assert (await api("tasks", task_id, method="DELETE")).code == 204
    await off_loop(rec.wait, lambda m: m.get("type") == "deleted" and m["id"] == task_id)
    list_reads = [p for m, p in requests_seen if m == "GET" and p.endswith("/nbtasklog/api/tasks")]
    assert len(list_reads) == 1  # the read at connect; polling would read again every 2 s
    await off_loop(tasks.close)
    await off_loop(client.close)


# ---- Task.wait ----------------------------------------------------------------------------------------
async def test_wait_hears_the_end_over_the_socket(api, start, gate, kernel_engine, requests_seen):
    """wait() of a server task returns when the task-list socket reports its end; the task's row is read, not polled."""
    client = await kernel_engine()
    name, event = gate()
    task_id = (await start("t_wait", {"gate": name}))["id"]
    with pytest.raises(TimeoutError, match=f"task {task_id} did not finish within 0.3 s"):
        await off_loop(lambda: client.task(task_id).wait(0.3))
    waiting = asyncio.get_running_loop().run_in_executor(None, lambda: client.task(task_id).wait(30))
    await until(lambda: client.store.socket_counts["connects"] >= 2, what="the second wait's socket")
    await asyncio.sleep(1.0)  # polling would have read the task's row about six times by now
    assert not waiting.done()
    event.set()
    assert await waiting == "SUCCESS"
    row_reads = [p for m, p in requests_seen if m == "GET" and p.endswith(f"/nbtasklog/api/tasks/{task_id}")]
    # each of the two: client.task(), once before its socket, once as the socket opens; then the status
    assert len(row_reads) == 7, row_reads
    await off_loop(client.close)


# ---- a real server restarted mid-follow, and a kernel that exits with sockets open ----------------------
def restart_on_same_port(server: JupyterServer, home: Path) -> JupyterServer:
    """The same port and token, so that the client's URL and token still work."""
    again = JupyterServer(home, server.db, server.args)
    again.port, again.url, again.token = server.port, server.url, server.token
    return again.start()


@pytest.mark.slow
def test_follow_resumes_after_a_server_restart(make_server, tmp_path):  # noqa: F811 (the fixture)
    """The server stops while a task is followed and starts again: follow() reconnects and yields every seq once;
    the TaskList's socket reconnects too, re-reads the list and shows the task's final status."""
    from test_widget import Recorder  # tests/ is on sys.path (pytest prepends a conftest folder without __init__)

    from nbtasklog import Engine
    from nbtasklog.widget import TaskList

    db = tmp_path / "store" / "logs.duckdb"
    server = make_server(db)
    task = server.post("nbtasklog/api/tasks", {"plugin": "dashboard_backup", "params": {"dashboards": 400, "delay": 0.02}})
    store = RemoteStore(ServerConnection(server.url, server.token))
    client = Engine(store=store, flush_interval=0.05, handle_signals=False)
    tasks = TaskList(engine=client)
    listed = Recorder(tasks)
    try:
        follow = client.task(task["id"]).follow(level="DEBUG")
        first = [next(follow) for _ in range(20)]  # the task is running, the socket open
        listed.wait(lambda m: m.get("type") == "task" and m["task"]["id"] == task["id"])
        assert store.socket_counts["connects"] == 2  # the log and the task list
        assert server.stop(signal.SIGTERM) == 0, server.output()  # the task is cancelled, its records written
        again = restart_on_same_port(server, tmp_path / "jupyter-2")
        try:
            rest = list(follow)
            everything = [r.seq for r in first + rest]
            stored = again.all_logs(task["id"])
            assert everything == [r["seq"] for r in stored] == list(range(1, len(stored) + 1))
            assert store.socket_counts["connects"] >= 4  # both reconnected; the rest came over the socket
            final = again.get(f"nbtasklog/api/tasks/{task['id']}")["status"]
            assert final in ("CANCELLED", "INTERRUPTED")
            listed.wait(lambda m: m.get("type") == "task" and m["task"]["id"] == task["id"] and m["task"]["status"] == final)
        finally:
            again.stop()
    finally:
        tasks.close()
        client.close(timeout=2)


EXIT_CODE = r'''
import atexit, sys, threading, time
# Registered before nbtasklog's exit hooks, so it runs after them (atexit is last in, first out).
atexit.register(lambda: print("socket threads at exit:", [t.name for t in threading.enumerate() if t.name == "nbtasklog-sockets"]))
import nbtasklog
engine = nbtasklog.connect(sys.argv[1], token=sys.argv[2], handle_signals=False)
from nbtasklog import widget
tasks = widget.TaskList(engine=engine)
follow = engine.task(sys.argv[3]).follow()
seqs = [next(follow).seq for _ in range(3)]
deadline = time.monotonic() + 30
while engine.store.socket_counts["connects"] < 2 and time.monotonic() < deadline:
    time.sleep(0.01)
print(seqs, engine.store.socket_counts["connects"], flush=True)
# exits here with both sockets open and the follow unfinished
'''


@pytest.mark.slow
def test_a_kernel_exits_cleanly_with_sockets_open(make_server, tmp_path):  # noqa: F811 (the fixture)
    """A process that exits mid-follow with a TaskList open: its socket thread has ended, exit code 0, no warning or traceback."""
    server = make_server(tmp_path / "store" / "logs.duckdb")
    task = server.post("nbtasklog/api/tasks", {"plugin": "dashboard_backup", "params": {"dashboards": 400, "delay": 0.02}})
    env = {k: v for k, v in server.env.items() if k not in ("NBTASKLOG_DB",)}
    result = subprocess.run([sys.executable, "-X", "dev", "-c", EXIT_CODE, server.url, server.token, task["id"]],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[1, 2, 3] 2", "socket threads at exit: []"], result.stdout  # 2: log and task list
    for bad in ("Task was destroyed", "Traceback", "never awaited", "Unclosed", "Exception ignored"):
        assert bad not in result.stderr, result.stderr
    server.post(f"nbtasklog/api/tasks/{task['id']}/cancel", {})
