"""Attacks on the shared store: after a gap in listening (a database restart, a cut connection) the listener calls
on_gap, and LocalControl._missed reads again only the settings and the followed tasks' records. A delete
made elsewhere during the gap is never learnt: the runner keeps the finished task's state for the life of
the process, so this server lists it and answers for it (a ghost), while the store and every other server
have no such task."""

from __future__ import annotations

import pytest
from procs import poll, read_db

from nbtasklog.errors import UnknownTaskError
from nbtasklog.store import events

WAIT = 20.0


# monkeypatch before pg_engines: _RETRY is restored only after the engines are closed.
def test_a_delete_made_while_the_listener_was_away_leaves_no_ghost(monkeypatch, pg_url, pg_engines):
    monkeypatch.setattr(events, "_RETRY", (3.0, 30.0))  # A's listener waits 3 s before it connects again
    a = pg_engines("a", flush_interval=0.05)
    b = pg_engines("b", flush_interval=0.05)
    task = a.run_task(lambda params, context: context.logger.info("hi"))
    assert task.wait(WAIT) == "SUCCESS"
    assert a.flush()
    name = f"nbtasklog listener {a.instance_id}"
    (pid,), = read_db(pg_url, "select pid from pg_stat_activity where application_name = ?", [name])
    read_db(pg_url, "select pg_terminate_backend(?)", [pid])  # as a database restart does
    poll(lambda: not a.control.listener.listening.is_set(), WAIT, "A not listening")
    b.delete_task(task.id)  # during A's gap
    poll(lambda: a.control.listener.listening.is_set(), WAIT, "A listening again")
    assert read_db(pg_url, "select count(*) from tasks where id = ?", [task.id]) == [(0,)]
    assert task.id not in [t.id for t in b.tasks()]
    assert task.id not in [t.id for t in a.tasks()], "A still lists the task deleted during its gap"
    with pytest.raises(UnknownTaskError):
        a.task_info(task.id)
