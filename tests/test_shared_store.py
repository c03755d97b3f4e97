"""Several processes on one PostgreSQL store and one spill root, each a real process (tests/procs.py):
a second process starting while the first runs a task leaves the task and the first's spill files alone;
the tasks of a process killed by SIGKILL are marked INTERRUPTED by a live one within about a lease; a
task taken from its owner (marked INTERRUPTED by another process) is stopped by the owner and never put
back. Every record is stored once."""

from __future__ import annotations

import json
import signal
import threading
import time
from typing import Any

import pytest
from procs import poll, read_db, spawn

import nbtasklog

LEASE = 2.0  # seconds: short, so that a lease runs out within the test


@pytest.fixture
def shared(postgres, tmp_path):
    """A new database on the session's PostgreSQL server and one spill root for every process."""
    return postgres.new_database(), tmp_path / "spill"


def _status(url: str, task_id: str) -> str:
    return read_db(url, "select status from tasks where id = ?", [task_id])[0][0]


def _stored_once(url: str, task_id: str) -> list[int]:
    seqs = [row[0] for row in read_db(url, "select seq from task_logs where task_id = ? order by seq", [task_id])]
    assert seqs == list(range(1, len(seqs) + 1)), "a seq missing or stored twice"
    return seqs


def test_a_second_process_leaves_a_running_task_and_its_spill_alone(shared):
    """B starts (same store, same spill root) while A's task runs and every batch of A goes through a spill
    file: B marks nothing INTERRUPTED, replays none of A's files, and A's task ends SUCCESS with every record once."""
    url, spill = shared
    a = spawn("owner", url, spill, LEASE, 1, stdin=True)  # buffer_cap 1: every batch is spilled first
    b = None
    try:
        started = a.expect("started")
        poll(lambda: read_db(url, "select count(*) from task_logs where task_id = ?", [started["task_id"]])[0][0] > 1000,
             30, "A's first records in the database")
        b = nbtasklog.Engine(url, spill_dir=spill, lease=LEASE, flush_interval=0.05, handle_signals=False)
        assert b.health().pending == 0  # none of A's live spill files
        time.sleep(3 * LEASE)  # B's maintenance reaps every second; A's heartbeat keeps its lease
        assert _status(url, started["task_id"]) == "RUNNING"
        assert b.task(started["task_id"]).info()["status"] == "RUNNING"
        a.proc.stdin.write(b"stop\n")
        a.proc.stdin.flush()
        result = a.expect("result")
    finally:
        a.stop()
        if b is not None:
            b.close()
    assert result["status"] == "SUCCESS"
    assert _status(url, started["task_id"]) == "SUCCESS"
    assert len(_stored_once(url, started["task_id"])) == result["record_count"]


def test_a_killed_owners_task_is_interrupted_by_a_live_process_within_a_lease(shared):
    """SIGKILL of A mid-task: B, already running, marks A's task INTERRUPTED once A's lease runs out,
    without any process starting; the records A wrote stay, each once."""
    url, spill = shared
    b = nbtasklog.Engine(url, spill_dir=spill, lease=LEASE, flush_interval=0.05, handle_signals=False)
    a = spawn("owner", url, spill, LEASE, 500_000, stdin=True)
    try:
        task_id = a.expect("started")["task_id"]
        poll(lambda: read_db(url, "select count(*) from task_logs where task_id = ?", [task_id])[0][0] > 0,
             30, "A's first records in the database")
        a.signal(signal.SIGKILL)
        a.wait()
        poll(lambda: _status(url, task_id) == "INTERRUPTED", 30, "B to mark A's task INTERRUPTED")
        assert b.task(task_id).info()["status"] == "INTERRUPTED"
    finally:
        a.stop()
        b.close()
    _stored_once(url, task_id)


def test_an_owner_whose_task_was_taken_stops_it_and_never_puts_it_back(shared):
    """Another process marks A's running task INTERRUPTED (as when A's lease ran out): A's heartbeat finds
    the task gone from it, A stops the task and sends no later row (its end): the store keeps INTERRUPTED,
    A's own handle then says so too, and the records A wrote stay, each once."""
    url, spill = shared
    a = spawn("owner", url, spill, LEASE, 500_000, stdin=True)
    b = None
    try:
        started = a.expect("started")
        task_id = started["task_id"]
        poll(lambda: read_db(url, "select count(*) from task_logs where task_id = ?", [task_id])[0][0] > 0,
             30, "A's first records in the database")
        b = nbtasklog.Engine(url, spill_dir=spill, lease=LEASE, flush_interval=0.05, handle_signals=False)
        b.store.recover({"id": "someone", "kind": "cli", "host": "h", "pid": 0, "started_at": b.task(task_id).info()["created_at"]},
                        LEASE, dead_owners=[started["instance_id"]])
        result = a.expect("result", timeout=30)  # the task stopped by itself: no "stop" was sent
    finally:
        a.stop()
        if b is not None:
            b.close()
    assert result["status"] == "INTERRUPTED"  # the owner's own handle says what the store and every process say
    assert _status(url, task_id) == "INTERRUPTED"
    _stored_once(url, task_id)


def test_the_cli_on_the_shared_store_leaves_a_running_task_alone_and_its_delete_reaches_the_owner(shared):
    """`nbtasklog --db postgresql://… tasks` and `delete` (no server found) while A runs a task: the CLI's
    engine marks nothing INTERRUPTED, refuses to delete the running task, and once it ended deletes it
    with every record; A, still open, forgets it (no ghost in its list)."""
    import subprocess
    import sys

    from nbtasklog.errors import UnknownTaskError

    url, spill = shared
    cli = [sys.executable, "-m", "nbtasklog.cli", "--db", url]
    a = nbtasklog.Engine(url, spill_dir=spill / "a", lease=LEASE, flush_interval=0.05, handle_signals=False)
    try:
        stop = threading.Event()
        task = a.run_task(_until(stop))
        poll(lambda: read_db(url, "select count(*) from task_logs where task_id = ?", [task.id])[0][0] > 100,
             30, "A's first records in the database")
        listed = subprocess.run([*cli, "tasks", "--format", "jsonl"], capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0, listed.stderr
        assert {"id": task.id, "status": "RUNNING"}.items() <= next(
            json.loads(line) for line in listed.stdout.splitlines() if task.id in line).items()
        refused = subprocess.run([*cli, "delete", task.id], capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "RUNNING" in refused.stderr, refused
        time.sleep(2 * LEASE)  # past a lease: A's heartbeat kept it
        assert _status(url, task.id) == "RUNNING"
        stop.set()
        assert task.wait(30) == "SUCCESS"
        a.flush()
        deleted = subprocess.run([*cli, "delete", task.id], capture_output=True, text=True, timeout=60)
        assert deleted.returncode == 0, deleted.stderr
        poll(lambda: task.id not in [t.id for t in a.tasks()], 30, "A to forget the deleted task")
        with pytest.raises(UnknownTaskError):
            a.task_info(task.id)
        assert read_db(url, "select count(*) from task_logs where task_id = ?", [task.id])[0][0] == 0
    finally:
        a.close()


def _until(stop: threading.Event):
    def plugin(params: dict[str, Any], context: Any) -> None:
        n = 0
        while not stop.wait(0.002):
            n += 1
            context.logger.info("record %d", n)

    return plugin
