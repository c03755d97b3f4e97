"""Analyst SQL cannot change state through functions its read-only transaction lets through: on a real DuckDB
file (checkpoints, DuckDB's own log, SQL run from text, sequences, the random seed) and on a real PostgreSQL
server (session advisory locks, other sessions' queries, the random seed, SQL run from text)."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine

from nbtasklog.store.store import SQLError, Store


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "store.duckdb")
    yield store
    store.close()


def rows(store: Store, query: str) -> list[dict]:
    return store.sql(query, max_rows=100, timeout=5)[0].to_pylist()


# Each refused whatever way it is written: qualified, in another case, as a method, deep in a subquery, explained.
DUCKDB_REFUSED = {
    "SELECT * FROM checkpoint()": "checkpoint",
    "SELECT * FROM force_checkpoint()": "force_checkpoint",
    "SELECT * FROM enable_logging(['QueryLog'])": "enable_logging",
    "SELECT * FROM disable_logging()": "disable_logging",
    "SELECT * FROM truncate_duckdb_logs()": "truncate_duckdb_logs",
    "SELECT * FROM query('SELECT 42')": "query",
    "SELECT * FROM query_table('tasks')": "query_table",
    "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))": "json_execute_serialized_sql",
    "SELECT * FROM enable_profiling()": "enable_profiling",
    "SELECT nextval('task_logs_id_seq')": "nextval",
    "SELECT setval('task_logs_id_seq', 7)": "setval",
    "SELECT setseed(0.5)": "setseed",
    "SELECT write_log('hello')": "write_log",
    "SELECT * FROM system.main.CheckPoint()": "checkpoint",
    "SELECT (0.5).SETSEED()": "setseed",
    'SELECT "setseed"(0.5)': "setseed",
    "SELECT * FROM tasks WHERE id IN (SELECT id FROM query_table('tasks'))": "query_table",
    "WITH c AS (SELECT * FROM checkpoint()) SELECT * FROM c": "checkpoint",
    "SELECT * FROM range(3) r, LATERAL (SELECT setseed(0.1) AS s)": "setseed",
    "SELECT [x FOR x IN [1, 2] IF setseed(0.1) IS NULL]": "setseed",
    "EXPLAIN SELECT * FROM checkpoint()": "checkpoint",
    "EXPLAIN ANALYZE SELECT * FROM enable_logging(['QueryLog'])": "enable_logging",
    "/* note */ EXPLAIN (FORMAT json) SELECT setseed(0.5)": "setseed",
    "DESCRIBE SELECT * FROM query('SELECT 1')": "query",
}


@pytest.mark.parametrize("query, function", DUCKDB_REFUSED.items(), ids=list(DUCKDB_REFUSED))
def test_duckdb_refuses_state_changing_functions_naming_them(store, query, function):
    """Each is refused with an SQLError that names the function; and none of them ran."""
    logging_before = rows(store, "SELECT current_setting('enable_logging') AS on")
    with pytest.raises(SQLError, match=rf"\b{function}\b.* not allowed in analyst SQL"):
        store.sql(query, max_rows=10, timeout=5)
    assert rows(store, "SELECT current_setting('enable_logging') AS on") == logging_before
    assert rows(store, "SELECT count(*) AS n FROM duckdb_logs") == [{"n": 0}]


@pytest.mark.parametrize("query", [
    "SELECT * FROM range(3)", "SELECT * FROM generate_series(1, 3)", "SELECT * FROM unnest([1, 2, 3])",
    "SELECT key FROM json_each('{\"a\": 1}')", "SELECT count(*) FROM json_tree('[1, [2]]')",
    "SELECT count(*) FROM duckdb_tables()", "SELECT count(*) FROM duckdb_columns() WHERE table_name = 'task_logs'",
    "SELECT count(*) FROM duckdb_functions()", "SELECT count(*) FROM duckdb_settings()", "SELECT * FROM pragma_version()",
    "SELECT count(*) FROM pragma_table_info('task_logs')", "SELECT count(*) FROM test_all_types()",
    "SELECT count(*) FROM information_schema.columns", "SELECT random() < 2, uuid() IS NOT NULL, currval IS NULL "
    "FROM (SELECT NULL AS currval)", "DESCRIBE task_logs", "SUMMARIZE SELECT 1 AS a", "SHOW TABLES",
    "EXPLAIN SELECT count(*) FROM task_logs", "EXPLAIN ANALYZE SELECT count(*) FROM range(10)",
    "FROM range(3) SELECT range * 2", "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
    "SELECT * FROM r", "SELECT list_transform([1, 2], lambda x: x + 1)",
])
def test_duckdb_allows_read_only_functions(store, query):
    """Generators, JSON, the catalog views that only read, DESCRIBE, SUMMARIZE, SHOW and EXPLAIN still answer."""
    assert store.sql(query, max_rows=100, timeout=5)[0].num_rows >= 1


# ---- PostgreSQL -------------------------------------------------------------------------------------------
PG_REFUSED = {
    "SELECT pg_advisory_lock(42)": "pg_advisory_lock",
    "SELECT pg_try_advisory_lock(42)": "pg_try_advisory_lock",
    "SELECT pg_advisory_lock_shared(42)": "pg_advisory_lock_shared",
    "SELECT pg_advisory_xact_lock(42)": "pg_advisory_xact_lock",
    'SELECT "pg_advisory_lock"(42)': "pg_advisory_lock",
    "SELECT PG_CATALOG.PG_ADVISORY_LOCK (42)": "pg_advisory_lock",
    "SELECT * FROM pg_advisory_lock/* hidden */(42)": "pg_advisory_lock",
    "EXPLAIN ANALYZE SELECT pg_advisory_lock(42)": "pg_advisory_lock",
    "SELECT pg_cancel_backend(pid) FROM pg_stat_activity": "pg_cancel_backend",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity": "pg_terminate_backend",
    "SELECT setseed(0.5)": "setseed",
    "SELECT query_to_xml('SELECT pg_advisory_lock(42)', true, true, '')": "query_to_xml",
    "SELECT query_to_xml(concat('SELECT pg_advis', 'ory_lock(42)'), true, true, '')": "query_to_xml",
    "SELECT ts_stat('SELECT to_tsvector(''a'')')": "ts_stat",
}


@pytest.fixture(scope="module")
def pg_store(postgres):
    """A store on its own database of the session's PostgreSQL server, as an ordinary role (no file rights)."""
    store = Store(postgres.new_database(role="analyst"))
    yield store
    store.close()


