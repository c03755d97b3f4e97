"""Store: every read and write of the database, through SQLAlchemy, with DuckDB's Arrow bulk path.

It holds no buffer and never retries: the write buffer (store/buffer.py) owns that. Every method
either does its whole job in one transaction or raises.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
from sqlalchemy import and_, create_engine, delete, event, func, select, update
from sqlalchemy.engine import URL, Engine, make_url

from ..filter import LogFilter
from ..record import LogRecord, datetime_to_us, new_tuple
from . import schema
from .schema import LOG_COLUMNS, task_logs, tasks

SUPPORTED_BACKENDS = ("duckdb", "postgresql")
ACTIVE_STATUSES = ("PENDING", "RUNNING")
FINISHED_STATUSES = ("SUCCESS", "FAILED", "CANCELLED", "INTERRUPTED")

LOG_ARROW_SCHEMA = pa.schema(
    [
        ("task_id", pa.string()),
        ("seq", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("level", pa.string()),
        ("source", pa.string()),
        ("message", pa.string()),
        ("metadata", pa.string()),
    ]
)
_LOG_STRUCT = pa.struct(list(LOG_ARROW_SCHEMA))


class SQLError(ValueError):
    """An analyst query that was refused or failed; the message says why."""


def database_url(target: str | os.PathLike[str] | URL) -> URL:
    """A SQLAlchemy URL from a URL or a plain file path (a path means a DuckDB file)."""
    if isinstance(target, URL):
        url = target
    else:
        text = os.fspath(target)
        if "://" not in text:
            return make_url("duckdb:///" + str(Path(text).expanduser().resolve()))
        url = make_url(text)
    # A PostgreSQL URL that names no driver gets psycopg 3 (the `postgresql` extra), the one
    # nbtasklog is tested with; SQLAlchemy 2.0's own default would be psycopg2.
    return url.set(drivername="postgresql+psycopg") if url.drivername == "postgresql" else url


def records_to_arrow(records: list[LogRecord]) -> pa.Table:
    """Column-wise Arrow table of records; the one shape batches have in memory, on disk and in transit."""
    if not records:
        return LOG_ARROW_SCHEMA.empty_table()
    # The tuples go to Arrow as one struct array, converted in C++: transposing them in Python
    # first (zip(*records)) cost ~0.7 µs a record, three times the conversion itself.
    return pa.Table.from_struct_array(pa.array(records, type=_LOG_STRUCT))


def arrow_to_records(table: pa.Table) -> list[LogRecord]:
    columns = [table.column(i) for i in range(7)]
    columns[2] = columns[2].cast(pa.int64())  # timestamps back to microseconds
    return [new_tuple(LogRecord, row) for row in zip(*(c.to_pylist() for c in columns))]


class Store:
    """The database behind nbtasklog: tasks, their log records and the settings."""

    def __init__(self, url: str | os.PathLike[str] | URL) -> None:
        self.url = database_url(url)
        backend = self.url.get_backend_name()
        if backend not in SUPPORTED_BACKENDS:
            # The schema needs sequences and the filters JSON paths; these two have both.
            raise ValueError(f"nbtasklog stores logs in DuckDB (the default) or PostgreSQL, not {backend!r}")
        self.is_duckdb = backend == "duckdb"
        self._engine: Engine | None = None
        self._open_lock = threading.Lock()

    # ---- connection -------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, created (and the schema made) on first use; raises while unavailable."""
        if self._engine is None:
            with self._open_lock:
                if self._engine is None:
                    self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        kwargs: dict[str, Any] = {}
        if self.is_duckdb:
            database = self.url.database or ""
            if database in ("", ":memory:"):
                raise ValueError(
                    "duckdb:///:memory: gives every thread its own empty database; use a file path"
                )
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            # No file access from SQL (analysts' queries included): the store itself needs none,
            # since batches arrive as registered Arrow tables.
            kwargs["connect_args"] = {"config": {"enable_external_access": False}}
        engine = create_engine(self.url, **kwargs)
        if self.is_duckdb:
            event.listen(engine, "connect", _quiet_duckdb_connection)
        try:
            with engine.begin() as conn:
                schema.metadata.create_all(conn)
                if conn.execute(select(schema.schema_version.c.version)).first() is None:
                    conn.execute(schema.schema_version.insert().values(version=schema.SCHEMA_VERSION))
        except Exception:
            engine.dispose()
            raise
        return engine

    def reset(self) -> None:
        """Drop the connections (after a failure), so the next use reconnects."""
        with self._open_lock:
            engine, self._engine = self._engine, None
        if engine is not None:
            engine.dispose()

    close = reset

    # ---- writes -----------------------------------------------------------------------------
    def write(
        self,
        task_rows: Iterable[Mapping[str, Any]] = (),
        batch: pa.Table | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        """Upsert task rows and settings and append one batch of log records, in one transaction."""
        task_rows = list(task_rows)
        with self.engine.begin() as conn:
            if settings:
                _upsert(conn, schema.settings, [{"key": k, "value": v} for k, v in settings.items()])
            if task_rows:
                _upsert(conn, tasks, task_rows)
            if batch is not None and batch.num_rows:
                if self.is_duckdb:
                    raw = _duckdb(conn)
                    raw.register("nbtasklog_batch", batch)
                    try:
                        raw.execute(
                            f"INSERT INTO task_logs ({', '.join(LOG_COLUMNS)}) "
                            f"SELECT {', '.join(LOG_COLUMNS)} FROM nbtasklog_batch"
                        )
                    finally:
                        raw.unregister("nbtasklog_batch")
                else:
                    conn.execute(task_logs.insert(), batch.to_pylist())

    def delete_tasks(self, task_ids: list[str]) -> int:
        """Delete tasks and all their log records in one transaction (DuckDB has no ON DELETE CASCADE)."""
        if not task_ids:
            return 0
        with self.engine.begin() as conn:
            conn.execute(delete(task_logs).where(task_logs.c.task_id.in_(task_ids)))
            return conn.execute(delete(tasks).where(tasks.c.id.in_(task_ids))).rowcount

    def finished_before(self, cutoff: datetime) -> list[str]:
        """Ids of finished tasks that ended before `cutoff` (the retention candidates)."""
        query = select(tasks.c.id).where(
            and_(tasks.c.status.in_(FINISHED_STATUSES), func.coalesce(tasks.c.finished_at, tasks.c.created_at) < cutoff)
        )
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(query)]

    def mark_interrupted(self, now: datetime) -> list[str]:
        """Tasks left PENDING or RUNNING by a process that died become INTERRUPTED; returns their ids."""
        with self.engine.begin() as conn:
            ids = [r[0] for r in conn.execute(select(tasks.c.id).where(tasks.c.status.in_(ACTIVE_STATUSES)))]
            if ids:
                conn.execute(
                    update(tasks)
                    .where(tasks.c.id.in_(ids))
                    .values(status="INTERRUPTED", finished_at=now,
                            error="the process running this task ended before it finished")
                )
            return ids

    # ---- reads ------------------------------------------------------------------------------
    def load_settings(self) -> dict[str, str]:
        with self.engine.connect() as conn:
            return {row.key: row.value for row in conn.execute(select(schema.settings))}

    def query_logs(self, task_id: str, flt: LogFilter) -> list[LogRecord]:
        """Records of one task that pass `flt`, ordered by seq, at most `flt.limit` of them."""
        query = (
            select(*(task_logs.c[name] for name in LOG_COLUMNS))
            .where(task_logs.c.task_id == task_id, *flt.where(task_logs))
            .order_by(flt.order_by(task_logs))
        )
        if flt.limit is not None:
            query = query.limit(flt.limit)
        with self.engine.connect() as conn:
            if self.is_duckdb:
                # Through Arrow: a third of the time of SQLAlchemy's rows (datetime objects, Row
                # wrappers) for 10,000 records; what a WebSocket catching up pays, page by page.
                compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
                params = [compiled.params[name] for name in compiled.positiontup or ()]
                return arrow_to_records(_duckdb(conn).sql(str(compiled), params=params).to_arrow_table())
            rows = conn.execute(query).all()
        return [
            LogRecord(r[0], r[1], datetime_to_us(r[2]), r[3], r[4], r[5], _json_text(r[6]))
            for r in rows
        ]

    def log_stats(self, task_id: str) -> dict[str, Any]:
        """Counts by level and by source, and the top-level metadata keys seen, for one task."""
        where = task_logs.c.task_id == task_id
        with self.engine.connect() as conn:
            levels = dict(conn.execute(select(task_logs.c.level, func.count()).where(where).group_by(task_logs.c.level)).all())
            sources = dict(conn.execute(select(task_logs.c.source, func.count()).where(where).group_by(task_logs.c.source)).all())
            keys: set[str] = set()
            if self.is_duckdb:
                keys_query = select(func.unnest(func.json_keys(task_logs.c.metadata))).distinct().where(
                    where, task_logs.c.metadata.is_not(None)
                )
                keys = {row[0] for row in conn.execute(keys_query)}
            else:
                for (text,) in conn.execute(select(task_logs.c.metadata).where(where, task_logs.c.metadata.is_not(None))):
                    keys.update(json.loads(text) if isinstance(text, str) else text)
        return {"levels": levels, "sources": sources, "metadata_keys": sorted(keys)}

    def get_task(self, task_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tasks).where(tasks.c.id == task_id)).mappings().first()
        return None if row is None else _task_row(row)

    def list_tasks(
        self,
        status: Iterable[str] | None = None,
        plugin: str | None = None,
        before_id: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Newest first; `before_id` is the keyset cursor (ids grow with creation time)."""
        query = select(tasks).order_by(tasks.c.id.desc()).limit(limit)
        if status:
            query = query.where(tasks.c.status.in_(list(status)))
        if plugin:
            query = query.where(tasks.c.plugin == plugin)
        if before_id:
            query = query.where(tasks.c.id < before_id)
        with self.engine.connect() as conn:
            return [_task_row(row) for row in conn.execute(query).mappings()]

    def sql(self, query: str, max_rows: int, timeout: float) -> tuple[pa.Table, bool]:
        """Run one read-only analyst query; returns (rows, truncated).

        Only a single SELECT (or EXPLAIN) is accepted, and DuckDB's external access is off for the
        whole database, so SQL can neither write nor touch files. On PostgreSQL: one statement in a
        read-only transaction with a statement_timeout, and only for a role without file access.
        """
        if not self.is_duckdb:
            return self._sql_postgresql(query, max_rows, timeout)
        import duckdb

        with self.engine.connect() as conn:
            cursor = _duckdb(conn).cursor()  # its own connection, so interrupt() stops only this query
            try:
                # The statement type check alone lets writes through inside a SELECT
                # ("WITH x AS (DELETE ... RETURNING *) SELECT ...", EXPLAIN ANALYZE DELETE ...):
                # a read-only transaction refuses every write, whatever the statement looks like.
                cursor.execute("BEGIN TRANSACTION READ ONLY")
                try:
                    statements = cursor.extract_statements(query)
                except duckdb.Error as error:
                    raise SQLError(f"SQL syntax error: {error}") from None
                if len(statements) != 1:
                    raise SQLError(f"give exactly one SQL statement, not {len(statements)}")
                kind = statements[0].type
                if kind not in (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN):
                    raise SQLError(f"only read-only queries (SELECT) are allowed, not {kind.name}")
                timer = threading.Timer(timeout, cursor.interrupt)
                timer.start()
                try:
                    reader = cursor.sql(query).to_arrow_reader(min(max_rows + 1, 100_000))
                    batches, count = [], 0
                    for batch in reader:
                        batches.append(batch)
                        count += batch.num_rows
                        if count > max_rows:
                            break
                    table = pa.Table.from_batches(batches, schema=reader.schema)
                except duckdb.InterruptException:
                    raise SQLError(f"query cancelled after the {timeout:g} s time limit") from None
                except duckdb.Error as error:
                    raise SQLError(str(error)) from None
                finally:
                    timer.cancel()
            finally:
                cursor.close()
        return table.slice(0, max_rows), table.num_rows > max_rows

    def _sql_postgresql(self, query: str, max_rows: int, timeout: float) -> tuple[pa.Table, bool]:
        import psycopg

        connection = self.engine.raw_connection()
        try:
            raw = connection.driver_connection  # psycopg 3
            with raw.cursor() as cursor:
                cursor.execute("SET TRANSACTION READ ONLY")
                cursor.execute(f"SET LOCAL statement_timeout = {max(1, int(timeout * 1000))}")
                # A read-only transaction still lets a superuser (or a pg_*_server_files member)
                # read and write server files (pg_read_file, COPY ... TO): refuse such a role.
                cursor.execute(
                    "SELECT current_user, rolsuper OR pg_has_role(current_user, 'pg_read_server_files', 'MEMBER')"
                    " OR pg_has_role(current_user, 'pg_write_server_files', 'MEMBER')"
                    " OR pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER')"
                    " FROM pg_roles WHERE rolname = current_user"
                )
                role, files = cursor.fetchone() or ("?", True)
                if files:
                    raise SQLError(f"analyst SQL does not run as PostgreSQL role {role!r}: it can read and write the "
                                   "server's files; give the store a role without superuser or pg_*_server_* rights")
            # Binary results make psycopg use the extended protocol, which takes one statement only
            # (the simple one would run "SELECT 1; DELETE ..." whole); a RawCursor leaves % alone.
            with psycopg.RawCursor(raw) as cursor:
                try:
                    cursor.execute(query, binary=True)
                    if cursor.description is None:
                        raise SQLError("only queries that return rows (SELECT) are allowed")
                    names = [column.name for column in cursor.description]
                    rows = cursor.fetchmany(max_rows + 1)
                except psycopg.errors.QueryCanceled:
                    raise SQLError(f"query cancelled after the {timeout:g} s time limit") from None
                except psycopg.errors.ReadOnlySqlTransaction as error:
                    raise SQLError(f"only read-only queries are allowed: {error}") from None
                except psycopg.errors.SyntaxError as error:
                    if "multiple commands" in str(error):
                        raise SQLError("give exactly one SQL statement") from None
                    raise SQLError(f"SQL syntax error: {error}") from None
                except psycopg.Error as error:
                    raise SQLError(str(error).strip()) from None
            raw.rollback()
        finally:
            connection.close()
        truncated = len(rows) > max_rows
        return _rows_to_arrow(names, rows[:max_rows]), truncated


def _rows_to_arrow(names: list[str], rows: list[tuple[Any, ...]]) -> pa.Table:
    """Query rows as Arrow columns; a column Arrow cannot type (mixed JSON values) becomes JSON text."""
    columns = []
    for i in range(len(names)):
        values = [row[i] for row in rows]
        try:
            columns.append(pa.array(values))
        except (pa.ArrowException, TypeError, ValueError):
            columns.append(pa.array([None if v is None else json.dumps(v, default=str) for v in values], pa.string()))
    return pa.Table.from_arrays(columns, names=names)


def _upsert(conn: Any, table: Any, rows: list[Mapping[str, Any]]) -> None:
    """Insert rows, or update the row with the same primary key."""
    from sqlalchemy.dialects.postgresql import insert  # duckdb-engine speaks PostgreSQL's ON CONFLICT

    key = table.primary_key.columns.values()[0].name
    for row in rows:
        statement = insert(table).values(**row)
        changes = {k: statement.excluded[k] for k in row if k != key}
        conn.execute(statement.on_conflict_do_update(index_elements=[key], set_=changes))


def _quiet_duckdb_connection(dbapi_connection: Any, _record: Any) -> None:
    # DuckDB draws a progress bar (an ipywidget in a kernel) into whichever cell is running when a
    # statement takes over 2 s, a background flush included; the option is per connection.
    dbapi_connection.execute("SET enable_progress_bar = false")


def _duckdb(conn: Any) -> Any:
    """The duckdb connection under a SQLAlchemy one (duckdb-engine wraps it and its cursors return None)."""
    return conn.connection.driver_connection._ConnectionWrapper__c


def _json_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _task_row(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    params = out.get("params")
    out["params"] = json.loads(params) if isinstance(params, str) else params
    for key in ("created_at", "started_at", "finished_at"):
        value = out.get(key)
        if isinstance(value, datetime):
            out[key] = value.astimezone(timezone.utc)
    return out
