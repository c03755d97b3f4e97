"""Durability of the real engine on a real DuckDB file: restarts, SIGTERM, SIGKILL, database outages, spill and replay.

Processes are real (tests/procs.py scenarios) and outages are real: another process holding DuckDB's
file lock, or RLIMIT_FSIZE making DuckDB's writes fail with "File too large".
"""

from __future__ import annotations

import json
import signal
import sys
import threading

import pytest
from procs import children, make_engine, poll, read_db, seqs_of  # noqa: F401  (fixtures)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and rlimits")


def plugin_ticks(db, task_id: str) -> list[int]:
    rows = read_db(db, "select message from task_logs where task_id = ? and source = 'plugin' order by seq", [task_id])
    return [int(message.split()[1]) for (message,) in rows]


def task_row(db, task_id: str) -> dict:
    rows = read_db(db, "select status, error, finished_at, record_count from tasks where id = ?", [task_id])
    assert rows, f"task {task_id} is not in the database"
    status, error, finished_at, record_count = rows[0]
    return {"status": status, "error": error, "finished_at": finished_at, "record_count": record_count}


# ---- restarts --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_every_record_survives_a_normal_exit(tmp_path, children, make_engine):
    """SC-003: a process that logs 5,000 records and exits without close() leaves all of them, in order, and SUCCESS."""
    db = tmp_path / "logs.duckdb"
    child = children("normal_exit", db, 5000)
    done = child.expect("done")
    assert child.wait() == 0, child.stderr
    assert done["status"] == "SUCCESS"
    assert done["flushed"] == 0  # nothing was written before exit: the atexit hook wrote it all

    engine = make_engine(db)
    task = engine.task(done["task_id"])
    assert task.status == "SUCCESS"
    records = task.logs()
    assert [r.seq for r in records] == list(range(1, 5003))  # "Task started", 5000 records, "Task succeeded"
    plugin = [r for r in records if r.source == "plugin"]
    assert [r.message for r in plugin] == [f"record {i}" for i in range(5000)]
    assert [r.metadata for r in plugin[:3]] == [{"i": 0}, {"i": 1}, {"i": 2}]
    assert records[-1].source == "system" and "succeeded" in records[-1].message
    assert task.info()["record_count"] == 5002
    assert list(task.follow()) == records  # a stored task: follow() replays it and ends


@pytest.mark.slow
def test_sigterm_writes_every_record_and_ends_the_task(tmp_path, children):
    """SIGTERM while a task runs: the process exits through the flush, every record is kept, the task is not RUNNING."""
    db = tmp_path / "logs.duckdb"
    child = children("sigterm", db)
    task_id = child.expect("started")["task_id"]
    emitted = child.expect("ready")["tick"]
    child.signal(signal.SIGTERM)
    assert child.wait() == 128 + signal.SIGTERM, child.stderr

    row = task_row(db, task_id)
    assert row["status"] in ("CANCELLED", "INTERRUPTED")
    assert row["finished_at"] is not None
    seqs = seqs_of(db, task_id)
    assert seqs == list(range(1, len(seqs) + 1))  # contiguous, in write order
    assert len(seqs) == row["record_count"]  # every record the task made is in the database
    ticks = plugin_ticks(db, task_id)
    assert len(ticks) >= emitted and ticks == list(range(1, len(ticks) + 1))
    last = read_db(db, "select source, message from task_logs where task_id = ? order by seq desc limit 1", [task_id])[0]
    assert last[0] == "system" and ("cancelled" in last[1].lower() or "interrupted" in last[1].lower())


@pytest.mark.slow
def test_sigkill_loses_nothing_that_was_reported_flushed(tmp_path, children, make_engine):
    """kill -9 mid-task: after restart the task is INTERRUPTED and records 1..k (k = last reported flushed) are all there."""
    db = tmp_path / "logs.duckdb"
    child = children("sigkill", db)
    task_id = child.expect("started")["task_id"]
    flushed = 0
    while flushed < 2000:  # several flushes of 0.2 s have landed while the task keeps logging
        flushed = child.expect("flushed")["seq"]
    child.signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL

    engine = make_engine(db)
    task = engine.task(task_id)
    assert task.status == "INTERRUPTED"
    assert task.error and "ended" in task.error
    seqs = [r.seq for r in task.logs()]
    assert len(seqs) >= flushed
    assert seqs == list(range(1, len(seqs) + 1))  # no gap, no duplicate
    ticks = [int(r.message.split()[1]) for r in task.logs(source="plugin")]
    assert ticks == list(range(1, len(ticks) + 1))


