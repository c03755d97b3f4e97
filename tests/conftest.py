"""Shared fixtures: a real engine on a DuckDB file in tmp_path, a private plugin registry, a run helper."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import nbtasklog
from nbtasklog import belief
from nbtasklog.plugins import Registry

pytest_plugins = ["servers"]  # make_server: real `jupyter server` subprocesses (tests/servers.py)

TIMEOUT = 15.0  # bound for every wait on a task; none should come near it


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
