"""Attacks on the shared store: "a task's final row is written with its last records, never before (a reader elsewhere
ended with part of the log)". For a kernel's task, which a server ingests, the final row can reach the
server before the last records: RemoteStore._ingest_halves sends "the task rows with the first" half of a
batch past INGEST_BODY_CAP (or refused with 413), and _take_apart sends the rows alone first after a 400.
Engine.ingest puts that final row at once (put_task even wakes the flusher for it on a shared store), so
it is written with the first half: a reader on another server sees the task ended and stops with part
of its log; the rest comes a moment later, to nobody."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

from procs import read_db

import nbtasklog
from nbtasklog.record import LogRecord


def _row(task_id: str, status: str, count: int, created: dt.datetime) -> dict[str, Any]:
    return {"id": task_id, "plugin": "kernel_plugin", "params": "{}", "status": status, "created_at": created,
            "started_at": created, "finished_at": None if status == "RUNNING" else created, "record_count": count}


def _records(task_id: str, seqs: range) -> list[LogRecord]:
    return [LogRecord(task_id, s, 1_700_000_000_000_000 + s, "INFO", "plugin", f"line {s}", None) for s in seqs]


def test_a_kernels_final_row_sent_with_the_first_half_is_not_written_before_the_second(postgres, tmp_path):
    url = postgres.new_database()
    server = nbtasklog.Engine(url, spill_dir=tmp_path / "a", flush_interval=0.05, handle_signals=False)
    other = nbtasklog.Engine(url, spill_dir=tmp_path / "b", flush_interval=0.05, handle_signals=False)
    task_id = "kernel-task-1"
    created = dt.datetime.now(dt.timezone.utc)
    try:
        server.ingest([_row(task_id, "RUNNING", 0, created)], _records(task_id, range(1, 3)))
        assert server.flush()
        # The kernel's last flush: final row (4 records) and records 3..4, too large for one request:
        # the first half goes with the rows ...
        server.ingest([_row(task_id, "SUCCESS", 4, created)], _records(task_id, range(3, 4)))
        time.sleep(0.3)  # the server's flusher writes what it has (put_task woke it for the final row)
        status = read_db(url, "select status, (select count(*) from task_logs where task_id = ?) from tasks "
                              "where id = ?", [task_id, task_id])
        # ... meanwhile a reader on another server follows the task from the store
        seen: list[int] = []
        reader = threading.Thread(target=lambda: seen.extend(r.seq for r in other.follow(task_id, poll=0.2)),
                                  daemon=True)
        reader.start()
        time.sleep(0.5)
        server.ingest([], _records(task_id, range(4, 5)))  # ... the second half
        assert server.flush()
        reader.join(10)
        assert [r.seq for r in server.logs(task_id)] == [1, 2, 3, 4]
        assert seen == [1, 2, 3, 4], f"the reader elsewhere got {seen}; the store said {status} meanwhile"
    finally:
        other.close()
        server.close()
