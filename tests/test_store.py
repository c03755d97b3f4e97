"""The Store on a real DuckDB file and on a real PostgreSQL server: schema, the one-transaction write,
queries with filters, task rows, delete, INTERRUPTED marks, retention candidates and settings, across
reopenings; analyst SQL (DuckDB only, and a clear refusal on PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pytest
from procs import T0, poll, read_db
from procs import task_row as row
from sqlalchemy import func, make_url, update

from nbtasklog import make_filter
from nbtasklog.record import LogRecord, datetime_to_us
from nbtasklog.store import migrate, schema
from nbtasklog.store.buffer import WriteBuffer
from nbtasklog.store.store import (
    LOG_ARROW_SCHEMA,
    SQLError,
    Store,
    arrow_to_records,
    database_url,
    records_to_arrow,
    sql_rows,
)

def records(task_id: str, n: int, start: int = 1) -> list[LogRecord]:
    levels = ["DEBUG", "INFO", "WARNING", "ERROR"]
    return [
        LogRecord(
            task_id, seq, datetime_to_us(T0) + seq, levels[seq % 4], "api" if seq % 3 == 0 else "plugin",
            f"message {seq} ünïcødé ✓", None if seq % 5 == 0 else f'{{"n":{seq},"db":{{"id":"d{seq % 2}"}},"ok":{"true" if seq % 2 else "false"}}}',
        )
        for seq in range(start, start + n)
    ]


@pytest.fixture(params=["duckdb", "postgresql"])
def db(request, tmp_path):
    """Where a store keeps its data: a DuckDB file, or a new database on the session's PostgreSQL server."""
    if request.param == "duckdb":
        return tmp_path / "store.duckdb"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def duckdb_file(tmp_path):
    return tmp_path / "store.duckdb"


@pytest.fixture
def store(db):
    store = Store(db)
    yield store
    store.close()


def test_a_new_file_gets_the_schema_once(db):
    """The first use runs the migrations to this release's revision; reopening neither fails nor runs them again."""
    for _ in range(2):
        store = Store(db)
        assert store.load_settings() == {}
        store.close()
    tables = {name for (name,) in read_db(db, "select table_name from information_schema.tables")}
    assert {"tasks", "task_logs", "settings", "instances", "alembic_version"} <= tables
    assert "nbtasklog_schema" not in tables  # 0.1.0's version table, replaced by Alembic's
    assert read_db(db, "select version_num from alembic_version") == [(migrate.head(),)]


def test_written_records_come_back_identical(store, db):
    """Records written as one Arrow batch read back equal: seq, microsecond timestamps, unicode, metadata, NULLs."""
    batch = records("t1", 50)
    store.write([row("t1")], records_to_arrow(batch))
    assert store.query_logs("t1", make_filter()) == batch
    store.close()
    again = Store(db)
    assert again.query_logs("t1", make_filter()) == batch  # and from a fresh open of the file
    again.close()
    assert read_db(db, "select count(*), count(distinct id) from task_logs") == [(50, 50)]


def test_arrow_round_trip_keeps_every_field():
    """records_to_arrow and arrow_to_records are inverse; empty input gives the empty schema-shaped table."""
    batch = records("t", 20)
    table = records_to_arrow(batch)
    assert table.schema == LOG_ARROW_SCHEMA and table.num_rows == 20
    assert arrow_to_records(table) == batch
    assert records_to_arrow([]).schema == LOG_ARROW_SCHEMA
    assert arrow_to_records(records_to_arrow([])) == []


def test_a_write_is_one_transaction(store):
    """A batch the database refuses takes the task row and settings of the same write with it: nothing is half-written."""
    bad = pa.Table.from_pylist(
        [{"task_id": "t1", "seq": 1, "timestamp": T0, "level": "INFO", "source": "plugin", "message": None, "metadata": None}],
        schema=LOG_ARROW_SCHEMA,
    )  # message is NOT NULL
    with pytest.raises(Exception):
        store.write([row("t1")], bad, {"task_log_level": "DEBUG"})
    assert store.get_task("t1") is None
    assert store.load_settings() == {}
    assert store.query_logs("t1", make_filter()) == []


