"""Attacks on the shared store: a task taken from its owner while it still runs there (marked INTERRUPTED by
another process, then maybe deleted): the owner stops it, sends no later row, forgets its own state and
shows what the store says, as every other process does: no ghost of a deleted task, no CANCELLED beside
the store's INTERRUPTED.

How a task still running here can be deleted elsewhere: its owner was silent past its lease (a pause, a
network cut), another process marked it INTERRUPTED (the UPDATE below is what Store.recover does), and a user
deleted it there, as a finished task may be."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy
from procs import poll, read_db

import nbtasklog
from nbtasklog.errors import UnknownTaskError

WAIT = 20.0


def test_a_task_deleted_elsewhere_while_it_still_runs_here_leaves_no_ghost(postgres, tmp_path):
    url = postgres.new_database()
    a = nbtasklog.Engine(url, spill_dir=tmp_path / "a", flush_interval=0.05, handle_signals=False)
    b = nbtasklog.Engine(url, spill_dir=tmp_path / "b", flush_interval=0.05, handle_signals=False)
    gate = threading.Event()

    def plugin(params: dict[str, Any], context: Any) -> None:
        while not gate.wait(0.002):
            context.check_cancelled()

    try:
        for engine in (a, b):
            poll(lambda: engine.control.listener is not None and engine.control.listener.listening.is_set(),
                 WAIT, "listening")
        task = a.run_task(plugin)
        poll(lambda: read_db(url, "select status from tasks where id = ?", [task.id]) == [("RUNNING",)],
             WAIT, "RUNNING in the store")
        db = sqlalchemy.create_engine(url)
        with db.begin() as conn:  # A's lease ran out: another process marked the task (Store.recover)
            conn.exec_driver_sql("update tasks set status = 'INTERRUPTED', finished_at = now() where id = %s",
                                 (task.id,))
        db.dispose()
        b.delete_task(task.id)  # a user on B deletes the INTERRUPTED task
        poll(lambda: a.runner.get(task.id) is None, WAIT, "A to stop the task and forget it")
        a.flush()
        assert read_db(url, "select count(*) from tasks where id = ?", [task.id]) == [(0,)]
        with pytest.raises(UnknownTaskError):
            b.task_info(task.id)
        assert task.id not in [t.id for t in a.tasks()], "A still lists the task deleted elsewhere"
        with pytest.raises(UnknownTaskError):
            a.task_info(task.id)
    finally:
        gate.set()
        b.close()
        a.close()


def test_a_task_marked_interrupted_elsewhere_is_shown_the_same_on_both_servers(postgres, tmp_path):
    """The same start without the delete: A stops the task (lost_tasks), which ends CANCELLED here; its final
    row is refused, so the store and B say INTERRUPTED while A's runner state says CANCELLED, for good."""
    url = postgres.new_database()
    a = nbtasklog.Engine(url, spill_dir=tmp_path / "a", flush_interval=0.05, handle_signals=False)
    b = nbtasklog.Engine(url, spill_dir=tmp_path / "b", flush_interval=0.05, handle_signals=False)
    gate = threading.Event()

    def plugin(params: dict[str, Any], context: Any) -> None:
        while not gate.wait(0.002):
            context.check_cancelled()

    try:
        task = a.run_task(plugin)
        poll(lambda: read_db(url, "select status from tasks where id = ?", [task.id]) == [("RUNNING",)],
             WAIT, "RUNNING in the store")
        db = sqlalchemy.create_engine(url)
        with db.begin() as conn:
            conn.exec_driver_sql("update tasks set status = 'INTERRUPTED', finished_at = now() where id = %s",
                                 (task.id,))
        db.dispose()
        a.control._next_beat = 0.0  # A's heartbeat no longer renews it: lost_tasks
        task.wait(WAIT)
        a.flush()
        assert b.task_info(task.id)["status"] == "INTERRUPTED"
        assert a.task_info(task.id)["status"] == b.task_info(task.id)["status"]
    finally:
        gate.set()
        b.close()
        a.close()