@pytest.mark.slow
def test_tasks_of_a_killed_process_become_interrupted(tmp_path, children, make_engine):
    """A running and a queued task of a SIGKILLed process show INTERRUPTED after restart, their logs kept."""
    db = tmp_path / "logs.duckdb"
    child = children("running_then_killed", db)
    ready = child.expect("ready")
    assert ready["queued_status"] == "PENDING"
    child.signal(signal.SIGKILL)
    child.wait()

    engine = make_engine(db)
    running, queued = engine.task(ready["running"]), engine.task(ready["queued"])
    assert running.status == "INTERRUPTED" and queued.status == "INTERRUPTED"
    assert running.finished_at is not None and running.error
    assert "working on it" in [r.message for r in running.logs()]
    assert engine.tasks(status="RUNNING") == [] and engine.tasks(status="PENDING") == []
    assert {t.id for t in engine.tasks(status="INTERRUPTED")} == {running.id, queued.id}


# ---- the database unavailable --------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE behaviour checked on Linux")
def test_writes_failing_with_file_too_large_are_kept_and_written_after(tmp_path, children):
    """DuckDB writes fail (RLIMIT_FSIZE) mid-task: records pile up, health says why; after the limit is lifted all are written in order."""
    db = tmp_path / "logs.duckdb"
    child = children("fsize", db)
    result = child.expect("result")
    assert child.wait() == 0, child.stderr

    assert result["failed"], "writes never failed under RLIMIT_FSIZE"
    assert "File too large" in result["error"]
    assert result["available_during"] is False
    assert result["flushed_during"] == result["flushed_at_failure"]  # nothing got through during the outage
    assert result["pending_during"][1] > result["pending_during"][0]  # records kept piling up
    assert result["recovered"]
    assert result["status_in_db_while_running"] == ["RUNNING"]
    task_id = result["task_id"]
    row = task_row(db, task_id)
    assert row["status"] == "SUCCESS"
    seqs = seqs_of(db, task_id)
    assert seqs == list(range(1, result["last_seq"] + 1))
    ticks = plugin_ticks(db, task_id)
    assert ticks == list(range(1, len(ticks) + 1))


def test_engine_runs_tasks_while_another_process_holds_the_file(tmp_path, children, make_engine):
    """Another process holds DuckDB's lock before start: tasks run, records wait (readable), and are written when it lets go."""
    db = tmp_path / "logs.duckdb"
    holder = children("hold", db, stdin=True)
    holder.expect("locked")
    engine = make_engine(db)
    assert engine.health().database_available is False
    assert engine.health().last_error

    def work(params, context):
        for i in range(500):
            context.logger.info("line %d", i, i=i)
        return "ok"

    task = engine.run_task(work)
    assert task.wait(10) == "SUCCESS"
    assert task.result == "ok"
    assert [r.seq for r in task.logs()] == list(range(1, 503))  # served from the buffer
    assert engine.health().pending == 502
    with pytest.raises(RuntimeError, match="unavailable"):
        task.delete()  # deleting needs the database

    assert holder.release() == 0
    poll(engine.flush, 15, "the buffer to drain once the lock is released", interval=0.1)
    health = engine.health()
    assert health.pending == 0 and health.database_available and health.last_error is None
    assert health.flushed_total == 502
    engine.close()
    assert task_row(db, task.id)["status"] == "SUCCESS"
    assert seqs_of(db, task.id) == list(range(1, 503))


