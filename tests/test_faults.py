"""Fault injection against the store's promise: acknowledged records are never lost; on SIGKILL at most one
flush interval of records (the tail) may be missing; replay never duplicates or reorders.

Everything is real: child processes (tests/procs.py scenarios) on DuckDB files, a disk that fills up and a
directory that turns read-only (small tmpfs mounts: root is needed, and CI runs as root on this machine
kind, so without it these tests fail instead of skipping), SIGKILL at random points of flush, spill and
replay, another process holding the database while spill files wait, a PostgreSQL server stopped and
started again. Every check reads the database afresh once no engine holds it.

Random delays come from a seed: NBTASKLOG_FAULT_SEED=N replays a run, and a failing test prints its seed.
With NBTASKLOG_RELIABILITY_REPORT=path, the figures (kills survived, records checked, lost, duplicated)
are merged into that JSON file under "faults".
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import reliability
from disks import bind, fill, mount, tmpfs
from procs import Child, make_engine, poll, read_db, spawn  # noqa: F401  (fixtures)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="tmpfs mounts and SIGKILL as on the CI machines"),
]

SEED = int(os.environ.get("NBTASKLOG_FAULT_SEED") or random.SystemRandom().randrange(2**32))
FLUSH_INTERVAL = 0.05
FLUSH_SIZE = 500  # a write (and a spill file) every 500 records: many points for a kill to land on
BUFFER_CAP = 1  # every batch goes through a spill file, also while the database answers


# ---- figures and seed --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def figures() -> Iterator[dict[str, Any]]:
    """What the suite did and found; merged into $NBTASKLOG_RELIABILITY_REPORT under "faults" at the end."""
    data: dict[str, Any] = {"seed": SEED, "kills": 0, "kills_by_point": {}, "kills_mid_replay": 0,
                            "records_checked": 0, "acknowledged_checked": 0, "records_lost": 0, "duplicates": 0,
                            "reordered_tasks": 0, "wrong_task_rows": 0, "tail_not_written_max": 0,
                            "tail_not_written_max_ms": 0, "tasks_killed_before_their_first_flush": 0,
                            "disk_full_cases": 0, "read_only_cases": 0, "unavailable_replay_cases": 0,
                            "postgresql_cases": 0}
    started = time.monotonic()
    yield data
    data["runtime_s"] = round(time.monotonic() - started, 1)
    reliability.record("faults", **data)


@pytest.fixture
def rng() -> random.Random:
    print(f"fault seed {SEED}: NBTASKLOG_FAULT_SEED={SEED} replays these delays")
    return random.Random(SEED)


# ---- what the database holds -----------------------------------------------------------------------------
def check_store(db: Any, figures: dict[str, Any], acknowledged: dict[str, int],
                expect: dict[str, tuple[str, int | None]]) -> dict[str, list[int]]:
    """Seqs per task in id order; checks no duplicate, no reordering, no gap, every acknowledged record,
    a row for every task with the records it has; counts it all in `figures` before asserting.
    `expect`: task id -> (status, record_count or None for "the records stored"). A task killed before
    its first flush may be gone whole (row and records, none acknowledged): that is the tail the
    promise allows, counted apart."""
    by_task: dict[str, list[int]] = {}
    for task_id, seq in read_db(db, "select task_id, seq from task_logs order by id"):
        by_task.setdefault(task_id, []).append(seq)
    rows = {task_id: (status, count)
            for task_id, status, count in read_db(db, "select id, status, record_count from tasks")}
    duplicated = read_db(db, "select task_id, seq from task_logs group by task_id, seq having count(*) > 1")
    reordered = [t for t, seqs in by_task.items() if seqs != list(range(1, len(seqs) + 1))]
    lost = {t: n - len(by_task.get(t, ())) for t, n in acknowledged.items() if len(by_task.get(t, ())) < n}
    gone_whole = {t for t in expect if t not in rows and t not in by_task and not acknowledged.get(t)}
    wrong = {t: (rows.get(t), status, count) for t, (status, count) in expect.items()
             if t not in gone_whole and rows.get(t) != (status, len(by_task.get(t, ())) if count is None else count)}
    without_row = sorted(set(by_task) - set(rows))
    figures["records_checked"] += sum(map(len, by_task.values()))
    figures["acknowledged_checked"] += sum(acknowledged.values())
    figures["records_lost"] += sum(lost.values())
    figures["duplicates"] += len(duplicated)
    figures["reordered_tasks"] += len(reordered)
    figures["wrong_task_rows"] += len(wrong) + len(without_row)
    figures["tasks_killed_before_their_first_flush"] += len(gone_whole)
    problems = {"records stored twice": duplicated[:10], "tasks whose seqs by id are not 1..n": reordered,
                "acknowledged records missing": lost, "records of tasks without a row": without_row,
                "task rows (stored, expected status, expected count)": wrong}
    problems = {what: found for what, found in problems.items() if found}
    assert not problems, f"NBTASKLOG_FAULT_SEED={SEED}: {problems}"
    return by_task


def spilled_rows(spill_dir: Path) -> dict[str, int]:
    """Records per task in the readable spill files (a file cut short by a kill holds none)."""
    counts: dict[str, int] = {}
    for path in [*spill_dir.glob("**/*.arrow"), *spill_dir.glob("**/*.tmp")]:
        try:
            with pa.memory_map(str(path)) as source:
                table = pa.ipc.open_file(source).read_all()
        except (OSError, pa.ArrowException):
            continue
        for task_id in table.column("task_id").to_pylist():
            counts[task_id] = counts.get(task_id, 0) + 1
    return counts


# ---- killing -----------------------------------------------------------------------------------------------
@dataclass
class Run:
    """One child of the `emit` scenario, killed: what it reported before it died."""

    point: str
    task_id: str | None = None
    acknowledged: int = 0  # records of its task it knew were in the database
    emitted: int = 0
    killed_at: float = 0.0
    spill_files_before: int = 0
    spill_files_after: int = 0
    startup: float | None = None  # s from "opening" to "started": its engine's start, replay included

    def take(self, tag: str, data: Any) -> None:
        if tag == "started":
            self.task_id = data["task_id"]
        elif tag == "flushed":
            self.acknowledged = max(self.acknowledged, data["seq"])
            self.emitted = max(self.emitted, data["emitted"])


def emit_and_kill(db: Path, point: str, delay: float, after: str = "started") -> Run:
    """Start an `emit` child, SIGKILL it `delay` s after its "opening" (before the replay) or "started" line."""
    child = spawn("emit", db, BUFFER_CAP, FLUSH_INTERVAL, FLUSH_SIZE)
    run = Run(point)
    try:
        run.spill_files_before = child.expect("opening")["spill_files"]
        opened = time.monotonic()
        if after == "opening":
            time.sleep(delay)
        else:
            run.take("started", child.expect("started"))
            run.startup = time.monotonic() - opened
            end = time.monotonic() + delay
            while time.monotonic() < end:
                run.take("flushed", child.expect("flushed"))
        child.signal(signal.SIGKILL)
        run.killed_at = time.time()
        assert child.wait() == -signal.SIGKILL, child.stderr
        for tag, data in reports_left(child):  # sent before it died, not read yet
            run.take(tag, data)
        run.spill_files_after = len(list(Path(f"{db}.spill").glob("**/*.arrow")))
        return run
    finally:
        child.stop()


def reports_left(child: Child) -> list[tuple[str, Any]]:
    out = []
    while (line := child.lines.get(timeout=10)) is not None:
        tag, _, payload = line.partition(" ")
        out.append((tag, json.loads(payload) if payload else None))
    return out


def count_kill(figures: dict[str, Any], run: Run) -> None:
    point = run.point
    if point == "replay":  # aimed at the replay in its start-up; it may have got past it
        point = "start-up and replay" if run.task_id is None else "flush and spill, after a replay"
    figures["kills"] += 1
    figures["kills_by_point"][point] = figures["kills_by_point"].get(point, 0) + 1
    if 0 < run.spill_files_after < run.spill_files_before:
        figures["kills_mid_replay"] += 1  # some of the backlog replayed, some not


def next_health(child: Child, until: Any, what: str, timeout: float = 20.0) -> dict[str, Any]:
    """The first "health" report of `child` for which `until(report)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        health = child.expect("health", timeout=max(0.1, deadline - time.monotonic()))
        if until(health):
            return health
        if time.monotonic() > deadline:
            raise AssertionError(f"no health report with {what} within {timeout} s; last {health}\n{child.stderr}")


def stop(child: Child) -> dict[str, Any]:
    assert child.proc.stdin is not None
    child.proc.stdin.write(b"stop\n")
    child.proc.stdin.flush()
    result = child.expect("result")
    assert child.wait() == 0, child.stderr
    return result


# ---- the tests -------------------------------------------------------------------------------------------
def test_sigkill_at_random_points_of_flush_spill_and_replay(tmp_path, rng, figures, make_engine):
    """24 SIGKILLs: 8 rounds of a child killed mid flush/spill (database up), one killed while only spilling
    (database locked by another process), and the next start killed during its replay of that backlog.
    Then: no duplicate, no reordering, every acknowledged record there, every task INTERRUPTED with the
    records it has."""
    db = tmp_path / "logs.duckdb"
    runs: list[Run] = []
    for _ in range(8):
        runs.append(emit_and_kill(db, "flush and spill", rng.uniform(0.05, 0.4)))
        # Its start (imports and the engine's start, ~0.4 s here) is where the next replay kill aims:
        # the replay of a backlog of 10-25 spill files is its last ~0.1-0.2 s.
        startup = runs[-1].startup or 0.4
        holder = spawn("hold", db, stdin=True)
        try:
            holder.expect("locked")
            runs.append(emit_and_kill(db, "spill during an outage", rng.uniform(0.4, 0.9)))
            assert holder.release() == 0
        finally:
            holder.stop()
        runs.append(emit_and_kill(db, "replay", rng.uniform(0.9 * startup, startup + 0.2), after="opening"))
        count_kill(figures, runs[-3])
        count_kill(figures, runs[-2])
        count_kill(figures, runs[-1])

    engine = make_engine(db)  # the last start: replays what is left, marks the last task INTERRUPTED
    poll(engine.flush, 30, "the last replay")
    engine.close()
    assert not list(Path(f"{db}.spill").glob("**/*.arrow"))
    tasks = [run for run in runs if run.task_id is not None]
    by_task = check_store(db, figures, {run.task_id: run.acknowledged for run in tasks},
                          {run.task_id: ("INTERRUPTED", None) for run in tasks})
    # The tail a kill may take: reported as measured (its bound is time, and time on a busy machine is not
    # asserted); every record it reported written is there (checked above).
    last_written = dict(read_db(db, "select task_id, max(timestamp) from task_logs group by task_id"))
    for run in tasks:
        stored = len(by_task.get(run.task_id, ()))
        figures["tail_not_written_max"] = max(figures["tail_not_written_max"], run.emitted - stored)
        if run.task_id in last_written:
            lag = run.killed_at - last_written[run.task_id].timestamp()
            figures["tail_not_written_max_ms"] = max(figures["tail_not_written_max_ms"], round(lag * 1000))
    assert figures["kills"] >= 24


def test_disk_full_keeps_every_record_and_writes_it_once_when_space_is_back(tmp_path, figures):
    """A 20 MB tmpfs nearly full holds the database and its spill dir: writes fail, then spills fail; once the
    filler is gone and the disk is larger, every record is written exactly once."""
    with tmpfs(tmp_path / "disk", "20m") as disk:
        filler = fill(disk, leave=2_000_000)
        db = disk / "logs.duckdb"
        child = spawn("log_until_told", db, 2000, stdin=True)
        try:
            task_id = child.expect("started")["task_id"]
            full = next_health(child, lambda h: h["error"] and "spilling" in h["error"] and h["pending"] > 6000,
                               "writes and spills failing, records piling up")
            filler.unlink()
            mount("-o", "remount,size=400m", str(disk))
            result = stop(child)
        finally:
            child.stop()
        assert "No space left on device" in full["error"]
        assert result["status"] == "SUCCESS" and result["pending"] == 0 and result["last_error"] is None
        count = result["record_count"]
        by_task = check_store(db, figures, {task_id: count}, {task_id: ("SUCCESS", count)})
        assert len(by_task[task_id]) == result["record_count"] > full["pending"]
        figures["disk_full_cases"] += 1


def test_a_directory_turned_read_only_while_a_task_logs_loses_nothing(tmp_path, figures):
    """The database's directory (a tmpfs) becomes read-only while a task logs: the database cannot be
    opened and spilling fails too; back to read-write, every record is written once.

    A file open for writing keeps a mount from turning read-only, so another process holds the database
    through a second mount of the same disk, keeping the engine out until the directory is read-only."""
    with tmpfs(tmp_path / "disk", "50m") as disk, bind(disk, tmp_path / "other") as other:
        db = disk / "logs.duckdb"
        holder = spawn("hold", other / "logs.duckdb", stdin=True)
        child = spawn("log_until_told", db, 500, stdin=True)
        try:
            holder.expect("locked")
            task_id = child.expect("started")["task_id"]
            next_health(child, lambda h: h["spilled"] > 0, "records spilled while the database is locked")
            remount_ro = ["mount", "-o", "remount,bind,ro", str(disk)]
            poll(lambda: subprocess.run(remount_ro, capture_output=True).returncode == 0,
                 10, "the directory to turn read-only (between two spills)")
            assert holder.release() == 0
            read_only = next_health(child, lambda h: h["error"] and "Read-only file system" in h["error"]
                                    and "spilling" in h["error"], "opening and spilling failing on the read-only disk")
            mount("-o", "remount,bind,rw", str(disk))
            result = stop(child)
        finally:
            child.stop()
            holder.stop()
        assert not read_only["available"]
        assert result["status"] == "SUCCESS" and result["pending"] == 0
        count = result["record_count"]
        by_task = check_store(db, figures, {task_id: count}, {task_id: ("SUCCESS", count)})
        assert len(by_task[task_id]) == result["record_count"] > read_only["pending"]
        figures["read_only_cases"] += 1


def test_database_unavailable_during_replay_then_everything_replayed_once(tmp_path, figures):
    """A process killed while only spilling (database locked); the next one starts while it is still locked,
    so its replay waits, and logs a task of its own; once the lock goes, everything is written once."""
    db = tmp_path / "logs.duckdb"
    holder = spawn("hold", db, stdin=True)
    try:
        holder.expect("locked")
        first = spawn("emit", db, BUFFER_CAP, FLUSH_INTERVAL, FLUSH_SIZE)
        try:
            first_task = first.expect("started")["task_id"]
            while first.expect("flushed")["spilled"] < 3000:
                pass
            first.signal(signal.SIGKILL)
            first.wait()
        finally:
            first.stop()
        left = spilled_rows(Path(f"{db}.spill"))
        assert left[first_task] > 0
        second = spawn("log_until_told", db, 1, stdin=True)
        try:
            second_task = second.expect("started")["task_id"]
            waiting = next_health(second, lambda h: h["pending"] > left[first_task],
                                  "the backlog and new records waiting")
            assert not waiting["available"] and waiting["flushed"] == 0
            assert holder.release() == 0
            next_health(second, lambda h: h["available"], "the database to answer")
            result = stop(second)
        finally:
            second.stop()
    finally:
        holder.stop()
    assert result["status"] == "SUCCESS" and result["pending"] == 0
    assert not list(Path(f"{db}.spill").glob("**/*.arrow")) and not list(Path(f"{db}.spill").glob("**/tasks.json"))
    by_task = check_store(db, figures, {first_task: left[first_task], second_task: result["record_count"]},
                          {first_task: ("INTERRUPTED", left[first_task]), second_task: ("SUCCESS", result["record_count"])})
    assert len(by_task[first_task]) == left[first_task]  # every spilled record, once
    figures["unavailable_replay_cases"] += 1


def test_postgresql_gone_and_back_with_a_kill_in_between(tmp_path, figures):
    """A real PostgreSQL server stops while a task logs (batches spill), the process is killed while it is
    down; the server comes back and the next process replays the spill files: each record once, the killed
    task INTERRUPTED with the records it has."""
    from postgres import PostgresServer

    server = PostgresServer().init()  # its own: stopping the session's server would disturb other tests
    try:
        url = server.new_database()
        spill_dir = tmp_path / "spill"
        first = spawn("emit", url, BUFFER_CAP, FLUSH_INTERVAL, FLUSH_SIZE, spill_dir)
        try:
            run = Run("postgresql down")
            run.take("started", first.expect("started"))
            while run.acknowledged < 2000:
                run.take("flushed", first.expect("flushed"))
            server.stop()
            while True:
                report = first.expect("flushed")
                run.take("flushed", report)
                if report["error"] and report["spilled"] >= 2000:
                    break
            first.signal(signal.SIGKILL)
            first.wait()
            for tag, data in reports_left(first):
                run.take(tag, data)
        finally:
            first.stop()
        server.start()
        second = spawn("log_until_told", url, 1, spill_dir, stdin=True)
        try:
            second_task = second.expect("started")["task_id"]
            next_health(second, lambda h: h["available"] and h["flushed"] > 0, "the replay")
            result = stop(second)
        finally:
            second.stop()
        assert not list(spill_dir.glob("**/*.arrow"))
        by_task = check_store(url, figures, {run.task_id: run.acknowledged, second_task: result["record_count"]},
                              {run.task_id: ("INTERRUPTED", None), second_task: ("SUCCESS", result["record_count"])})
        assert len(by_task[run.task_id]) >= run.acknowledged + 2000  # the spilled ones too
        figures["kills"] += 1
        figures["kills_by_point"]["postgresql down"] = figures["kills_by_point"].get("postgresql down", 0) + 1
        figures["postgresql_cases"] += 1
    finally:
        server.remove()
