"""Several processes on one PostgreSQL store and one spill root, each a real process (tests/procs.py):
a second process starting while the first runs a task leaves the task and the first's spill files alone;
the tasks of a process killed by SIGKILL are marked INTERRUPTED by a live one within about a lease; a
task taken from its owner (marked INTERRUPTED by another process) is stopped by the owner and never put
back. Every record is stored once."""

from __future__ import annotations

import signal
import time

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
    the task gone from it, A stops the task, and its later rows (the end) are refused: the store keeps
    INTERRUPTED, and the records A wrote, each once."""
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
    assert result["status"] == "CANCELLED"
    assert _status(url, task_id) == "INTERRUPTED"
    _stored_once(url, task_id)
