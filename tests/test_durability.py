"""Durability of the real engine on a real DuckDB file: restarts, SIGTERM, SIGKILL, database outages, spill and replay.

Processes are real (tests/procs.py scenarios) and outages are real: another process holding DuckDB's
file lock, or RLIMIT_FSIZE making DuckDB's writes fail with "File too large". The states a crash
leaves behind (a spill file whose batch was committed, a task row left RUNNING) are made with the
real Store and real Arrow files. tests/test_faults.py attacks the same promises with real disks
filling up, read-only mounts and SIGKILLs at random points.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from procs import children, make_engine, poll, read_db, seqs_of  # noqa: F401  (fixtures)

from nbtasklog.store.store import LOG_ARROW_SCHEMA, Store, records_to_arrow

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and rlimits")


def plugin_ticks(db, task_id: str) -> list[int]:
    rows = read_db(db, "select message from task_logs where task_id = ? and source = 'plugin' order by seq", [task_id])
    return [int(message.split()[1]) for (message,) in rows]


def task_row(db, task_id: str) -> dict:
    rows = read_db(db, "select status, error, finished_at, record_count from tasks where id = ?", [task_id])
    assert rows, f"task {task_id} is not in the database"
    status, error, finished_at, record_count = rows[0]
    return {"status": status, "error": error, "finished_at": finished_at, "record_count": record_count}


def records(task_id: str, seqs) -> pa.Table:
    """An Arrow batch of records of one task, as the buffer makes them."""
    return records_to_arrow([(task_id, seq, 1_700_000_000_000_000 + seq, "INFO", "plugin", f"line {seq}", None)
                             for seq in seqs])


def write_spill_file(spill_dir: Path, batch: pa.Table) -> Path:
    """An Arrow file in the spill dir, as a process leaves it; names sort in the order they are made."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    path = spill_dir / f"{time.time_ns():020d}.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, LOG_ARROW_SCHEMA) as writer:
        writer.write_table(batch)
    return path


def a_task_row(task_id: str, status: str, record_count: int = 0) -> dict:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return {"id": task_id, "plugin": "gone", "params": "{}", "status": status, "created_at": now,
            "started_at": now, "finished_at": None if status in ("PENDING", "RUNNING") else now, "error": None,
            "progress": None, "progress_message": None, "log_level": None, "record_count": record_count}


def spilled_row(row: dict) -> dict:
    """A task row as tasks.json holds it (times as ISO text)."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}


def store_state(db, task_rows, batch=None) -> None:
    """Write task rows and records straight into the database, as an earlier process did."""
    store = Store(db)
    try:
        store.write(task_rows, batch)
    finally:
        store.close()


def lines(params, context) -> None:
    for i in range(params["n"]):
        context.logger.info("line %d", i)


def duplicates(db) -> list:
    return read_db(db, "select task_id, seq, count(*) from task_logs group by all having count(*) > 1")


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
    assert task.info()["record_count"] == len(seqs)  # the records it really has, not the count at its last row change
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
    assert running.info()["record_count"] == len(running.logs()) > 0
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
    assert sorted(spill_dir.glob("**/*.arrow")), "no spill file was written"
    assert [r.seq for r in task.logs()] == list(range(1, 10_003))  # readable from memory and spill files alike
    assert len(task.logs(search="line 9999")) == 1

    assert holder.release() == 0
    poll(engine.flush, 15, "the spilled batches to be written", interval=0.1)
    assert engine.health().spilled == 0 and engine.health().pending == 0
    assert not list(spill_dir.glob("**/*.arrow"))
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
    assert list(spill_dir.glob("*/tasks.json"))  # in the exiting process's own folder
    assert sorted(spill_dir.glob("**/*.arrow"))
    spilled = {row["id"]: row["status"] for row in json.loads(next(spill_dir.glob("*/tasks.json")).read_text())}
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
    assert not list(spill_dir.glob("**/*.arrow")) and not list(spill_dir.glob("**/tasks.json"))
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
    assert not list(spill_dir.glob("**/tasks.json"))


def test_a_dead_processs_final_row_in_its_spill_wins_over_the_interrupted_mark(tmp_path, make_engine):
    """The database has a task RUNNING under an owner that died after the task ended but before its final
    row was written (tasks.json in its spill folder says SUCCESS): the next engine writes SUCCESS, not
    INTERRUPTED, since the task did end, and that folder is the dead owner's own account of it."""
    db = tmp_path / "logs.duckdb"
    spill_root = tmp_path / "logs.duckdb.spill"
    store = Store(db)
    store.write([dict(a_task_row("ended", "RUNNING"), owner="dead")], records("ended", range(1, 6)), row_modes={"ended": "new"})
    store.close()
    folder = spill_root / "dead"
    folder.mkdir(parents=True)
    (folder / "lock").touch()  # a folder whose process is gone: its lock is free
    (folder / "tasks.json").write_text(json.dumps([spilled_row(dict(a_task_row("ended", "SUCCESS", 5), owner="dead"))]))
    engine = make_engine(db)
    assert engine.flush()
    assert engine.task("ended").info()["status"] == "SUCCESS"
    engine.close()
    assert task_row(db, "ended")["status"] == "SUCCESS"


