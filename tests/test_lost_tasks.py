"""Attacks on the shared store: a task taken from its owner while it still runs there (marked INTERRUPTED by
another process, then maybe deleted): the owner stops it, sends no later row, forgets its own state and
shows what the store says, as every other process does: no ghost of a deleted task, no CANCELLED beside
the store's INTERRUPTED.

How a task still running here can be deleted elsewhere: its owner was silent past its lease (a pause, a
network cut), another process marked it INTERRUPTED (mark_interrupted below is what Store.recover does), and a
user deleted it there, as a finished task may be."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from postgres import mark_interrupted
from procs import poll, read_db

from nbtasklog.errors import UnknownTaskError

WAIT = 20.0


def test_a_task_deleted_elsewhere_while_it_still_runs_here_leaves_no_ghost(pg_url, pg_engines):
    a = pg_engines("a", flush_interval=0.05)
    b = pg_engines("b", flush_interval=0.05)
    gate = threading.Event()

    def plugin(params: dict[str, Any], context: Any) -> None:
        while not gate.wait(0.002):
            context.check_cancelled()

    try:
        task = a.run_task(plugin)
        poll(lambda: read_db(pg_url, "select status from tasks where id = ?", [task.id]) == [("RUNNING",)],
             WAIT, "RUNNING in the store")
        mark_interrupted(pg_url, task.id)  # A's lease ran out: another process marked the task
        b.delete_task(task.id)  # a user on B deletes the INTERRUPTED task
        poll(lambda: a.runner.get(task.id) is None, WAIT, "A to stop the task and forget it")
        a.flush()
        assert read_db(pg_url, "select count(*) from tasks where id = ?", [task.id]) == [(0,)]
        with pytest.raises(UnknownTaskError):
            b.task_info(task.id)
        assert task.id not in [t.id for t in a.tasks()], "A still lists the task deleted elsewhere"
        with pytest.raises(UnknownTaskError):
            a.task_info(task.id)
    finally:
        gate.set()


def test_a_task_marked_interrupted_elsewhere_is_shown_the_same_on_both_servers(pg_url, pg_engines):
    """The same start without the delete: A stops the task (lost_tasks), which ends CANCELLED here; its final
    row is refused, so the store and B say INTERRUPTED while A's runner state says CANCELLED, for good."""
    a = pg_engines("a", flush_interval=0.05, wait_listening=False)
    b = pg_engines("b", flush_interval=0.05, wait_listening=False)
    gate = threading.Event()

    def plugin(params: dict[str, Any], context: Any) -> None:
        while not gate.wait(0.002):
            context.check_cancelled()

    try:
        task = a.run_task(plugin)
        poll(lambda: read_db(pg_url, "select status from tasks where id = ?", [task.id]) == [("RUNNING",)],
             WAIT, "RUNNING in the store")
        mark_interrupted(pg_url, task.id)
        a.control._next_beat = 0.0  # A's heartbeat no longer renews it: lost_tasks
        task.wait(WAIT)
        a.flush()
        assert b.task_info(task.id)["status"] == "INTERRUPTED"
        assert a.task_info(task.id)["status"] == b.task_info(task.id)["status"]
    finally:
        gate.set()