def test_task_rows_are_upserted(store):
    """Writing a task row again updates it in place (one row, the latest values)."""
    store.write([row("t1", status="RUNNING")])
    store.write([row("t1", status="FAILED", error="boom", progress=0.5, record_count=7)])
    task = store.get_task("t1")
    assert (task["status"], task["error"], task["progress"], task["record_count"]) == ("FAILED", "boom", 0.5, 7)
    assert task["params"] == {"a": 1}
    assert task["created_at"] == T0 - timedelta(minutes=1) and task["created_at"].tzinfo is not None
    assert len(store.list_tasks()) == 1


def test_query_logs_applies_every_filter_like_the_in_memory_face(store):
    """level, source, search, metadata (nested, booleans, existence), seq and time ranges, order and limit: SQL equals LogFilter.apply."""
    batch = records("t1", 200)
    store.write([row("t1"), row("t2")], records_to_arrow(batch + records("t2", 30)))
    filters = [
        make_filter(),
        make_filter(level="WARNING"),
        make_filter(errors_only=True),
        make_filter(source="api"),
        make_filter(source=["api", "plugin"], level="INFO"),
        make_filter(search="MESSAGE 1"),
        make_filter(search="ünïcødé ✓ "),
        make_filter(search="✓"),
        make_filter(meta={"n": 42}),
        make_filter(meta={"db.id": "d1"}),
        make_filter(meta={"ok": True}),
        make_filter(meta=["ok=false", "db.id=d0"]),
        make_filter(meta=["db"]),
        make_filter(meta=["missing"]),
        make_filter(after=150),
        make_filter(after=10, before=20),
        make_filter(since=datetime_to_us(T0) + 100, until=datetime_to_us(T0) + 110),
        make_filter(order="desc", limit=7),
        make_filter(level="ERROR", order="desc", limit=3, after=100),
    ]
    for flt in filters:
        assert store.query_logs("t1", flt) == flt.apply(batch), flt
    assert len(store.query_logs("t2", make_filter())) == 30  # and never another task's


def test_delete_tasks_removes_rows_and_all_their_logs(store, db):
    """delete_tasks removes the tasks and every record of them, and nothing else."""
    store.write([row("a"), row("b"), row("c")], records_to_arrow(records("a", 10) + records("b", 10) + records("c", 10)))
    assert store.delete_tasks(["a", "c"]) == 2
    assert store.delete_tasks([]) == 0
    assert [t["id"] for t in store.list_tasks()] == ["b"]
    store.close()
    assert read_db(db, "select distinct task_id from task_logs") == [("b",)]
    assert read_db(db, "select count(*) from task_logs") == [(10,)]


ME = {"id": "me", "kind": "server", "host": "h", "pid": 1, "started_at": T0}


def _age_heartbeats(store: Store, owner: str, seconds: int) -> None:
    """Make an owner look silent for `seconds` (its heartbeats that long ago, by the database's clock)."""
    with store.engine.begin() as conn:
        conn.execute(update(schema.tasks).where(schema.tasks.c.owner == owner)
                     .values(heartbeat_at=func.now() - timedelta(seconds=seconds)))


def test_recover_marks_only_tasks_whose_owner_is_gone(store):
    """INTERRUPTED: tasks without an owner (0.1.0 rows), of a dead owner, or whose owner's lease ran out;
    left alone: this instance's, a live owner's, and finished ones. Each mark has a finish time and a reason."""
    store.write([row("legacy", status="RUNNING"), row("p", status="PENDING", owner="dead"),
                 row("silent", status="RUNNING", owner="quiet"), row("alive", status="RUNNING", owner="other"),
                 row("mine", status="RUNNING", owner="me"), row("s", owner="dead"), row("f", status="FAILED", error="x")],
                row_modes={i: "new" for i in ("p", "silent", "alive", "mine", "s")})
    _age_heartbeats(store, "quiet", 120)
    _age_heartbeats(store, "me", 120)  # this instance's own tasks are never taken from it
    assert sorted(store.recover(ME, lease=60, dead_owners=["dead"])) == ["legacy", "p", "silent"]
    for task_id in ("legacy", "p", "silent"):
        task = store.get_task(task_id)
        assert task["status"] == "INTERRUPTED" and task["finished_at"] is not None
        assert "ended" in task["error"]
    assert store.get_task("alive")["status"] == "RUNNING" and store.get_task("mine")["status"] == "RUNNING"
    assert store.get_task("s")["status"] == "SUCCESS" and store.get_task("f")["error"] == "x"
    assert store.recover(ME, lease=60) == []
    _age_heartbeats(store, "other", 120)
    assert store.recover(ME, lease=60) == ["alive"]


