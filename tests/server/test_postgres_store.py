"""The server extension on a PostgreSQL store (db_url = a postgresql:// URL, an ordinary role): tasks, the
filtered log and its stats, the live stream, analyst SQL and delete all go through REST as on DuckDB."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import assert_error, read_until
from .test_rest import levels_task


@pytest.fixture
def nbtasklog_config(postgres: Any) -> dict[str, Any]:
    return {"db_url": postgres.new_database(role="analyst").replace("+psycopg", "")}  # driverless, as users write it


async def test_the_rest_api_on_a_postgresql_store(api, start, finished, sockets, engine):
    """Run a task into PostgreSQL and use every read of the API on it."""
    assert engine.store.url.drivername == "postgresql+psycopg"
    task = await levels_task(start, finished)
    records = (await api("tasks", task, "logs")).json()["records"]
    assert [r["seq"] for r in records] == list(range(1, 8))
    warning_up = (await api("tasks", task, "logs", params={"level": "WARNING"})).json()["records"]
    assert [r["message"] for r in warning_up] == ["warning cherry", "error durian", "db error elderberry"]
    assert [r["seq"] for r in (await api("tasks", task, "logs", params={"source": "db"})).json()["records"]] == [6]
    assert [r["seq"] for r in (await api("tasks", task, "logs", params={"search": "BANANA"})).json()["records"]] == [3]
    by_meta = (await api("tasks", task, "logs", params={"meta.nested.k": "x", "level": "DEBUG"})).json()["records"]
    assert [r["seq"] for r in by_meta] == [3]
    stats = (await api("tasks", task, "logs", "stats")).json()
    assert stats["levels"] == {"DEBUG": 1, "INFO": 3, "WARNING": 1, "ERROR": 2}
    ws = await sockets("tasks", task, "logs", "stream", params={"level": "ERROR"})
    streamed = [r for m in await read_until(ws, lambda m: m.get("type") == "end") for r in m.get("records", [])]
    assert [r["seq"] for r in streamed] == [5, 6]
    query = f"SELECT level, count(*) AS n FROM task_logs WHERE task_id = '{task}' GROUP BY level ORDER BY level"
    body = (await api("sql", method="POST", body={"query": query})).json()
    assert body["rows"] == [["DEBUG", 1], ["ERROR", 2], ["INFO", 3], ["WARNING", 1]]
    assert_error(await api("sql", method="POST", body={"query": "DELETE FROM task_logs"}), 400, "read-only")
    assert (await api("tasks", task, method="DELETE")).code == 204
    assert_error(await api("tasks", task, "logs"), 404, task)