def test_interrupted_tasks_count_their_stored_and_spilled_records(tmp_path, make_engine):
    """record_count of tasks marked INTERRUPTED at start is their highest seq, stored or still spilled:
    a RUNNING row in the database, and active rows of tasks.json, stale or not."""
    db = tmp_path / "logs.duckdb"
    spill_dir = tmp_path / "logs.duckdb.spill"
    in_db, in_file, stale = "0000000000001aaaa", "0000000000001bbbb", "0000000000001cccc"
    # in_db: its row and records 1..30 were written, 31..50 were still in a spill file
    # stale: tasks.json says 0 records (its row at the task's start), the database has 1..60
    store_state(db, [a_task_row(in_db, "RUNNING"), a_task_row(stale, "RUNNING")],
                pa.concat_tables([records(in_db, range(1, 31)), records(stale, range(1, 61))]))
    write_spill_file(spill_dir, records(in_db, range(31, 51)))
    write_spill_file(spill_dir, records(in_file, range(1, 41)))  # in_file: its row only in tasks.json
    (spill_dir / "tasks.json").write_text(json.dumps([spilled_row(a_task_row(in_file, "RUNNING")),
                                                      spilled_row(a_task_row(stale, "RUNNING"))]))
    engine = make_engine(db)
    assert engine.flush()
    for task_id, count in ((in_db, 50), (in_file, 40), (stale, 60)):
        info = engine.task_info(task_id)
        assert (info["status"], info["record_count"]) == ("INTERRUPTED", count), task_id
        assert [r.seq for r in engine.logs(task_id)] == list(range(1, count + 1))


# ---- spill and replay: order, duplicates, failures -------------------------------------------------
def test_a_spill_that_fails_keeps_the_batch_and_the_flusher_writes_it_later(tmp_path, children, make_engine):
    """The database is locked and the spill dir cannot be made (a file is in its place): the batches stay in
    memory, health says spilling failed, the flusher lives on; once both are back every record is written once."""
    db = tmp_path / "logs.duckdb"
    spill_dir = tmp_path / "spill"
    spill_dir.write_text("not a directory")
    holder = children("hold", db, stdin=True)
    holder.expect("locked")
    engine = make_engine(db, buffer_cap=100, spill_dir=spill_dir)
    task = engine.run_task(lines, {"n": 1000})
    assert task.wait(10) == "SUCCESS"
    assert not engine.flush()  # past the cap: the spill is tried, and fails
    health = engine.health()
    assert health.pending == 1002 and health.spilled == 0
    assert "spill" in health.last_error.lower() and health.database_available is False
    assert [r.seq for r in task.logs()] == list(range(1, 1003))  # still readable from memory

    spill_dir.unlink()  # the disk is back
    assert holder.release() == 0
    # No flush() from here: the flusher thread survived the failure and writes everything itself.
    poll(lambda: engine.health().pending == 0, 15, "the flusher to write the kept batches", interval=0.1)
    assert engine.health().last_error is None
    engine.close()
    assert seqs_of(db, task.id) == list(range(1, 1003))
    assert duplicates(db) == []