@pytest.mark.slow
def test_outage_past_the_memory_cap_spills_and_replays_in_order(tmp_path, children, make_engine):
    """buffer_cap=1000 with 10,000 records during an outage: batches spill to Arrow files, then all are written in order and the files go."""
    db = tmp_path / "logs.duckdb"
    spill_dir = tmp_path / "logs.duckdb.spill"
    holder = children("hold", db, stdin=True)
    holder.expect("locked")
    engine = make_engine(db, buffer_cap=1000)

    def work(params, context):
        for i in range(10_000):
            context.logger.info("line %d", i)

    task = engine.run_task(work)
    assert task.wait(20) == "SUCCESS"
    engine.flush()  # fails, but moves the queued records into batches (and past the cap, to disk)
    health = engine.health()
    assert health.spilled > 0
    assert health.pending == 10_002
    assert sorted(spill_dir.glob("*.arrow")), "no spill file was written"
    assert [r.seq for r in task.logs()] == list(range(1, 10_003))  # readable from memory and spill files alike
    assert len(task.logs(search="line 9999")) == 1

    assert holder.release() == 0
    poll(engine.flush, 15, "the spilled batches to be written", interval=0.1)
    assert engine.health().spilled == 0 and engine.health().pending == 0
    assert not list(spill_dir.glob("*.arrow"))
    engine.close()
    assert seqs_of(db, task.id) == list(range(1, 10_003))
    messages = [m for (m,) in read_db(db, "select message from task_logs where task_id = ? and source = 'plugin' order by id", [task.id])]
    assert messages == [f"line {i}" for i in range(10_000)]


@pytest.mark.slow
def test_outage_at_exit_spills_everything_and_the_next_engine_replays_it(tmp_path, children, make_engine):
    """close() with the database locked writes tasks.json and Arrow files; a later engine writes them, statuses kept or INTERRUPTED."""
    db = tmp_path / "logs.duckdb"
    spill_dir = tmp_path / "logs.duckdb.spill"
    holder = children("hold", db, stdin=True)
    holder.expect("locked")
    engine = make_engine(db)
    release = threading.Event()

    def finished(params, context):
        for i in range(300):
            context.logger.info("done %d", i)
        return 1

    def cooperative(params, context):
        context.logger.info("waiting politely")
        while True:
            context.check_cancelled()
            release.wait(0.01)

    def stubborn(params, context):  # never checks: the exit marks it INTERRUPTED
        context.logger.info("not listening")
        release.wait(30)

    done, polite, deaf = engine.run_task(finished), engine.run_task(cooperative), engine.run_task(stubborn)
    assert done.wait(10) == "SUCCESS"
    poll(lambda: polite.status == "RUNNING" and deaf.status == "RUNNING", 10, "both tasks to run")
    try:
        engine.close(timeout=1.0)
    finally:
        release.set()
    assert (spill_dir / "tasks.json").exists()
    assert sorted(spill_dir.glob("*.arrow"))
    spilled = {row["id"]: row["status"] for row in json.loads((spill_dir / "tasks.json").read_text())}
    assert spilled == {done.id: "SUCCESS", polite.id: "CANCELLED", deaf.id: "INTERRUPTED"}

    assert holder.release() == 0
    again = make_engine(db)
    assert again.flush()
    assert again.task(done.id).status == "SUCCESS"
    assert again.task(polite.id).status == "CANCELLED"
    assert again.task(deaf.id).status == "INTERRUPTED"
    assert [r.seq for r in again.task(done.id).logs()] == list(range(1, 303))
    assert [r.message for r in again.task(done.id).logs(source="plugin")] == [f"done {i}" for i in range(300)]
    assert "waiting politely" in [r.message for r in again.task(polite.id).logs()]
    assert "not listening" in [r.message for r in again.task(deaf.id).logs()]
    assert not list(spill_dir.glob("*.arrow")) and not (spill_dir / "tasks.json").exists()
    again.close()
    for task in (done, polite, deaf):
        seqs = seqs_of(db, task.id)
        assert seqs == list(range(1, len(seqs) + 1))


def test_spilled_tasks_still_active_are_replayed_as_interrupted(tmp_path, make_engine):
    """A tasks.json row left RUNNING (its process died before finishing it) is written as INTERRUPTED at the next start."""
    db = tmp_path / "logs.duckdb"
    spill_dir = tmp_path / "logs.duckdb.spill"
    spill_dir.mkdir()
    row = {"id": "0000000000001abcd", "plugin": "gone", "params": "{}", "status": "RUNNING",
           "created_at": "2026-01-01T00:00:00+00:00", "started_at": "2026-01-01T00:00:01+00:00",
           "finished_at": None, "error": None, "progress": None, "progress_message": None,
           "log_level": None, "record_count": 0}
    (spill_dir / "tasks.json").write_text(json.dumps([row]))
    engine = make_engine(db)
    assert engine.flush()
    info = engine.task_info(row["id"])
    assert info["status"] == "INTERRUPTED" and info["finished_at"] is not None
    assert not (spill_dir / "tasks.json").exists()