def test_a_heartbeat_keeps_an_owners_tasks(store):
    """A heartbeat renews the lease of every active task of its owner: recovery then leaves them alone."""
    other = dict(ME, id="other")
    store.recover(other, lease=60)
    store.write([row("t", status="RUNNING", owner="other")], row_modes={"t": "new"})
    _age_heartbeats(store, "other", 120)
    store.heartbeat("other")
    assert store.recover(ME, lease=60) == []
    assert store.get_task("t")["status"] == "RUNNING"


def test_an_owner_never_resurrects_a_deleted_or_reaped_task(store):
    """Once another process deleted a task or marked it INTERRUPTED, its owner's later rows are refused
    (and said so), and records of a deleted task are left out; the owner's final row of a task it still
    holds is taken, and taken again when retried."""
    store.write([row("gone", status="RUNNING", owner="a"), row("reaped", status="RUNNING", owner="a"),
                 row("kept", status="RUNNING", owner="a")], row_modes={"gone": "new", "reaped": "new", "kept": "new"})
    store.delete_tasks(["gone"])
    _age_heartbeats(store, "a", 120)
    assert sorted(store.recover(ME, lease=60)) == ["kept", "reaped"]
    store.write([row("kept", status="RUNNING", owner="b")], row_modes={"kept": "claim"})  # taken up by b
    refused = store.write([row("gone", status="SUCCESS", owner="a"), row("reaped", status="SUCCESS", owner="a"),
                           row("kept", status="SUCCESS", owner="a")],
                          records_to_arrow(records("gone", 3) + records("reaped", 2)))
    assert sorted(refused) == ["gone", "kept", "reaped"]
    assert store.get_task("gone") is None and store.query_logs("gone", make_filter()) == []
    assert store.get_task("reaped")["status"] == "INTERRUPTED"
    assert [r.seq for r in store.query_logs("reaped", make_filter())] == [1, 2]  # the task exists: its records are kept
    assert store.get_task("kept")["status"] == "RUNNING"
    for _ in range(2):  # the final row, and the same row again (a retry after a commit whose answer was lost)
        assert store.write([row("kept", status="SUCCESS", owner="b")]) == []
    assert store.get_task("kept")["status"] == "SUCCESS"
    assert store.write([row("kept", status="RUNNING", owner="b")]) == ["kept"]  # no way back


def test_postgresql_never_stores_a_seq_twice(postgres):
    """(task_id, seq) is unique on PostgreSQL, where several processes write: a batch written again, whole or
    overlapping, adds only what is new, even without only_new."""
    store = Store(postgres.new_database())
    try:
        store.write([row("t")], records_to_arrow(records("t", 10)))
        store.write([], records_to_arrow(records("t", 10)))
        store.write([], records_to_arrow(records("t", 10, start=6)))
        assert [r.seq for r in store.query_logs("t", make_filter())] == list(range(1, 16))
    finally:
        store.close()


def test_finished_before_lists_only_old_finished_tasks(store):
    """Retention candidates: finished before the cutoff; running ones and recent ones are not."""
    old = T0 - timedelta(days=40)
    store.write([
        row("old-ok", ended=old), row("old-failed", status="FAILED", ended=old),
        row("old-interrupted", status="INTERRUPTED", ended=old),
        row("recent", ended=T0), row("running", status="RUNNING", created_at=old),
    ])
    assert sorted(store.finished_before(T0 - timedelta(days=30))) == ["old-failed", "old-interrupted", "old-ok"]
    assert "recent" in store.finished_before(T0 + timedelta(seconds=1))
    assert "running" not in store.finished_before(T0 + timedelta(days=1))


def test_list_tasks_filters_and_pages_newest_first(store):
    """list_tasks: newest id first, by status list and plugin, with a keyset cursor and a limit."""
    ids = [f"{n:04d}" for n in range(10)]
    store.write([row(i, status="FAILED" if n % 3 == 0 else "SUCCESS", plugin="even" if n % 2 == 0 else "odd") for n, i in enumerate(ids)])
    assert [t["id"] for t in store.list_tasks()] == ids[::-1]
    assert [t["id"] for t in store.list_tasks(status=["FAILED"])] == ["0009", "0006", "0003", "0000"]
    assert [t["id"] for t in store.list_tasks(plugin="odd", limit=2)] == ["0009", "0007"]
    assert [t["id"] for t in store.list_tasks(before_id="0005", limit=3)] == ["0004", "0003", "0002"]
    assert store.list_tasks(status=["FAILED"], plugin="odd") == [t for t in store.list_tasks(plugin="odd") if t["status"] == "FAILED"]


