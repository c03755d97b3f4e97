"""Two engines on one PostgreSQL store hear what the other changes (store/events.py): a task's records while
it runs, the task list (created, changed, deleted: no ghost), the settings (and the running tasks they
set), a cancel asked of the owner; and after the listener lost its connection, what it missed is read
again. Each engine has its own instance id, spill folder and listening connection, as two servers do."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any

import pytest
from procs import poll, read_db

import nbtasklog
from nbtasklog.errors import UnknownTaskError
from nbtasklog.record import LogRecord
from nbtasklog.store.events import MAX_PAYLOAD, _payloads

WAIT = 20.0  # bound of every wait below; each happens within a second or two when it works


@pytest.fixture
def pair(pg_engines) -> tuple[nbtasklog.Engine, nbtasklog.Engine]:
    # A writes its records only every 30 s unless someone follows its task: what B sees sooner came by
    # the watch and the notice.
    return pg_engines("a", flush_interval=30.0), pg_engines("b", flush_interval=0.05)


def _status(engine: nbtasklog.Engine, task_id: str) -> str | None:
    """The task's status as `engine` sees it, None while it does not know the task."""
    try:
        return engine.task_info(task_id)["status"]
    except UnknownTaskError:
        return None


def _until_released(gate: threading.Event, level: str = "info"):
    def plugin(params: dict[str, Any], context: Any) -> int:
        n = 0
        while not gate.wait(0.002):
            context.check_cancelled()
            n += 1
            getattr(context.logger, level)("record %d", n, n=n)
        return n

    return plugin


def test_a_follower_on_another_engine_gets_the_records_while_the_task_runs(pair):
    """B follows A's running task: B's wish reaches A, which writes sooner, and each write wakes B's reader
    (its own store poll is a minute), so records arrive while the task runs; at the end B has handed out
    every record once, in order, as stored."""
    a, b = pair
    gate = threading.Event()
    task = a.run_task(_until_released(gate))
    poll(lambda: _status(b, task.id) == "RUNNING", WAIT, "A's task RUNNING in the store")
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.extend(r.seq for r in b.follow(task.id, poll=60.0)), daemon=True)
    reader.start()
    try:
        poll(lambda: len(seen) > 50, WAIT, "records of A's running task at B")
        assert a.task(task.id).info()["status"] == "RUNNING"
    finally:
        gate.set()
    task.wait(WAIT)
    reader.join(WAIT)
    assert not reader.is_alive()
    stored = [r.seq for r in a.logs(task.id)]
    assert seen == stored == list(range(1, len(stored) + 1))


def test_task_list_changes_reach_the_other_engine_and_a_delete_leaves_no_ghost(pair):
    """B hears A's task appear, run and end; A hears B delete it, and then neither lists nor knows it."""
    a, b = pair
    heard_at_b: list[dict[str, Any]] = []
    heard_at_a: list[dict[str, Any]] = []
    b.on_task_change(heard_at_b.append)
    a.on_task_change(heard_at_a.append)
    gate = threading.Event()
    task = a.run_task(_until_released(gate))
    poll(lambda: any(r["id"] == task.id and r.get("status") == "RUNNING" for r in heard_at_b), WAIT, "RUNNING heard at B")
    gate.set()
    task.wait(WAIT)
    poll(lambda: any(r["id"] == task.id and r.get("status") == "SUCCESS" for r in heard_at_b), WAIT, "SUCCESS heard at B")
    b.delete_task(task.id)
    poll(lambda: {"id": task.id, "deleted": True} in heard_at_a, WAIT, "the delete heard at A")
    assert task.id not in [t.id for t in a.tasks()]
    with pytest.raises(UnknownTaskError):
        a.task_info(task.id)


def test_settings_changed_on_one_engine_apply_on_the_other_and_its_running_tasks(pair):
    """A sets task_log_level DEBUG: B's settings say so, and B's running task stores DEBUG records from then."""
    a, b = pair
    gate = threading.Event()
    task = b.run_task(_until_released(gate, "debug"))
    try:
        a.update_settings(task_log_level="DEBUG")
        a.flush()
        poll(lambda: b.settings.task_log_level == nbtasklog.Level.DEBUG, WAIT, "DEBUG at B")
        poll(lambda: len(b.logs(task.id, level="DEBUG")) > 10, WAIT, "DEBUG records of B's running task")
    finally:
        gate.set()
    task.wait(WAIT)
    assert a.settings.task_log_level == nbtasklog.Level.DEBUG