@pytest.mark.parametrize("query, function", PG_REFUSED.items(), ids=list(PG_REFUSED))
def test_postgresql_refuses_functions_that_outlive_or_reach_past_the_transaction(pg_store, postgres, query, function):
    """Session advisory locks outlive the rollback, cancelling or ending backends reaches other sessions (the
    flusher's too), setseed outlives the rollback, query_to_xml and ts_stat run SQL text: refused, naming the function."""
    with pytest.raises(SQLError, match=rf"\b{function}\b.* not allowed in analyst SQL"):
        pg_store.sql(query, max_rows=10, timeout=5)
    admin = create_engine(postgres.url())
    try:
        with admin.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").scalar() == 0
    finally:
        admin.dispose()


def test_postgresql_refuses_unicode_escaped_names(pg_store):
    """U&"..." can spell any name without writing it: refused."""
    with pytest.raises(SQLError, match="Unicode escapes"):
        pg_store.sql('SELECT U&"pg\\005fadvisory\\005flock"(42)', max_rows=10, timeout=5)


def test_postgresql_already_refuses_writes_to_sequences_and_undoes_settings(pg_store):
    """The read-only transaction refuses nextval and setval itself; set_config (even for the session) is undone by
    the rollback that ends every analyst query, so it stays allowed."""
    for query in ("SELECT nextval('task_logs_id_seq')", "SELECT setval('task_logs_id_seq', 7)"):
        with pytest.raises(SQLError, match="read-only"):
            pg_store.sql(query, max_rows=10, timeout=5)
    for _ in range(3):  # the pool has several connections: none keeps the setting
        assert rows(pg_store, "SELECT set_config('application_name', 'changed', false) AS v") == [{"v": "changed"}]
    with pg_store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT current_setting('application_name')").scalar() != "changed"
    assert rows(pg_store, "SELECT count(*) AS n FROM tasks") == [{"n": 0}]