def test_log_stats_count_levels_sources_and_metadata_keys(store):
    """log_stats of one task: counts by level and source, and its top-level metadata keys."""
    batch = records("t1", 40)
    store.write([row("t1"), row("t2")], records_to_arrow(batch + records("t2", 5)))
    stats = store.log_stats("t1")
    assert sum(stats["levels"].values()) == 40
    assert stats["levels"] == {level: sum(r.level == level for r in batch) for level in {r.level for r in batch}}
    assert stats["sources"] == {"api": 13, "plugin": 27}
    assert stats["metadata_keys"] == ["db", "n", "ok"]


def test_settings_are_upserted_and_persist(store, db):
    """Settings written in a write() are read back by a new Store on the same file; a second write updates them."""
    store.write(settings={"task_log_level": "WARNING", "belief_scope_enabled": "false"})
    store.write(settings={"task_log_level": "DEBUG"})
    store.close()
    again = Store(db)
    assert again.load_settings() == {"task_log_level": "DEBUG", "belief_scope_enabled": "false"}
    again.close()


def test_store_sql_keeps_queries_read_only_and_bounded(duckdb_file):
    """Store.sql: rows and a truncation flag; writes, file access and extra statements are SQLErrors."""
    store = Store(duckdb_file)
    store.write([row("t1")], records_to_arrow(records("t1", 30)))
    table, truncated = store.sql("select seq from task_logs order by seq", max_rows=10, timeout=5)
    assert table.column("seq").to_pylist() == list(range(1, 11)) and truncated
    table, truncated = store.sql("select count(*) n from task_logs", max_rows=10, timeout=5)
    assert table.to_pylist() == [{"n": 30}] and not truncated
    for query in ("delete from task_logs", "with x as (delete from task_logs returning *) select * from x",
                  "select * from read_text('/etc/hostname')", "select 1; select 2"):
        with pytest.raises(SQLError):
            store.sql(query, max_rows=10, timeout=5)
    assert store.sql("select count(*) n from task_logs", max_rows=10, timeout=5)[0].to_pylist() == [{"n": 30}]
    store.close()


def test_store_sql_on_postgresql_is_read_only_bounded_and_without_files(postgres):
    """On PostgreSQL: one statement in a read-only transaction with a time limit, JSON paths work; writes,
    file access, a second statement and an overlong query are SQLErrors, and the store goes on working."""
    store = Store(postgres.new_database(role="analyst"))
    store.write([row("t1")], records_to_arrow(records("t1", 30)))
    table, truncated = store.sql("select seq from task_logs order by seq", max_rows=10, timeout=5)
    assert table.column("seq").to_pylist() == list(range(1, 11)) and truncated
    odd_with_meta = [seq for seq in range(1, 31) if seq % 2 and seq % 5]
    table, truncated = store.sql("select count(*) n from task_logs where metadata->'db'->>'id' = 'd1' and message like '%✓'",
                                 max_rows=10, timeout=5)
    assert table.to_pylist() == [{"n": len(odd_with_meta)}] and not truncated
    refused = {
        "delete from task_logs": "read-only",
        "with x as (delete from task_logs returning *) select * from x": "read-only",
        "select pg_read_file('/etc/hostname')": "permission denied",
        "copy (select 1) to '/tmp/nbtasklog-copy'": "permission denied|pg_write_server_files",
        "select 1; select 2": "exactly one SQL statement",
        "select pg_sleep(5)": "0.5 s time limit",
        "selec 1": "syntax error",
    }
    for query, reason in refused.items():
        with pytest.raises(SQLError, match=reason):
            store.sql(query, max_rows=10, timeout=0.5)
    assert store.sql("select count(*) n from task_logs", max_rows=10, timeout=5)[0].to_pylist() == [{"n": 30}]
    store.close()


