"""Helpers for the integration tests: child processes that run a real engine, and readers of the real file.

Run as a script (`python procs.py SCENARIO DB [ARGS]`) it plays one scenario and reports what it
saw as `TAG {json}` lines written with os.write on fd 1 (print inside a task would be captured
into the task). Imported, it gives the parent side: `spawn()` and `Child.expect()`, a `make_engine`
fixture and `read_db()`, which opens the DuckDB file directly once no engine holds it.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


HERE = Path(__file__).resolve()
CHILD_TIMEOUT = 30.0  # no child scenario should come near this; it only bounds a hang


# ---- parent side ---------------------------------------------------------------------------------
class Child:
    """A scenario running in its own Python process, with its report lines read on a thread."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, stdin: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.put(line.decode(errors="replace").rstrip("\n"))
        self.lines.put(None)

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:  # type: ignore[union-attr]
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")

    def expect(self, tag: str, timeout: float = CHILD_TIMEOUT) -> Any:
        """The JSON payload of the next report line tagged `tag` (other lines are kept in `seen`)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"child sent no {tag!r} within {timeout} s; saw {self.seen[-5:]}\n{self.stderr}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.proc.wait(5)
                raise AssertionError(
                    f"child exited ({self.proc.returncode}) before sending {tag!r}; saw {self.seen[-5:]}\n{self.stderr}"
                )
            self.seen.append(line)
            name, _, payload = line.partition(" ")
            if name == tag:
                return json.loads(payload) if payload else None

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = CHILD_TIMEOUT) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"child did not exit within {timeout} s\n{self.stderr}") from None

    def release(self) -> int:
        """Close the child's stdin (a lock holder then lets go and exits) and wait for it."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        return self.wait()

    def stop(self) -> None:
        """Kill the child if it still runs (test teardown)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def spawn(scenario: str, *args: object, stdin: bool = False, env: dict[str, str] | None = None) -> Child:
    return Child([scenario, *(str(a) for a in args)], env=env, stdin=stdin)


def read_db(path: Path | str, query: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of `query` read straight from the DuckDB file (no engine may have it open), or from the
    PostgreSQL database a `postgresql+psycopg://` URL names (`?` placeholders either way)."""
    if str(path).startswith("postgresql"):
        import sqlalchemy

        engine = sqlalchemy.create_engine(str(path))
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.exec_driver_sql(query.replace("?", "%s"), tuple(params or ()))]
        finally:
            engine.dispose()
    import duckdb

    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(query, params or []).fetchall()


def seqs_of(path: Path | str, task_id: str) -> list[int]:
    return [row[0] for row in read_db(path, "select seq from task_logs where task_id = ? order by id", [task_id])]


