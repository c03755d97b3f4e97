"""The schema moves by migrations: a store written by release 0.1.0 (fixtures made with that release: a
DuckDB file and a PostgreSQL dump) opens after an upgrade with every task and record as it was, and a
store newer than this code is refused with an error that says so."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import sqlalchemy
from procs import read_db

from nbtasklog import make_filter
from nbtasklog.store import migrate, schema
from nbtasklog.store.migrate import StoreVersionError
from nbtasklog.store.store import Store

FIXTURES = Path(__file__).with_name("fixtures")
LEFT_RUNNING = "20261201T000000000000-deadbeef"  # a task its 0.1.0 process left RUNNING when it died


@pytest.fixture(params=["duckdb", "postgresql"])
def old_store(request, tmp_path):
    """The URL or path of a store as release 0.1.0 left it."""
    if request.param == "duckdb":
        path = tmp_path / "store.duckdb"
        with gzip.open(FIXTURES / "store-0.1.0.duckdb.gz") as source, open(path, "wb") as target:
            shutil.copyfileobj(source, target)
        return path
    server = request.getfixturevalue("postgres")
    url = server.new_database()
    database = sqlalchemy.make_url(url).database
    command = [str(server.bin / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", str(server.home), "-U", "postgres",
               "-d", database, "-f", str(FIXTURES / "store-0.1.0-postgresql.sql")]
    if server.as_root:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return url


def test_a_0_1_0_store_upgrades_in_place_and_keeps_everything(old_store):
    """Tasks, records (with metadata), settings survive the upgrade; the new columns are there; the task
    0.1.0 left RUNNING has no owner, so the first engine's recovery marks it INTERRUPTED."""
    before = read_db(old_store, "select task_id, seq, level, source, message, metadata from task_logs order by task_id, seq")
    assert len(before) > 20
    store = Store(old_store)
    try:
        tasks = {t["id"]: t for t in store.list_tasks()}
        assert sorted(t["status"] for t in tasks.values()) == ["FAILED", "RUNNING", "SUCCESS"]
        success = next(t for t in tasks.values() if t["status"] == "SUCCESS")
        records = store.query_logs(success["id"], make_filter())
        assert [r.seq for r in records] == list(range(1, len(records) + 1))
        assert len(store.query_logs(success["id"], make_filter(meta={"database.uuid": "db-1"}))) == 10
        assert store.load_settings() == {"task_log_level": "DEBUG"}
        instance = {"id": "new", "kind": "server", "host": "h", "pid": 1, "started_at": success["created_at"]}
        assert store.recover(instance, lease=60) == [LEFT_RUNNING]
        assert store.get_task(LEFT_RUNNING)["status"] == "INTERRUPTED"
    finally:
        store.close()
    after = read_db(old_store, "select task_id, seq, level, source, message, metadata from task_logs order by task_id, seq")
    assert _parsed(after) == _parsed(before)
    assert read_db(old_store, "select version_num from alembic_version") == [(migrate.head(),)]


def _columns(target) -> dict[str, list[str]]:
    """Each of schema.py's tables, its columns in the store as the migrations made them."""
    return {table.name: sorted(name for (name,) in read_db(
        target, "select column_name from information_schema.columns where table_name = ?", [table.name]))
        for table in schema.metadata.sorted_tables}


def test_the_migrations_make_the_tables_queries_are_written_against(old_store, tmp_path, request):
    """A new store and an upgraded 0.1.0 store both have exactly the columns schema.py declares."""
    declared = {table.name: sorted(c.name for c in table.c) for table in schema.metadata.sorted_tables}
    fresh = tmp_path / "fresh.duckdb" if isinstance(old_store, Path) else request.getfixturevalue("postgres").new_database()
    for target in (old_store, fresh):
        store = Store(target)
        store.load_settings()  # opened: migrated
        store.close()
        assert _columns(target) == declared


def _parsed(rows: list[tuple]) -> list[tuple]:
    """Rows with their metadata parsed (PostgreSQL hands JSONB back parsed, DuckDB as text)."""
    return [(*r[:5], json.loads(r[5]) if isinstance(r[5], str) else r[5]) for r in rows]


def test_a_store_newer_than_this_release_is_refused(tmp_path):
    """A revision this code does not know: the store is not opened, and the error names both revisions."""
    path = tmp_path / "store.duckdb"
    store = Store(path)
    store.load_settings()
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    store.close()
    with pytest.raises(StoreVersionError, match=r"revision '9999'.*newer nbtasklog.*upgrade nbtasklog"):
        Store(path).load_settings()