@pytest.mark.slow
def test_batches_spilled_at_exit_replay_in_the_order_they_were_made(tmp_path, children, make_engine):
    """An older batch still in memory and a newer one spilled past the cap: spilled at exit, the older one
    must still be written first (each batch is named when it is made, not when it is spilled)."""
    db = tmp_path / "logs.duckdb"
    holder = children("hold", db, stdin=True)
    holder.expect("locked")
    engine = make_engine(db, buffer_cap=1000, flush_interval=3600)
    half, go_on = threading.Event(), threading.Event()

    def work(params, context):
        for i in range(800):
            context.logger.info("line %d", i)
        half.set()
        go_on.wait(10)
        for i in range(800, 1500):
            context.logger.info("line %d", i)

    task = engine.run_task(work)
    assert half.wait(10)
    assert not engine.flush()  # records 1..801 become a batch kept in memory (under the cap)
    go_on.set()
    assert task.wait(10) == "SUCCESS"
    assert not engine.flush()  # the rest, past the cap, goes to a spill file
    assert 0 < engine.health().spilled < engine.health().pending
    engine.close(timeout=0.5)  # still locked: the batch in memory is spilled too

    assert holder.release() == 0
    again = make_engine(db)
    assert again.flush()
    again.close()
    assert seqs_of(db, task.id) == list(range(1, 1503))  # by id: written in the order they were made
    assert [m for (m,) in read_db(db, "select message from task_logs where task_id = ? and source = 'plugin' "
                                      "order by id", [task.id])] == [f"line {i}" for i in range(1500)]


def test_logs_during_an_outage_never_answer_a_partial_log_from_the_buffer(tmp_path, children, make_engine):
    """The database holds seq 81..131 of a task and the spill dir 1..80 (batches replayed out of order by an
    earlier version): with the database locked, logs() must not answer 80 of 131 records as the whole log."""
    db = tmp_path / "logs.duckdb"
    spill_dir = tmp_path / "logs.duckdb.spill"
    task_id = "0000000000001dddd"
    row = a_task_row(task_id, "SUCCESS", record_count=131)
    store_state(db, [row], records(task_id, range(81, 132)))
    write_spill_file(spill_dir, records(task_id, range(1, 81)))
    (spill_dir / "tasks.json").write_text(json.dumps([spilled_row(row)]))
    holder = children("hold", db, stdin=True)
    holder.expect("locked")
    engine = make_engine(db)
    assert engine.task_info(task_id)["record_count"] == 131  # known from the spilled row
    with pytest.raises(Exception, match="lock"):
        engine.logs(task_id)  # the database's error, not a partial log

    assert holder.release() == 0
    assert engine.flush()
    assert [r.seq for r in engine.logs(task_id)] == list(range(1, 132))


def test_logs_during_an_outage_answer_from_the_buffer_when_it_holds_the_whole_log(tmp_path, children, make_engine):
    """The other side of the same check: a task whose every record waits in the buffer is readable while locked."""
    db = tmp_path / "logs.duckdb"
    holder = children("hold", db, stdin=True)
    holder.expect("locked")
    engine = make_engine(db, buffer_cap=50)  # most of it spilled
    task = engine.run_task(lines, {"n": 300})
    assert task.wait(10) == "SUCCESS"
    engine.flush()
    assert [r.seq for r in task.logs()] == list(range(1, 303))
    assert holder.release() == 0


def test_a_spill_file_whose_batch_was_committed_is_not_written_again(tmp_path, make_engine):
    """A process killed after its batch's transaction committed, before the file was deleted: the next start
    replays the file, and must insert none of its records a second time."""
    db = tmp_path / "logs.duckdb"
    first = make_engine(db)
    task = first.run_task(lines, {"n": 500})
    assert task.wait(10) == "SUCCESS"
    first.close()
    stored = read_db(db, "select task_id, seq, timestamp, level, source, message, metadata from task_logs "
                         "where task_id = ? order by seq", [task.id])
    committed = pa.Table.from_pylist([dict(zip(LOG_ARROW_SCHEMA.names, r)) for r in stored], LOG_ARROW_SCHEMA)
    # The file holds the last 200 committed records and 3 that were not (seq 503..505, made up here).
    write_spill_file(tmp_path / "logs.duckdb.spill",
                     pa.concat_tables([committed.slice(302), records(task.id, (503, 504, 505))]))

    again = make_engine(db)
    assert again.flush()
    again.close()
    assert seqs_of(db, task.id) == list(range(1, 506))
    assert duplicates(db) == []


@pytest.mark.parametrize("backend", ["duckdb", "postgresql"])
def test_store_write_only_new_skips_what_is_stored(tmp_path, request, backend):
    """Store.write(only_new=True), for a batch that may have been written before: only the (task_id, seq) not
    yet stored are inserted, in the batch's order, other tasks' equal seqs untouched."""
    url = str(tmp_path / "logs.duckdb") if backend == "duckdb" else request.getfixturevalue("postgres").new_database()
    store = Store(url)
    try:
        store.write([a_task_row("t1", "RUNNING"), a_task_row("t2", "RUNNING")],
                    pa.concat_tables([records("t1", range(1, 101)), records("t2", range(1, 11))]))
        store.write([], pa.concat_tables([records("t1", range(51, 151)), records("t2", range(11, 21))]), only_new=True)
        store.write([], records("t1", range(1, 151)), only_new=True)  # all stored: nothing happens
    finally:
        store.close()
    by_id = read_db(url, "select task_id, seq from task_logs order by id")
    assert [s for t, s in by_id if t == "t1"] == list(range(1, 151))
    assert [s for t, s in by_id if t == "t2"] == list(range(1, 21))