def poll(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    """Call `predicate` until it returns something truthy (returned); AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def _make_engine_fixture():  # defined lazily so that the child processes need no pytest
    import pytest

    @pytest.fixture
    def make_engine(tmp_path: Path):
        """A factory of engines on tmp_path/logs.duckdb (options as Engine's); all closed at teardown."""
        import logging

        from nbtasklog import Engine, belief

        app_level = logging.getLogger("nbtasklog").level
        made: list[Any] = []

        def make(path: Path | str | None = None, **options: Any) -> Any:
            options.setdefault("flush_interval", 0.05)
            options.setdefault("handle_signals", False)
            engine = Engine(str(path or tmp_path / "logs.duckdb"), **options)
            made.append(engine)
            return engine

        yield make
        for engine in made:
            engine.close(timeout=2)
        # Settings touch process-wide state; leave it as the next test expects it.
        belief.app_enabled = True
        logging.getLogger("nbtasklog").setLevel(app_level)

    @pytest.fixture
    def children():
        """Start scenario children with `children(scenario, *args)`; every one is killed at teardown."""
        started: list[Child] = []

        def start(scenario: str, *args: object, **kwargs: Any) -> Child:
            child = spawn(scenario, *args, **kwargs)
            started.append(child)
            return child

        yield start
        for child in started:
            child.stop()

    return make_engine, children


if "pytest" in sys.modules:
    make_engine, children = _make_engine_fixture()


# ---- child side ----------------------------------------------------------------------------------
def report(tag: str, **data: Any) -> None:
    os.write(1, f"{tag} {json.dumps(data, default=str)}\n".encode())


def scenario_normal_exit(db: str, n: str) -> None:
    """Log n records in a task and exit without closing: only the atexit hook can write them."""
    from nbtasklog import Engine

    engine = Engine(db, flush_interval=3600, flush_size=10**9, handle_signals=False)

    def many(params: dict[str, Any], context: Any) -> int:
        for i in range(params["n"]):
            context.logger.info("record %d", i, i=i)
        return params["n"]

    task = engine.run_task(many, {"n": int(n)})
    status = task.wait(CHILD_TIMEOUT)
    report("done", task_id=task.id, status=status, flushed=engine.health().flushed_total)


def scenario_sigterm(db: str) -> None:
    """A task logs until cancelled; the main thread waits on it; the parent sends SIGTERM."""
    from nbtasklog import Engine

    engine = Engine(db, flush_interval=3600, flush_size=10**9)  # handle_signals=True: the default

    def looping(params: dict[str, Any], context: Any) -> None:
        i = 0
        while True:
            context.check_cancelled()
            i += 1
            context.logger.info("tick %d", i)
            if i == 200:
                report("ready", tick=i)
            time.sleep(0.0005)

    task = engine.run_task(looping)
    report("started", task_id=task.id)
    task.wait()  # interrupted by SIGTERM -> SystemExit -> atexit closes the engine


def scenario_sigkill(db: str) -> None:
    """A task logs steadily; the main thread reports how many records are known to be in the database."""
    from nbtasklog import Engine

    engine = Engine(db, flush_interval=0.2, handle_signals=False)

    def steady(params: dict[str, Any], context: Any) -> None:
        i = 0
        while True:
            i += 1
            context.logger.info("tick %d", i, i=i)
            if i % 20 == 0:
                time.sleep(0.001)

    task = engine.run_task(steady)
    report("started", task_id=task.id)
    while True:
        # One task: its records are appended and written in seq order, so the first
        # flushed_total of them are in the database.
        report("flushed", seq=engine.health().flushed_total)
        time.sleep(0.05)


def scenario_running_then_killed(db: str) -> None:
    """One task runs (blocked), one waits in the queue; both rows are written; then the parent kills us."""
    from nbtasklog import Engine

    engine = Engine(db, flush_interval=0.05, max_workers=1, handle_signals=False)
    never = threading.Event()

    def blocked(params: dict[str, Any], context: Any) -> None:
        context.logger.info("working on it")
        never.wait()

    running = engine.run_task(blocked)
    queued = engine.run_task(blocked)
    while running.status != "RUNNING":
        time.sleep(0.01)
    while not engine.flush():
        time.sleep(0.05)
    report("ready", running=running.id, queued=queued.id, queued_status=queued.status)
    never.wait()


def scenario_fsize(db: str) -> None:
    """Writes fail with "File too large" (RLIMIT_FSIZE) while a task logs; then the limit is lifted."""
    import resource
    import signal

    from nbtasklog import Engine

    engine = Engine(db, flush_interval=0.05, handle_signals=False)
    stop = threading.Event()

    def steady(params: dict[str, Any], context: Any) -> int:
        i = 0
        while not stop.is_set():
            i += 1
            context.logger.info("tick %d", i, i=i)
            time.sleep(0.0005)
        return i

    def wait_for(predicate: Any, timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    task = engine.run_task(steady)
    wait_for(lambda: engine.health().flushed_total > 100)
    engine.flush()
    before = engine.health()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    sizes = [os.path.getsize(p) for p in (db, db + ".wal") if os.path.exists(p)]
    resource.setrlimit(resource.RLIMIT_FSIZE, (max(sizes), hard))
    failed = wait_for(lambda: engine.health().last_error is not None)
    during = engine.health()
    pending_first = during.pending
    wait_for(lambda: engine.health().pending > pending_first + 500)
    during_later = engine.health()
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    recovered = wait_for(lambda: engine.health().last_error is None and engine.flush())
    # The task is still running: the database must say so too (a reconnect must not mark it INTERRUPTED).
    status_in_db = engine.sql(f"select status from tasks where id = '{task.id}'")["status"].tolist()
    stop.set()
    task.wait(10)
    engine.close()
    report(
        "result",
        task_id=task.id,
        failed=failed,
        flushed_before=before.flushed_total,
        flushed_at_failure=during.flushed_total,
        error=during.last_error,
        available_during=during.database_available,
        flushed_during=during_later.flushed_total,
        pending_during=[pending_first, during_later.pending],
        recovered=recovered,
        status_in_db_while_running=status_in_db,
        last_seq=task.info()["record_count"],
    )


def _steady(stop: threading.Event | None = None) -> Any:
    """A plugin that logs ticks at a steady pace (about 15,000 a second here) until `stop` is set or it is cancelled."""

    def steady(params: dict[str, Any], context: Any) -> int:
        i = 0
        while stop is None or not stop.is_set():
            i += 1
            context.logger.info("tick %d", i, i=i)
            if i % 20 == 0:
                context.check_cancelled()
                time.sleep(0.001)
        return i

    return steady


def scenario_emit(db: str, buffer_cap: str, flush_interval: str, flush_size: str, spill_dir: str = "") -> None:
    """Replay what an earlier process spilled, then log steadily until killed; report what is known written.

    "opening" comes before the engine replays the spill dir (in its constructor), "started" after. Every
    10 ms, "flushed": `seq`, the records of this task known to be in the database (batches are written
    in order, the replayed ones first: those past `base`), and `emitted`, its last seq.
    """
    from nbtasklog import Engine

    spill = Path(spill_dir or db + ".spill")
    report("opening", spill_files=len(list(spill.glob("**/*.arrow"))) if spill.is_dir() else 0)
    engine = Engine(db, flush_interval=float(flush_interval), flush_size=int(flush_size), buffer_cap=int(buffer_cap),
                    spill_dir=spill, handle_signals=False)
    health = engine.health()
    base = health.flushed_total + health.pending  # everything replayed, written or still waiting
    task = engine.run_task(_steady())
    report("started", task_id=task.id)
    while True:
        health = engine.health()
        report("flushed", seq=max(0, health.flushed_total - base), emitted=task.info()["record_count"],
               spilled=health.spilled, error=health.last_error)
        time.sleep(0.01)


def scenario_log_until_told(db: str, buffer_cap: str, spill_dir: str = "") -> None:
    """Log steadily, reporting health every 20 ms, until a line "stop" (or EOF) on stdin; then finish the
    task, wait (up to 30 s) until everything is written, close, and report the result."""
    from nbtasklog import Engine

    engine = Engine(db, flush_interval=0.05, buffer_cap=int(buffer_cap), handle_signals=False,
                    spill_dir=spill_dir or None)
    stop, told = threading.Event(), threading.Event()
    task = engine.run_task(_steady(stop))
    report("started", task_id=task.id)
    errors: list[str] = []

    def watch() -> None:
        while not told.is_set():
            health = engine.health()
            if health.last_error and health.last_error not in errors:
                errors.append(health.last_error)
            report("health", error=health.last_error, pending=health.pending, spilled=health.spilled,
                   flushed=health.flushed_total, available=health.database_available)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    for line in sys.stdin:
        if line.strip() == "stop":
            break
    told.set()
    watcher.join()
    stop.set()
    status = task.wait(CHILD_TIMEOUT)
    deadline = time.monotonic() + CHILD_TIMEOUT
    while not engine.flush() and time.monotonic() < deadline:
        time.sleep(0.1)
    health = engine.health()
    engine.close()
    report("result", task_id=task.id, status=status, record_count=task.info()["record_count"],
           pending=health.pending, last_error=health.last_error, errors=errors)


def scenario_owner(db: str, spill_root: str, lease: str, buffer_cap: str) -> None:
    """One process of several on a shared store: run a task that logs steadily, report its id and this
    process's instance id; when the task ends (told "stop" on stdin, or stopped by the engine), close and
    report the result."""
    from nbtasklog import Engine

    engine = Engine(db, flush_interval=0.05, spill_dir=spill_root, lease=float(lease), buffer_cap=int(buffer_cap),
                    handle_signals=False)
    stop = threading.Event()
    task = engine.run_task(_steady(stop))
    report("started", task_id=task.id, instance_id=engine.instance_id)

    def told() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=told, daemon=True).start()
    status = task.wait(CHILD_TIMEOUT)  # told to stop, or stopped by the engine
    record_count = task.info()["record_count"]
    engine.close()
    report("result", status=status, record_count=record_count)


def scenario_hold(db: str) -> None:
    """Hold DuckDB's write lock on `db` until stdin closes."""
    import duckdb

    conn = duckdb.connect(db)
    report("locked")
    sys.stdin.read()
    conn.close()


SCENARIOS = {
    "normal_exit": scenario_normal_exit,
    "sigterm": scenario_sigterm,
    "sigkill": scenario_sigkill,
    "running_then_killed": scenario_running_then_killed,
    "fsize": scenario_fsize,
    "hold": scenario_hold,
    "emit": scenario_emit,
    "log_until_told": scenario_log_until_told,
    "owner": scenario_owner,
}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](*sys.argv[2:])


T0 = datetime(2026, 2, 7, 12, 0, 0, 123456, tzinfo=timezone.utc)


def task_row(task_id: str, status: str = "SUCCESS", plugin: str = "p", ended: datetime | None = T0, **extra) -> dict:
    """A tasks row as the store takes it (Store.write), finished at T0 unless `status` is active."""
    base = {
        "id": task_id, "plugin": plugin, "params": '{"a": 1}', "status": status,
        "created_at": T0 - timedelta(minutes=1), "started_at": T0 - timedelta(seconds=59),
        "finished_at": ended if status not in ("PENDING", "RUNNING") else None,
        "error": None, "progress": None, "progress_message": None, "log_level": None, "record_count": 0,
    }
    base.update(extra)
    return base
