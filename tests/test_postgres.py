"""An Engine whose store is a real PostgreSQL server (tests/postgres.py): tasks, filtered reads, follow,
stats and delete; a restart of the engine; and a database outage in the middle of a task that loses
nothing. (The Store's own contract runs on PostgreSQL too: tests/test_store.py, parameter `postgresql`.)"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from postgres import PostgresServer
from procs import poll, read_db

import nbtasklog

WAIT = 30.0


def backup(params: dict[str, Any], context: Any) -> int:
    """Records from two sources with metadata, a warning and an error, as a backup plugin writes them."""
    api = context.logger.with_source("superset_api")
    for i in range(params["n"]):
        api.info("GET dashboard %d", i, dashboard_id=i, database={"uuid": f"db-{i % 2}"})
        if i % 10 == 9:
            context.logger.warning("dashboard %d is large", i, dashboard_id=i)
    context.logger.error("dashboard 3 failed to export", dashboard_id=3)
    return params["n"]


@pytest.fixture
def engines(tmp_path):
    made: list[nbtasklog.Engine] = []

    def make(url: str, **options: Any) -> nbtasklog.Engine:
        engine = nbtasklog.Engine(url, flush_interval=0.05, spill_dir=tmp_path / "spill", handle_signals=False, **options)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.close(timeout=10)


def test_an_engine_on_postgresql_runs_reads_and_deletes_tasks(postgres, engines):
    """Run a task into PostgreSQL; read it filtered (level, source, text, nested metadata), follow it, count it,
    read it again from a new engine, delete it with every record."""
    url = postgres.new_database()
    engine = engines(url)
    task = engine.run_task(backup, {"n": 30})
    assert task.wait(WAIT) == "SUCCESS" and task.result == 30
    assert engine.flush()
    everything = task.logs()
    assert [r.seq for r in everything] == list(range(1, len(everything) + 1))
    assert len(task.logs(source="superset_api")) == 30
    assert [r.message for r in task.logs(level="WARNING")] == [
        *(f"dashboard {i} is large" for i in (9, 19, 29)), "dashboard 3 failed to export"]
    assert [r.message for r in task.logs(search="DASHBOARD 1")] == [
        "GET dashboard 1", *(f"GET dashboard {i}" for i in range(10, 20)), "dashboard 19 is large"]
    assert [r.metadata["dashboard_id"] for r in task.logs(meta={"database.uuid": "db-1"})] == list(range(1, 30, 2))
    assert [r.message for r in task.logs(meta=["dashboard_id=3"], source="plugin")] == ["dashboard 3 failed to export"]
    assert [r.seq for r in task.follow()] == [r.seq for r in everything]  # a finished task: its history, then the end
    stats = task.stats()
    assert stats["sources"]["superset_api"] == 30 and stats["levels"]["ERROR"] == 1
    assert set(stats["metadata_keys"]) >= {"dashboard_id", "database"}
    engine.close(timeout=10)

    again = engines(url)
    assert again.task(task.id).logs() == everything  # what a restart finds
    again.task(task.id).delete()
    assert read_db(url, "select count(*) from task_logs where task_id = ?", [task.id]) == [(0,)]
    assert read_db(url, "select count(*) from tasks where id = ?", [task.id]) == [(0,)]


def test_a_postgresql_outage_mid_task_loses_nothing(tmp_path):
    """The server stops while a task logs: the records wait (health says why), and once the server is back
    every one is written, in order, exactly once."""
    server = PostgresServer()
    engine = None
    try:
        url = server.init().new_database()
        engine = nbtasklog.Engine(url, flush_interval=0.05, spill_dir=tmp_path / "spill", handle_signals=False)
        half, resume = threading.Event(), threading.Event()

        def job(params: dict[str, Any], context: Any) -> None:
            for i in range(500):
                context.logger.info("record %d", i)
            half.set()
            resume.wait(WAIT)
            for i in range(500, 1000):
                context.logger.info("record %d", i)

        task = engine.run_task(job)
        assert half.wait(WAIT)
        poll(lambda: engine.health().pending == 0, WAIT, "the first half written")
        server.stop()
        resume.set()
        assert task.wait(WAIT) == "SUCCESS"
        health = poll(lambda: (h := engine.health()).last_error and h, WAIT, "the failed write reported")
        assert health.pending >= 500 and "connect" in health.last_error.lower()
        server.start()
        poll(lambda: engine.health().pending == 0, WAIT, "the waiting records written after the outage")
        rows = read_db(url, "select seq, message from task_logs where task_id = ? order by seq", [task.id])
        assert [seq for seq, _ in rows] == list(range(1, 1003))  # started, 1,000 records, succeeded
        assert [message for _, message in rows[1:-1]] == [f"record {i}" for i in range(1000)]
        assert read_db(url, "select status from tasks where id = ?", [task.id]) == [("SUCCESS",)]
    finally:
        if engine is not None:
            engine.close(timeout=10)  # before the server goes: its last writes still have somewhere to go
        server.remove()


def test_the_hostile_corpus_on_postgresql_is_stored_and_persistence_goes_on(postgres, engines):
    """PostgreSQL's text and JSONB hold no NUL (\\x00 / \\u0000): a record carrying one is stored with U+FFFD
    there, and neither it nor anything else in the corpus stops the flusher; a later task stores everything."""
    from hostile import hostile_plugin, only_nbtasklog_on_the_root_logger

    from nbtasklog.record import REPLACEMENT

    engine = engines(postgres.new_database())
    with only_nbtasklog_on_the_root_logger():
        task = engine.run_task(hostile_plugin)
        assert task.wait(WAIT) == "SUCCESS", task.error
    assert engine.flush(), engine.health().last_error
    stored = task.logs()
    assert [r.seq for r in stored] == list(range(1, task.info()["record_count"] + 1))
    messages = [r.message for r in stored]
    assert f"NUL a{REPLACEMENT}b" in messages
    assert any(r.metadata and r.metadata.get("value", {}).get("nul") == f"x{REPLACEMENT}y" for r in stored)
    later = engine.run_task(lambda params, context: [context.logger.info("ok %d", i) for i in range(100)])
    assert later.wait(WAIT) == "SUCCESS"
    assert engine.flush() and engine.health().database_available
    assert len(later.logs()) == 102


def test_a_nul_in_what_a_reader_asks_for_means_what_it_stored(postgres, engines):
    """PostgreSQL refuses a NUL in a query's parameters as in its text: a search, source, metadata value,
    plugin or user holding one (anyone may type it into a URL) was a database error, so a 500. It means
    the U+FFFD the NUL was stored as."""
    from nbtasklog.record import REPLACEMENT

    engine = engines(postgres.new_database())

    def plugin(params: dict[str, Any], context: Any) -> None:
        context.logger.with_source("s\x00rc").info("NUL a\x00b", key="x\x00y")

    task = engine.run_task(plugin, username="u\x00v")
    assert task.wait(WAIT) == "SUCCESS"
    assert engine.flush(), engine.health().last_error
    assert [r.message for r in task.logs(search="a\x00b")] == [f"NUL a{REPLACEMENT}b"]
    assert [r.seq for r in task.logs(source="s\x00rc")] == [2]
    assert [r.seq for r in task.logs(meta={"key": "x\x00y"})] == [2]
    assert [t.id for t in engine.tasks(user="u\x00v")] == [task.id]
    assert engine.store.get_task(task.id)["username"] == f"u{REPLACEMENT}v"
    assert engine.tasks(plugin="p\x00") == []
    assert engine.cleanup("1000d", user="u\x00v") == []
