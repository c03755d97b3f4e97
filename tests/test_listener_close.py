"""Attacks on the shared store: after Engine.close() no listener thread and no listening connection of the engine is
left. The listener is made in LocalControl.on_connect, which runs at the first write that reaches the
database; when that first write is the one close() makes (buffer.stop), it runs after control.close()."""

from __future__ import annotations

import threading
import time
import uuid

import sqlalchemy as sa
from procs import read_db

import nbtasklog


def _listeners() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "nbtasklog-listener" and t.is_alive()]


def test_no_listener_survives_close_when_the_database_answered_only_at_close(postgres, tmp_path):
    before = set(_listeners())
    name = "t_" + uuid.uuid4().hex[:12]
    url = postgres.url(name)  # a database that is not there yet: the engine's first connect fails
    engine = nbtasklog.Engine(url, spill_dir=tmp_path / "spill", flush_interval=30.0, handle_signals=False)
    assert not engine.buffer.connected
    time.sleep(1.0)  # the flusher's retry backoff now waits a while
    admin = sa.create_engine(postgres.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    instance = engine.instance_id
    # The flusher's next retry is ~0.75 s away: the first write that reaches the database is close()'s.
    engine.close(timeout=10)  # buffer.stop's flush connects: on_connect makes a listener after control.close()
    try:
        assert engine.buffer.connected  # close() did reach the database
        time.sleep(1.0)
        left = [t for t in _listeners() if t not in before]
        sessions = read_db(url, "select count(*) from pg_stat_activity where application_name = ?",
                           [f"nbtasklog listener {instance}"])
        assert left == [] and sessions == [(0,)], (left, sessions)
    finally:
        if engine.control.listener is not None:  # leave the session clean for the other tests
            engine.control.listener.close()
