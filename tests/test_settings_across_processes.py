"""Attacks on the shared store: SettingsManager.load(stored, pending) skips the settings still queued here, but `stored`
was read before load() takes its lock. A change made here and written in between (update_settings, then
the flusher's write) is no longer pending when load() looks, so the older stored value replaces it; and
this process's own write is never told back to it (its own notices are dropped), so it stays wrong,
while every other server has the new value."""

from __future__ import annotations

import threading

import pytest
from procs import poll

import nbtasklog

WAIT = 20.0


@pytest.fixture
def pair(pg_engines) -> tuple[nbtasklog.Engine, nbtasklog.Engine]:
    return pg_engines("a", flush_interval=0.05), pg_engines("b", flush_interval=0.05)


def test_a_change_made_here_while_a_notice_is_handled_is_not_undone(pair, monkeypatch):
    a, b = pair
    a.update_settings(task_log_level="ERROR")
    assert a.flush()
    poll(lambda: b.settings.task_log_level == nbtasklog.Level.ERROR, WAIT, "ERROR at B")

    read = threading.Event()
    release = threading.Event()
    real = a.store.load_settings

    def load_settings() -> dict[str, str]:
        stored = real()
        if threading.current_thread().name == "nbtasklog-listener" and not read.is_set():
            read.set()
            release.wait(3.0)  # the listener thread is descheduled between its read and load()'s lock
        return stored

    monkeypatch.setattr(a.store, "load_settings", load_settings)
    b.update_settings(log_level="WARNING")  # any settings write elsewhere: A hears "s" and reads them
    assert b.flush()
    assert read.wait(WAIT)
    a.update_settings(task_log_level="DEBUG")  # meanwhile, on A
    assert a.flush()  # written: no longer pending at A
    release.set()
    poll(lambda: b.settings.task_log_level == nbtasklog.Level.DEBUG, WAIT, "DEBUG at B")
    poll(lambda: a.settings.log_level == nbtasklog.Level.WARNING, WAIT, "B's change at A")
    # The store and B say DEBUG; A must too.
    assert a.store.load_settings()["task_log_level"] == "DEBUG"
    assert a.settings.task_log_level == nbtasklog.Level.DEBUG
