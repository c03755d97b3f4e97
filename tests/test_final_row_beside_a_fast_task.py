"""Attacks on the shared store: a task's final row waits for "its last records", but a flush for size (whole_batches)
drops every settled row as soon as any record is left short of a whole batch (`settled = {}`), whoever's
record it is. While another task logs flush_size records per WATCH (50 ms), nearly every flush of the
flusher thread is one for size (its first check is the queue's length, before the wake that put_task set),
so the final row of a task that ended, all of whose records are written, is held: the store, and every
other server, shows it RUNNING for as long as the other task keeps logging that fast. Before the fix it
went with the next flush.

The flusher's loop is driven by hand here (what _run does when it finds flush_size records queued), so
the test is deterministic; with the real thread the same hold shows intermittently (a task that ended
stayed RUNNING in the store for over 3 s in 2 of 6 runs of a 50,000 records/s neighbour, flush_size 1000)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from procs import read_db

from nbtasklog.store.buffer import WriteBuffer
from nbtasklog.store.store import Store


def _row(task_id: str, status: str, count: int = 0) -> dict[str, Any]:
    now = dt.datetime.now(dt.timezone.utc)
    return {"id": task_id, "plugin": "p", "params": "{}", "status": status, "created_at": now, "started_at": now,
            "finished_at": None if status == "RUNNING" else now, "record_count": count, "owner": "me"}


def test_a_flush_for_size_of_one_task_does_not_hold_another_tasks_final_row(postgres, tmp_path):
    url = postgres.new_database()
    store = Store(url)
    buffer = WriteBuffer(store, tmp_path / "spill", "me", flush_size=1000)  # its thread is not started
    seq = {"fast": 0, "short": 0}

    def log(task_id: str, n: int) -> None:
        for _ in range(n):
            seq[task_id] += 1
            buffer.append((task_id, seq[task_id], 1_700_000_000_000_000, "INFO", "plugin", "m", None))

    try:
        buffer.put_task(_row("fast", "RUNNING"), "new")
        buffer.put_task(_row("short", "RUNNING"), "new")
        log("short", 5)
        assert buffer.flush()
        buffer.put_task(_row("short", "SUCCESS", 5))  # the short task ended: every record of it is written
        for _ in range(20):  # the other task keeps 1,234 records coming per look of the flusher
            log("fast", 1234)
            buffer._flush(whole_batches=True)  # what _run does when it finds flush_size records queued
        assert read_db(url, "select count(*) from task_logs where task_id = 'short'") == [(5,)]
        assert read_db(url, "select count(*) from task_logs where task_id = 'fast'") == [(24_000,)]  # whole batches of 1,000
        assert read_db(url, "select status from tasks where id = 'short'") == [("SUCCESS",)]
    finally:
        buffer.stop(5)
        store.close()