def test_a_cancel_asked_on_the_other_engine_stops_the_task(pair):
    """B cancels the task A runs: A hears the request and cancels it; both then see CANCELLED."""
    a, b = pair
    task = a.run_task(_until_released(threading.Event()))
    poll(lambda: _status(b, task.id) == "RUNNING", WAIT, "A's task RUNNING in the store")
    assert b.cancel(task.id) is True
    task.wait(WAIT)
    assert a.task(task.id).info()["status"] == "CANCELLED"
    a.flush()
    poll(lambda: b.task(task.id).info()["status"] == "CANCELLED", WAIT, "CANCELLED at B")


def test_a_cancel_asked_on_the_other_engine_reaches_the_kernel_whose_task_a_ingests(pair):
    """A kernel's task, which A only ingests: B's cancel is heard by A, which tells the kernel in the answer
    to its next ingest (the kernel is this test: it calls A.ingest as A's ingest handler would)."""
    a, b = pair
    task_id = "kernel-task-cancelled-from-b"
    created = datetime.now(timezone.utc)
    row = {"id": task_id, "plugin": "notebook_plugin", "params": "{}", "status": "RUNNING", "created_at": created,
           "started_at": created, "record_count": 1}
    record = LogRecord(task_id, 1, 1_700_000_000_000_001, "INFO", "plugin", "first", None)
    assert a.ingest([row], [record])["cancel"] == []
    assert a.flush()
    assert b.cancel(task_id) is True
    later = LogRecord(task_id, 2, 1_700_000_000_000_002, "INFO", "plugin", "second", None)
    poll(lambda: a.ingest([], [later])["cancel"] == [task_id], WAIT, "the cancel in A's answer to the kernel")


def test_a_cancel_request_is_kept_for_an_owner_that_missed_its_notice(pair):
    """A request whose notice A did not hear (no listener) still reaches A: its heartbeat reads the row."""
    a, b = pair
    a.control.listener.close()
    task = a.run_task(_until_released(threading.Event()))
    a.flush()
    assert b.cancel(task.id) is True
    a.control._next_beat = 0.0  # the next maintenance second beats
    task.wait(WAIT)
    assert a.task(task.id).info()["status"] == "CANCELLED"


def test_a_listener_whose_connection_was_cut_listens_again(pair):
    """B's listening backend is terminated (as by a database restart): B connects again and hears A's next change."""
    a, b = pair
    url = b.store.url.render_as_string(hide_password=False)
    name = f"nbtasklog listener {b.instance_id}"
    listening = "select pid from pg_stat_activity where application_name = ?"
    (pid,), = read_db(url, listening, [name])
    read_db(url, "select pg_terminate_backend(?)", [pid])
    poll(lambda: [r[0] for r in read_db(url, listening, [name])] not in ([], [pid]) and b.control.listener.listening.is_set(),
         WAIT, "B listening on a new connection")
    a.update_settings(task_log_level="ERROR")
    a.flush()
    poll(lambda: b.settings.task_log_level == nbtasklog.Level.ERROR, WAIT, "ERROR at B")


def test_on_connecting_again_an_engine_reads_what_it_missed(pair):
    """What changed while B was not listening (here: A's settings) is read when B listens again, though
    no notice of it ever reaches B."""
    a, b = pair
    b.control.listener.close()  # deaf while A changes a setting
    a.update_settings(task_log_level="WARNING")
    a.flush()
    assert b.settings.task_log_level == nbtasklog.Level.INFO
    b.control.listener = b.store.listen(b.control._heard, b.control._missed)
    poll(lambda: b.settings.task_log_level == nbtasklog.Level.WARNING, WAIT, "WARNING at B after listening again")


def test_a_large_event_goes_in_parts_each_within_postgresqls_limit():
    """A write touching thousands of tasks is told in several notices, none past the payload limit, and
    together they name every task and range."""
    import json

    logs = {f"task-{i:06d}-{'x' * 20}": (i, i + 10) for i in range(3000)}
    payloads = list(_payloads("me", [("l", item) for item in logs.items()] + [("d", "gone")]))
    assert len(payloads) > 1
    assert all(len(p.encode()) < MAX_PAYLOAD + 200 for p in payloads)
    events = [json.loads(p) for p in payloads]
    assert all(e["o"] == "me" for e in events)
    told = {k: tuple(v) for e in events for k, v in e.get("l", {}).items()}
    assert told == logs
    assert [i for e in events for i in e.get("d", [])] == ["gone"]
