"""Shared fixtures: a real engine on a DuckDB file in tmp_path, engines sharing a PostgreSQL store, a private
plugin registry, a run helper."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from procs import poll

import nbtasklog
from nbtasklog import belief
from nbtasklog.plugins import Registry

pytest_plugins = ["servers"]  # make_server: real `jupyter server` subprocesses (tests/servers.py)

TIMEOUT = 15.0  # bound for every wait on a task; none should come near it
LISTENING_TIMEOUT = 20.0  # bound for an engine's listener to listen; it does within a second or two


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The DuckDB file the `engine` fixture uses (a real file, never :memory:)."""
    return tmp_path / "logs.duckdb"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Any]:
    """A PostgreSQL server of the test session (tests/postgres.py), started when first asked for."""
    from postgres import PostgresServer

    server = PostgresServer()
    try:
        yield server.init()
    finally:
        server.remove()


@pytest.fixture
def pg_url(postgres: Any) -> str:
    """A new, empty database on the session's PostgreSQL server: the store `pg_engines` opens."""
    return postgres.new_database()


@pytest.fixture
def pg_engines(pg_url: str, tmp_path: Path) -> Iterator[Callable[..., nbtasklog.Engine]]:
    """`make(name, wait_listening=True, **options) -> Engine`: an engine on `pg_url` with its own spill folder
    tmp_path/name, as one of several servers on a store; returned once its listener listens unless told not
    to wait. All are closed at teardown, the last made first; global toggles restored."""
    app_level = logging.getLogger("nbtasklog").level
    made: list[nbtasklog.Engine] = []

    def make(name: str, *, wait_listening: bool = True, **options: Any) -> nbtasklog.Engine:
        engine = nbtasklog.Engine(pg_url, spill_dir=tmp_path / name, handle_signals=False, **options)
        made.append(engine)
        if wait_listening:
            poll(lambda: engine.control.listener is not None and engine.control.listener.listening.is_set(),
                 LISTENING_TIMEOUT, f"{name} listening")
        return engine

    yield make
    for engine in reversed(made):
        engine.close()
    # Settings changes touch process-wide state (belief_scope's app toggle, the app logger level).
    belief.app_enabled = True
    logging.getLogger("nbtasklog").setLevel(app_level)


@pytest.fixture
def fresh_registry() -> Registry:
    """An empty plugin registry (entry points still load on first lookup), so tests do not share names."""
    return Registry()


@pytest.fixture
def engine(db_path: Path) -> Iterator[nbtasklog.Engine]:
    """An engine on tmp_path/logs.duckdb with short flushes; closed at teardown, global toggles restored."""
    app_level = logging.getLogger("nbtasklog").level
    eng = nbtasklog.Engine(db_path, flush_interval=0.05, handle_signals=False)
    try:
        yield eng
    finally:
        eng.close(timeout=5)
        # Settings changes touch process-wide state (belief_scope's app toggle, the app logger level).
        belief.app_enabled = True
        logging.getLogger("nbtasklog").setLevel(app_level)


@pytest.fixture
def open_root_logger() -> Iterator[None]:
    """Root logger level NOTSET for the test (restored after), so stdlib INFO/DEBUG calls reach the task handler.

    nbtasklog lowers the root level itself only when logging is unconfigured, and under pytest the
    root logger always has pytest's capture handlers: this stands for a user who configured logging.
    """
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.NOTSET)
    try:
        yield
    finally:
        root.setLevel(level)


@pytest.fixture
def run(engine: nbtasklog.Engine) -> Callable[..., nbtasklog.Task]:
    """`run(plugin, params=None, **options)`: start a task on `engine`, wait for it, return the Task."""

    def run_task(plugin: Any, params: dict[str, Any] | None = None, **options: Any) -> nbtasklog.Task:
        task = engine.run_task(plugin, params, **options)
        task.wait(TIMEOUT)
        return task

    return run_task