def test_an_unreadable_or_vanished_spill_file_is_reported_and_the_rest_is_written(tmp_path, children, make_engine,
                                                                                  caplog):
    """A spill file that cannot be read at start, and one deleted by someone else before its replay: both are
    reported (health and log) and every other batch is written; nothing waits forever."""
    db = tmp_path / "logs.duckdb"
    spill_dir = tmp_path / "logs.duckdb.spill"
    write_spill_file(spill_dir, records("t1", range(1, 11)))
    broken = write_spill_file(spill_dir, records("t1", range(11, 21)))
    broken.write_bytes(b"ARROW1 but cut short")
    vanishing = write_spill_file(spill_dir, records("t2", range(1, 6)))
    write_spill_file(spill_dir, records("t3", range(1, 4)))
    (spill_dir / "tasks.json").write_text(json.dumps([
        spilled_row(a_task_row(task_id, "SUCCESS", count)) for task_id, count in (("t1", 20), ("t2", 5), ("t3", 3))]))
    holder = children("hold", db, stdin=True)
    holder.expect("locked")
    engine = make_engine(db)
    # the files were left in the spill root (as release 0.1.0 spilled): the engine moved them into its own folder
    broken, vanishing = (next(spill_dir.glob(f"*/{path.name}")) for path in (broken, vanishing))
    assert broken.name in engine.health().last_error and "read" in engine.health().last_error
    vanishing.unlink()
    assert [r.seq for r in engine.logs("t3")] == [1, 2, 3]  # the buffer answers without the vanished file
    with pytest.raises(Exception, match="lock"):
        engine.logs("t1")  # 10 of its 20 records are in the unreadable file: no answer from the buffer alone

    assert holder.release() == 0
    poll(engine.flush, 15, "the readable spill files to be written", interval=0.1)
    health = engine.health()
    assert health.pending == 0 and health.database_available
    assert "2 spill files not replayed" in health.last_error and vanishing.name in health.last_error
    logged = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(broken.name in m and "cannot be read" in m for m in logged)
    assert any(vanishing.name in m and "vanished" in m for m in logged)
    engine.close()
    assert seqs_of(db, "t1") == list(range(1, 11)) and seqs_of(db, "t3") == [1, 2, 3] and seqs_of(db, "t2") == []
    assert broken.exists()  # kept for whoever wants to look at it


class _CheckingStore(Store):
    """A real DuckDB store that, after each write commits, checks what any other reader would now read:
    a task the store says ended holds every record its row counts."""

    def __init__(self, url) -> None:
        super().__init__(url)
        self.broken: list[tuple[str, int, int]] = []
        self.writes = 0

    def write(self, *args, **kwargs):
        refused = super().write(*args, **kwargs)
        self.writes += 1
        with self.engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "select t.id, t.record_count, (select count(*) from task_logs l where l.task_id = t.id) "
                "from tasks t where t.status not in ('PENDING', 'RUNNING')").all()
        self.broken += [(task_id, count, stored) for task_id, count, stored in rows if stored != count]
        return refused


def test_a_tasks_final_row_is_never_written_before_its_last_records(tmp_path):
    """A task ends with more records waiting than one batch holds: its final row is committed with its last
    batch, not the first (a process reading the store would take it as ended with a part of its log)."""
    import nbtasklog

    store = _CheckingStore(tmp_path / "logs.duckdb")
    engine = nbtasklog.Engine(store=store, flush_interval=3600, flush_size=10_000_000, handle_signals=False)
    try:
        def burst(params, context):
            info = context.logger.info
            for i in range(300_000):  # more than two batches (BATCH_ROWS)
                info("record %d", i)

        task = engine.run_task(burst)
        task.wait(60)
        assert engine.flush()
        assert store.writes >= 3
        assert store.broken == []
        assert engine.task(task.id).info()["status"] == "SUCCESS"
        assert len(engine.logs(task.id)) == 300_002
    finally:
        engine.close()