def test_store_sql_on_postgresql_answers_every_column_as_it_is(postgres):
    """Repeated names keep their columns; a type without a binary form in psycopg (money, bit) comes as its text,
    not raw bytes; a column Arrow cannot type (NaN among numerics, 'infinity' among dates) as text, JSON columns as
    JSON text; TIME WITH TIME ZONE keeps its offset."""
    store = Store(postgres.new_database(role="analyst"))
    table, _ = store.sql(
        "SELECT 1 AS a, 2 AS a, n, money '12.34' AS m, '101'::bit(3) AS b, d, '12:00+02'::timetz AS tz, j FROM (VALUES "
        "(1.5::numeric, 'infinity'::date, '{\"k\": 1}'::jsonb), ('NaN'::numeric, '2024-01-02'::date, '[1]'::jsonb)) v(n, d, j)",
        max_rows=10, timeout=5)
    assert table.column_names == ["a", "a", "n", "m", "b", "d", "tz", "j"]
    assert sql_rows(table) == [[1, 2, "1.5", "$12.34", "101", "infinity", "12:00:00+02:00", '{"k": 1}'],
                               [1, 2, "NaN", "$12.34", "101", "2024-01-02", "12:00:00+02:00", "[1]"]]
    store.close()


def test_store_sql_on_postgresql_refuses_a_role_that_can_reach_files(postgres):
    """A superuser can read and write the server's files even in a read-only transaction: refused, saying why."""
    store = Store(postgres.new_database())
    with pytest.raises(SQLError, match="role 'postgres': it can read and write the server's files"):
        store.sql("select 1", max_rows=10, timeout=5)
    store.close()


def test_database_urls_and_refused_targets(tmp_path):
    """A plain path means a DuckDB file (made absolute); PostgreSQL without a driver means psycopg 3;
    :memory: and SQLite are refused with the reason."""
    url = database_url(tmp_path / "x.duckdb")
    assert url.get_backend_name() == "duckdb" and url.database == str((tmp_path / "x.duckdb").resolve())
    assert database_url("postgresql://u@h/db").drivername == "postgresql+psycopg"  # psycopg 3, the tested driver
    assert database_url("postgresql+psycopg2://u@h/db").drivername == "postgresql+psycopg2"  # a driver named is kept
    assert database_url(make_url("postgresql://u@h/db")).drivername == "postgresql+psycopg"  # a URL object too
    with pytest.raises(ValueError, match="memory"):
        Store("duckdb:///:memory:").load_settings()
    with pytest.raises(ValueError, match="DuckDB .* or PostgreSQL, not 'sqlite'"):
        Store(f"sqlite:///{tmp_path / 'x.db'}")


def test_a_store_reconnects_after_reset(store):
    """reset() drops the connections; the next call opens the file again and sees what was written."""
    store.write([row("t1")], records_to_arrow(records("t1", 5)))
    store.reset()
    assert len(store.query_logs("t1", make_filter())) == 5
    store.write([row("t2")], records_to_arrow(records("t2", 5)))
    assert {t["id"] for t in store.list_tasks()} == {"t1", "t2"}


def test_duckdb_connections_draw_no_progress_bar(duckdb_file):
    """DuckDB would draw a progress bar (an ipywidget in a kernel) into the running cell during a slow
    flush. Its default depends on the host (off under pytest), so a plain interpreter is asked."""
    script = (
        "import sys; from nbtasklog.store.store import Store\n"
        "with Store(sys.argv[1]).engine.connect() as conn:\n"
        "    print(conn.exec_driver_sql(\"SELECT current_setting('enable_progress_bar')\").scalar())\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(duckdb_file)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_flush_for_size_writes_whole_batches_and_the_rest_waits(store, tmp_path):
    """Woken by flush_size, the flusher writes whole batches only (no tail of small transactions); stop() writes the rest in order."""
    store.write([row("t1", status="RUNNING")])  # records belong to a task with a row
    buffer = WriteBuffer(store, tmp_path / "spill", "test", flush_interval=3600, flush_size=100)
    for record in records("t1", 250):
        buffer.append(tuple(record))  # as the emitter hands them in
    buffer.start()
    try:
        poll(lambda: buffer.health().flushed_total == 200, 30, "two batches of 100 written")
        assert buffer.health().pending == 50
        with buffer.reading():
            assert [r.seq for r in buffer.unwritten("t1")] == list(range(201, 251))
        assert [r.seq for r in store.query_logs("t1", make_filter())] == list(range(1, 201))
    finally:
        assert buffer.stop()
    assert store.query_logs("t1", make_filter()) == records("t1", 250)
