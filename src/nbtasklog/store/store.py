"""Store: every read and write of the database, through SQLAlchemy, with DuckDB's Arrow bulk path.

It holds no buffer and never retries: the write buffer (store/buffer.py) owns that. Every method
either does its whole job in one transaction or raises.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import json
import math
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from sqlalchemy import and_, create_engine, delete, event, func, select, update
from sqlalchemy.engine import URL, Engine, make_url

from ..filter import LogFilter
from ..record import LogRecord, datetime_to_us, new_tuple
from ..statuses import ACTIVE, FINISHED
from . import events, migrate, schema
from .schema import LOG_COLUMNS, task_logs, tasks

SUPPORTED_BACKENDS = ("duckdb", "postgresql")

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
# A task row as readers get it; owner and heartbeat_at are the coordination of the processes writing.
TASK_COLUMNS = tuple(c for c in tasks.c if c.name not in ("owner", "heartbeat_at", "cancel_requested_at"))


class StoreClosedError(RuntimeError):
    """The store was closed (its engine closed); nothing more is read or written through it."""


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


def records_to_arrow(records: Sequence[tuple[Any, ...]]) -> pa.Table:
    """Column-wise Arrow table of records (LogRecords, or plain tuples of their fields as the write buffer
    queues them); the one shape batches have in memory, on disk and in transit."""
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
        # DuckDB's Python client takes the GIL between the steps of a query (to check for Ctrl-C).
        self.gil_bound_writes = self.is_duckdb
        # Other processes may write and read it at the same time (PostgreSQL; a DuckDB file has one writer).
        self.shared = not self.is_duckdb
        # The instance whose changes this store tells the other processes (PostgreSQL: events.py); set
        # by the engine writing through it. A DuckDB file has one writing process: nobody to tell.
        self.origin: str | None = None
        self._engine: Engine | None = None
        self._open_lock = threading.Lock()
        self._closed = False

    # ---- connection -------------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine, created (and the schema made) on first use; raises while unavailable."""
        if self._engine is None:
            with self._open_lock:
                if self._closed:  # a late reader of a closed engine must not open the file again
                    raise StoreClosedError(f"the store {self.url.render_as_string(hide_password=True)} is closed")
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
        elif engine.dialect.driver == "psycopg":
            event.listen(engine, "connect", _nul_free_parameters)
        try:
            with engine.begin() as conn:
                migrate.upgrade(conn)
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

    def close(self) -> None:
        """Drop the connections for good: this store opens no new one."""
        with self._open_lock:
            self._closed = True
        self.reset()
        if self.is_duckdb:
            # A failed write can leave its driver connection in a reference cycle (an exception's frames);
            # DuckDB keeps the file open until that connection is freed, and refuses other opens meanwhile.
            gc.collect()

    # ---- writes -----------------------------------------------------------------------------
    def write(
        self,
        task_rows: Iterable[Mapping[str, Any]] = (),
        batch: pa.Table | None = None,
        settings: Mapping[str, str] | None = None,
        *,
        only_new: bool = False,
        row_modes: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Write task rows and settings and append one batch of log records, in one transaction.

        A task row with an `owner` is its owner's: it changes the stored row only while that owner
        still holds the task (the row is its own and active, or already says what is written), so an
        owner never resurrects a task another process deleted or marked INTERRUPTED. `row_modes[id]`:
        "new" may also insert the row (the task's first write), "claim" takes the row over whatever it
        holds (a task taken up again); by default a row is only updated. Records of tasks without a
        row (deleted meanwhile) are left out. Returns the ids of the rows refused.

        `only_new` is for a batch that may have been written before (a spill file replayed after its
        process died between the commit and deleting the file; a retry after an error that came
        after the commit): records whose (task_id, seq) is stored already are left out.
        """
        row_modes = row_modes or {}
        refused: list[str] = []
        written: list[str] = []
        with self.engine.begin() as conn:
            if settings:
                _upsert(conn, schema.settings, [{"key": k, "value": v} for k, v in settings.items()])
            for row in task_rows:
                row = row if self.is_duckdb else _without_nul(row)
                (written if _write_task_row(conn, row, row_modes.get(row["id"])) else refused).append(row["id"])
            if batch is not None and batch.num_rows and only_new:
                batch = self._not_stored(conn, batch)
            if batch is not None and batch.num_rows:
                if self.is_duckdb:
                    raw = _duckdb(conn)
                    raw.register("nbtasklog_batch", batch)
                    try:
                        raw.execute(
                            f"INSERT INTO task_logs ({', '.join(LOG_COLUMNS)}) "
                            f"SELECT {', '.join(LOG_COLUMNS)} FROM nbtasklog_batch "
                            "WHERE task_id IN (SELECT id FROM tasks)"
                        )
                    finally:
                        raw.unregister("nbtasklog_batch")
                else:
                    _copy_postgresql(conn, batch)
            if (origin := self._announcer) is not None:
                events.announce(conn, origin, logs=_seq_ranges(batch), tasks=written, settings=settings or ())
        return refused

    @property
    def _announcer(self) -> str | None:
        """The origin of this store's events, or None when it tells nobody."""
        return self.origin if self.shared else None

    def listen(self, on_event: Any, on_gap: Any) -> events.StoreListener | None:
        """Hear what the other processes on this store change (events.py), or None: a DuckDB file has no others."""
        origin = self._announcer
        if origin is None:
            return None
        conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
        return events.StoreListener(conninfo, origin, on_event, on_gap)

    def announce_watch(self, task_ids: list[str]) -> None:
        """Tell these tasks' owners that they are followed live here: they write their records sooner."""
        origin = self._announcer
        if origin is not None and task_ids:
            with self.engine.begin() as conn:
                events.announce(conn, origin, watch=task_ids)

    def request_cancel(self, task_id: str) -> bool:
        """Ask the owner of an active task to cancel it: kept in its row (the owner's heartbeat sees it) and
        told at once (events.py). False when the task is not active."""
        with self.engine.begin() as conn:
            asked = conn.execute(update(tasks).where(tasks.c.id == task_id, tasks.c.status.in_(ACTIVE))
                                 .values(cancel_requested_at=func.now()).returning(tasks.c.id)).first()
            if asked is not None and (origin := self._announcer) is not None:
                events.announce(conn, origin, cancel=[task_id])
        return asked is not None

    def _not_stored(self, conn: Any, batch: pa.Table) -> pa.Table:
        """The records of `batch` not in task_logs, in the batch's order: an anti-join on (task_id, seq)
        against the stored keys of the batch's tasks within its seq range (zone maps or the index find them)."""
        seqs = pc.min_max(batch.column("seq")).as_py()
        query = select(task_logs.c.task_id, task_logs.c.seq).where(
            task_logs.c.task_id.in_(pc.unique(batch.column("task_id")).to_pylist()),
            task_logs.c.seq.between(seqs["min"], seqs["max"]),
        )
        if self.is_duckdb:
            compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
            params = [compiled.params[name] for name in compiled.positiontup or ()]
            stored = _duckdb(conn).sql(str(compiled), params=params).to_arrow_table()
        else:
            rows = conn.execute(query).all()
            stored = pa.table({"task_id": pa.array([r[0] for r in rows], pa.string()),
                               "seq": pa.array([r[1] for r in rows], pa.int64())})
        if stored.num_rows == 0:
            return batch
        stored = stored.cast(pa.schema([("task_id", pa.string()), ("seq", pa.int64())]))
        numbered = batch.append_column("_row", pa.array(range(batch.num_rows), pa.int64()))
        fresh = numbered.join(stored, keys=["task_id", "seq"], join_type="left anti")
        return fresh.sort_by("_row").select(LOG_ARROW_SCHEMA.names)

    def delete_tasks(self, task_ids: list[str]) -> int:
        """Delete tasks and all their log records in one transaction (DuckDB has no ON DELETE CASCADE)."""
        if not task_ids:
            return 0
        with self.engine.begin() as conn:
            conn.execute(delete(task_logs).where(task_logs.c.task_id.in_(task_ids)))
            count = conn.execute(delete(tasks).where(tasks.c.id.in_(task_ids))).rowcount
            if (origin := self._announcer) is not None:
                events.announce(conn, origin, deleted=task_ids)
            return count

    def finished_before(self, cutoff: datetime, user: str | None = None) -> list[str]:
        """Ids of finished tasks that ended before `cutoff` (the retention candidates), only `user`'s if given."""
        query = select(tasks.c.id).where(
            and_(tasks.c.status.in_(FINISHED), func.coalesce(tasks.c.finished_at, tasks.c.created_at) < cutoff)
        )
        if user is not None:
            query = query.where(tasks.c.username == user)
        with self.engine.connect() as conn:
            return [row[0] for row in conn.execute(query)]

    def recover(
        self,
        instance: Mapping[str, Any],
        lease: float,
        dead_owners: Iterable[str] = (),
        spilled_last_seqs: Mapping[str, int] | None = None,
        spilled_rows: Iterable[Mapping[str, Any]] = (),
        ended: AbstractSet[str] = frozenset(),
    ) -> list[str]:
        """Register `instance` (it beats from now on) and mark INTERRUPTED the tasks whose owner is gone;
        returns their ids. Any instance may do it, and does, every few seconds.

        Gone: an owner among `dead_owners` (earlier lives whose spill folders this process took over,
        so known dead), an owner silent for longer than `lease` seconds by the database's clock, or no
        owner (rows written before owners existed). A task another live instance runs is left alone.

        `spilled_rows`: rows a dead owner spilled (tasks.json) while their tasks were active; one is
        stored unless the database has a row of that task, which is then as new or newer. record_count
        becomes the number of records a task really has: its seqs run from 1 without a gap, so its
        highest seq, stored or among the records still spilled (`spilled_last_seqs`, written next).
        `ended`: tasks whose final row a dead owner spilled, written next: they are not marked.
        """
        from sqlalchemy.dialects.postgresql import (
            insert,  # duckdb-engine speaks PostgreSQL's ON CONFLICT
        )

        spilled_last_seqs = spilled_last_seqs or {}
        dead = list(dead_owners)
        with self.engine.begin() as conn:
            now = conn.execute(select(func.now())).scalar_one()
            conn.execute(insert(schema.instances).values(dict(instance, heartbeat_at=now))
                         .on_conflict_do_update(index_elements=["id"], set_={"heartbeat_at": now}))
            for row in spilled_rows:
                row = row if self.is_duckdb else _without_nul(row)
                conn.execute(insert(tasks).values(**row).on_conflict_do_nothing(index_elements=["id"]))
            cutoff = now - dt.timedelta(seconds=lease)
            gone = tasks.c.owner.is_(None) | (tasks.c.heartbeat_at < cutoff)
            if dead:
                gone = gone | tasks.c.owner.in_(dead)
            ids = [r[0] for r in conn.execute(
                select(tasks.c.id).where(tasks.c.status.in_(ACTIVE), tasks.c.owner.is_distinct_from(instance["id"]), gone))
                if r[0] not in ended]
            if dead:
                conn.execute(delete(schema.instances).where(schema.instances.c.id.in_(dead)))
            conn.execute(delete(schema.instances).where(schema.instances.c.heartbeat_at < now - dt.timedelta(days=1)))
            if not ids:
                return []
            stored = dict(conn.execute(
                select(task_logs.c.task_id, func.max(task_logs.c.seq))
                .where(task_logs.c.task_id.in_(ids)).group_by(task_logs.c.task_id)
            ).all())
            for task_id in ids:
                conn.execute(
                    update(tasks)
                    .where(tasks.c.id == task_id, tasks.c.status.in_(ACTIVE))
                    .values(status="INTERRUPTED", finished_at=now,
                            error="the process running this task ended before it finished",
                            record_count=max(stored.get(task_id) or 0, spilled_last_seqs.get(task_id, 0)))
                )
            if (origin := self._announcer) is not None:
                events.announce(conn, origin, tasks=ids)
            return ids

    def heartbeat(self, instance_id: str) -> dict[str, bool]:
        """The active tasks this instance owns are alive, by the database's clock (the instance's own row
        is renewed by recover); returns the ids renewed, each with whether a cancel of it was asked
        (request_cancel). A task of this instance missing there was deleted or marked INTERRUPTED."""
        with self.engine.begin() as conn:
            return {row[0]: row[1] is not None for row in conn.execute(
                update(tasks).where(tasks.c.owner == instance_id, tasks.c.status.in_(ACTIVE))
                .values(heartbeat_at=func.now()).returning(tasks.c.id, tasks.c.cancel_requested_at))}

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
            levels: dict[str, int] = dict(conn.execute(
                select(task_logs.c.level, func.count()).where(where).group_by(task_logs.c.level)).all())
            sources: dict[str, int] = dict(conn.execute(
                select(task_logs.c.source, func.count()).where(where).group_by(task_logs.c.source)).all())
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

    def existing_tasks(self, task_ids: Iterable[str]) -> set[str]:
        """Which of these tasks the store has."""
        with self.engine.connect() as conn:
            return _existing_tasks(conn, task_ids)

    def get_tasks(self, task_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The rows of those of these tasks the store has, by id: one query for many notices."""
        ids = list(task_ids)
        if not ids:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(select(*TASK_COLUMNS).where(tasks.c.id.in_(ids))).mappings()
            return {row["id"]: _task_row(row) for row in rows}

    def get_task(self, task_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(*TASK_COLUMNS).where(tasks.c.id == task_id)).mappings().first()
        return None if row is None else _task_row(row)

    def list_tasks(
        self,
        status: Iterable[str] | None = None,
        plugin: str | None = None,
        before_id: str | None = None,
        limit: int = 100,
        user: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; `before_id` is the keyset cursor (ids grow with creation time); `user`: only the
        tasks that user started."""
        query = select(*TASK_COLUMNS).order_by(tasks.c.id.desc()).limit(limit)
        if user is not None:
            query = query.where(tasks.c.username == user)
        if status:
            query = query.where(tasks.c.status.in_(list(status)))
        if plugin:
            query = query.where(tasks.c.plugin == plugin)
        if before_id:
            query = query.where(tasks.c.id < before_id)
        with self.engine.connect() as conn:
            return [_task_row(row) for row in conn.execute(query).mappings()]

    def sql(self, query: str, max_rows: int, timeout: float) -> tuple[pa.Table, bool]:
        """Run one read-only analyst query; returns (rows, truncated). `timeout` bounds the whole call.

        Only a single SELECT (or EXPLAIN) is accepted, and DuckDB's external access is off for the
        whole database, so SQL can neither write nor touch files; functions that change state even in
        a read-only transaction are refused by name. On PostgreSQL: one statement in a read-only
        transaction with a statement_timeout, and only for a role without file access.
        At most SQL_CONCURRENCY queries run at once in a process; another waits for a slot within its
        time limit. Every column comes back, in order, also when names repeat.
        """
        deadline = time.monotonic() + timeout
        if not _sql_slots.acquire(timeout=timeout):
            raise SQLError(f"{SQL_CONCURRENCY} analyst queries are running already and none ended within the "
                           f"{_seconds(timeout)} s time limit; try again when one has ended")
        try:
            run = self._sql_duckdb if self.is_duckdb else self._sql_postgresql
            return run(query, max_rows, timeout, deadline)
        finally:
            _sql_slots.release()

    def _sql_duckdb(self, query: str, max_rows: int, timeout: float, deadline: float) -> tuple[pa.Table, bool]:
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
                _refuse_duckdb_state_changes(cursor, statements[0])
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SQLError(f"query cancelled after the {_seconds(timeout)} s time limit")
                timer = threading.Timer(remaining, cursor.interrupt)
                timer.start()
                try:
                    relation = _portable_columns(cursor.sql(query))
                    reader = relation.to_arrow_reader(min(max_rows + 1, 100_000))
                    batches, count = [], 0
                    for batch in reader:
                        batches.append(batch)
                        count += batch.num_rows
                        if count > max_rows:
                            break
                    table = pa.Table.from_batches(batches, schema=reader.schema)
                except duckdb.InterruptException:
                    raise SQLError(f"query cancelled after the {_seconds(timeout)} s time limit") from None
                except duckdb.Error as error:
                    raise SQLError(str(error)) from None
                finally:
                    timer.cancel()
            finally:
                cursor.close()
        return table.slice(0, max_rows), table.num_rows > max_rows

    def _sql_postgresql(self, query: str, max_rows: int, timeout: float, deadline: float) -> tuple[pa.Table, bool]:
        import psycopg

        _refuse_postgresql_state_changes(query)
        connection = self.engine.raw_connection()
        try:
            raw = connection.driver_connection  # psycopg 3
            assert raw is not None  # a pool's connection is open until closed below
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SQLError(f"query cancelled after the {_seconds(timeout)} s time limit")
            with raw.cursor() as cursor:
                cursor.execute("SET TRANSACTION READ ONLY")
                cursor.execute(f"SET LOCAL statement_timeout = {max(1, int(remaining * 1000))}")
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
            # A prepared statement takes one statement only (the simple protocol would run
            # "SELECT 1; DELETE ..." whole), and its rows come as text, so that a type psycopg has no
            # binary loader for (money, point, bit, void...) comes as its text, not raw bytes.
            # A RawCursor leaves % alone.
            with psycopg.RawCursor(raw) as cursor:
                _lenient_dates(cursor)
                try:
                    cursor.execute(query, prepare=True)
                    if cursor.description is None:
                        raise SQLError("only queries that return rows (SELECT) are allowed")
                    names = [column.name for column in cursor.description]
                    json_columns = {i for i, column in enumerate(cursor.description) if column.type_code in _PG_JSON_TYPES}
                    rows = cursor.fetchmany(max_rows + 1)
                except psycopg.errors.QueryCanceled:
                    raise SQLError(f"query cancelled after the {_seconds(timeout)} s time limit") from None
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
        return _rows_to_arrow(names, rows[:max_rows], json_columns), truncated


# ---- analyst SQL: what may run -----------------------------------------------------------------------------
# Analyst queries running at once in a process: each can use every core and much memory, and holds a connection.
SQL_CONCURRENCY = 2
_sql_slots = threading.BoundedSemaphore(SQL_CONCURRENCY)

# Table functions analyst SQL may call: they only read (generators, JSON, DuckDB's catalog and pragmas, its type
# test vector). Any other is refused: those that change state even in a read-only transaction (checkpoint,
# force_checkpoint, enable_logging, disable_logging, truncate_duckdb_logs, enable_profiling...), those that run SQL
# given as text (query, query_table, json_execute_serialized_sql) and could spell any of them, those that show
# other connections' SQL (duckdb_logs, duckdb_live_query_metrics), and the readers of files.
DUCKDB_READ_ONLY_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree", "test_all_types",
    "test_vector_types", "pg_timezone_names", "icu_calendar_names", "histogram", "histogram_values", "summary",
    "duckdb_columns", "duckdb_constraints", "duckdb_databases", "duckdb_dependencies", "duckdb_functions",
    "duckdb_indexes", "duckdb_keywords", "duckdb_optimizers", "duckdb_schemas", "duckdb_sequences",
    "duckdb_settings", "duckdb_tables", "duckdb_types", "duckdb_views", "duckdb_memory", "duckdb_temporary_files",
    "duckdb_variables", "duckdb_approx_database_count", "duckdb_dialects", "duckdb_coordinate_systems",
    "pragma_collations", "pragma_database_size", "pragma_metadata_info", "pragma_platform", "pragma_show",
    "pragma_storage_info", "pragma_table_info", "pragma_user_agent", "pragma_version",
})
# Scalar functions that change state even in a read-only transaction: sequences, the connection's random
# seed, DuckDB's own log.
DUCKDB_STATE_CHANGING_FUNCTIONS = frozenset({"nextval", "setval", "setseed", "write_log"})


def _refuse_duckdb_state_changes(cursor: Any, statement: Any) -> None:
    """SQLError naming the first function of the statement analyst SQL may not call, from its syntax tree.

    Every function anywhere in the tree counts (subqueries, CTEs, lambdas, DESCRIBE's query, what EXPLAIN
    explains: EXPLAIN ANALYZE runs it). A statement DuckDB cannot serialize is refused rather than run unchecked.
    """
    text = _explained(statement.query) if statement.type.name == "EXPLAIN" else statement.query
    ((found,),) = cursor.execute("SELECT json_serialize_sql(?)", [text]).fetchall()
    tree = json.loads(found)
    if tree.get("error"):
        raise SQLError(f"only read-only queries (SELECT) are allowed; this one cannot be checked: {tree.get('error_message')}")
    for kind, name in _functions_called(tree):
        if kind == "table" and name not in DUCKDB_READ_ONLY_TABLE_FUNCTIONS:
            raise SQLError(f"table function {name}() is not allowed in analyst SQL: only those that just read are "
                           "(range, generate_series, unnest, json_each, json_tree, the duckdb_* and pragma_* catalog...)")
        if kind == "scalar" and name in DUCKDB_STATE_CHANGING_FUNCTIONS:
            raise SQLError(f"function {name}() is not allowed in analyst SQL: it changes state, and analyst SQL is read-only")


def _functions_called(tree: Any) -> Iterator[tuple[str, str]]:
    """("table" | "scalar", lower-case name) of every function call in a json_serialize_sql tree."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("type") == "TABLE_FUNCTION":
                yield "table", str(node["function"]["function_name"]).lower()
            elif node.get("class") == "FUNCTION":
                yield "scalar", str(node["function_name"]).lower()
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _explained(text: str) -> str:
    """The statement an EXPLAIN explains: what follows EXPLAIN, its ANALYZE or its (option, ...) list."""
    import duckdb

    tokens = duckdb.tokenize(text)
    ends = [position for position, _ in tokens[1:]] + [len(text)]
    words = [(position, text[position:end].strip()) for (position, kind), end in zip(tokens, ends)
             if kind != duckdb.token_type.comment]
    start, depth = 1, 0
    if len(words) > 1 and words[1][1].upper() in ("ANALYZE", "ANALYSE"):
        start = 2
    elif len(words) > 1 and words[1][1] == "(":
        for start, (_, word) in enumerate(words[1:], 1):
            depth += word.count("(") - word.count(")")
            if depth == 0:
                start += 1
                break
    return text[words[start][0]:] if start < len(words) else ""


# Functions a read-only PostgreSQL transaction still runs whose effect outlives it or reaches other sessions:
# advisory locks (a session's stay with the pooled connection after the rollback; any of them makes other sessions
# wait), cancelling or ending backends (the flusher's among them), the session's random seed; and those that run
# SQL given as text (query_to_xml..., ts_stat, ts_rewrite, dblink), which could spell any of these. The name is
# refused wherever it is written (quoted, qualified, in a comment or a string): nothing else spells it.
_PG_REFUSED = re.compile(r"(?<![\w$])(pg_(?:try_)?advisory_\w*|pg_cancel_backend|pg_terminate_backend|setseed"
                         r"|query_to_xml\w*|ts_stat|ts_rewrite|dblink\w*)(?![\w$])", re.IGNORECASE)
_PG_JSON_TYPES = (114, 3802)  # json, jsonb


def _refuse_postgresql_state_changes(query: str) -> None:
    if re.search(r"\bu&\"", query, re.IGNORECASE):
        raise SQLError('identifiers with Unicode escapes (U&"...") are not allowed in analyst SQL: they can spell any name')
    found = _PG_REFUSED.search(query)
    if found:
        raise SQLError(f"function {found.group(1).lower()}() is not allowed in analyst SQL: its effect outlives the "
                       "read-only transaction, reaches other sessions, or it runs SQL given as text")


# ---- analyst SQL: the columns of an answer --------------------------------------------------------------------
# DuckDB types whose Arrow export loses what they hold: UHUGEINT past 2^127 wraps (decimal128), TIME WITH TIME ZONE
# drops its offset, BIT and BIGNUM become DuckDB's internal bytes. They come as DuckDB's text of them instead.
_GARBLED_IN_ARROW = frozenset({"uhugeint", "time with time zone", "bit", "bignum"})


def _portable_columns(relation: Any) -> Any:
    """The query's relation, with each column of a type Arrow would garble (also inside lists, structs and maps)
    cast to one it keeps; positions, not names, pick the columns, so repeated names are kept as they are."""
    casts = [_portable_type(kind) for kind in relation.types]
    if not any(casts):
        return relation
    columns = [f"CAST(#{i} AS {cast})" if cast else f"#{i}" for i, cast in enumerate(casts, 1)]
    return relation.project(", ".join(f"{column} AS {_quoted(name)}" for column, name in zip(columns, relation.columns)))


def _portable_type(kind: Any) -> str | None:
    """The SQL type to cast a DuckDB type to for Arrow, or None when Arrow keeps it as it is."""
    name = kind.id
    if name in _GARBLED_IN_ARROW:
        return "VARCHAR"
    children = kind.children if name in ("list", "array", "struct", "map", "union", "tuple") else []
    fields = [(child, child_type) for child, child_type in children if child != "size"]  # a TUPLE's are all ""
    changed = [_portable_type(child_type) for _, child_type in fields]
    if not any(changed):
        return None
    parts = [cast or str(child_type) for cast, (_, child_type) in zip(changed, fields)]
    if name == "list":
        return f"{parts[0]}[]"
    if name == "array":
        return f"{parts[0]}[{dict(children)['size']}]"
    if name == "struct":
        return "STRUCT(" + ", ".join(f"{_quoted(field)} {part}" for (field, _), part in zip(fields, parts)) + ")"
    if name == "map":
        return f"MAP({parts[0]}, {parts[1]})"
    return "VARCHAR"  # a UNION or TUPLE holding such a type: its text


def _seconds(timeout: float) -> str:
    """A time limit for people: the caller's limit less the few ms spent before the query reads as that limit."""
    return f"{timeout:.2g}" if timeout < 10 else f"{timeout:.0f}"


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _rows_to_arrow(names: list[str], rows: list[tuple[Any, ...]], json_columns: AbstractSet[int] = frozenset()) -> pa.Table:
    """Query rows as Arrow columns. A column Arrow cannot type (mixed JSON values, NaN among numerics, 'infinity'
    among dates, ranges...) becomes text: JSON text for json/jsonb columns, PostgreSQL's text otherwise."""
    columns = []
    for i in range(len(names)):
        values = [row[i] for row in rows]
        try:
            # Arrow's time type has no offset: a TIME WITH TIME ZONE keeps it as text.
            if any(isinstance(v, dt.time) and v.tzinfo is not None for v in values):
                raise TypeError("time with an offset")
            columns.append(pa.array(values))
        except (pa.ArrowException, TypeError, ValueError):
            if i in json_columns:
                text = [None if v is None else json.dumps(v, default=str) for v in values]
            else:
                text = [None if v is None else v if isinstance(v, str) else
                        v.isoformat() if isinstance(v, dt.time) else str(v) for v in values]
            columns.append(pa.array(text, pa.string()))
    return pa.Table.from_arrays(columns, names=names)


def _lenient_dates(cursor: Any) -> None:
    """Dates and timestamps Python cannot hold ('infinity', years past 9999) load as PostgreSQL's text of them."""
    for name, loader in _lenient_date_loaders().items():
        cursor.adapters.register_loader(name, loader)


@functools.cache
def _lenient_date_loaders() -> dict[str, type]:
    import psycopg
    from psycopg.adapt import Loader
    from psycopg.types import datetime as pg_datetime

    def lenient(base: type[Loader]) -> type:
        """A subclass of `base` whose load gives PostgreSQL's text of a value `base` cannot load."""

        def load(self: Loader, data: Any) -> Any:
            try:
                return base.load(self, data)
            except psycopg.DataError:
                return bytes(data).decode()

        return type(f"Lenient{base.__name__}", (base,), {"load": load})

    return {"date": lenient(pg_datetime.DateLoader), "timestamp": lenient(pg_datetime.TimestampLoader),
            "timestamptz": lenient(pg_datetime.TimestamptzLoader)}


# ---- analyst SQL: answers as Python values, JSON and DataFrames ------------------------------------------------
# DuckDB's infinite dates and timestamps: the largest and the negated largest 32- and 64-bit numbers.
_INFINITE = {32: {2**31 - 1: "infinity", -(2**31 - 1): "-infinity"}, 64: {2**63 - 1: "infinity", -(2**63 - 1): "-infinity"}}
_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}


def sql_rows(table: pa.Table) -> list[list[Any]]:
    """An analyst answer's rows as lists of Python values, in column order (a repeated name keeps its column).

    A date or time Python cannot hold comes as DuckDB's text of it: 'infinity' and '-infinity', ISO text for
    years past 9999 or before 1 (-290308-12-22T00:00:00), '24:00:00'.
    """
    return [list(row) for row in zip(*(_python_values(column) for column in table.columns))]


def _python_values(values: pa.Array | pa.ChunkedArray) -> list[Any]:
    if isinstance(values, pa.ChunkedArray):
        return [value for chunk in values.chunks for value in _python_values(chunk)]
    kind = values.type
    if not _has_dates(kind):
        return values.to_pylist()
    if pa.types.is_date(kind) or pa.types.is_timestamp(kind) or pa.types.is_time(kind):
        return _date_values(values)
    if pa.types.is_dictionary(kind):
        return _python_values(values.dictionary_decode())
    valid = values.is_valid().to_pylist()
    if pa.types.is_struct(kind):
        names = [kind.field(i).name for i in range(kind.num_fields)]
        fields = [_python_values(field) for field in values.flatten()]
        return [dict(zip(names, items)) if ok else None for ok, *items in zip(valid, *fields)]
    if pa.types.is_map(kind):
        offsets = values.offsets.to_pylist()
        keys, items = _python_values(values.keys), _python_values(values.items)
        return [list(zip(keys[a:b], items[a:b])) if ok else None for ok, a, b in zip(valid, offsets, offsets[1:])]
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        offsets = values.offsets.to_pylist()
        items = _python_values(values.values)
        return [items[a:b] if ok else None for ok, a, b in zip(valid, offsets, offsets[1:])]
    if pa.types.is_fixed_size_list(kind):
        size, first = kind.list_size, values.offset
        items = _python_values(values.values)
        return [items[(first + i) * size:(first + i + 1) * size] if ok else None for i, ok in enumerate(valid)]
    return values.to_pylist()


def _has_dates(kind: pa.DataType) -> bool:
    if pa.types.is_date(kind) or pa.types.is_timestamp(kind) or pa.types.is_time(kind):
        return True
    if pa.types.is_dictionary(kind):
        return _has_dates(kind.value_type)
    return any(_has_dates(kind.field(i).type) for i in range(kind.num_fields))


def _date_values(values: pa.Array) -> list[Any]:
    """Dates, timestamps and times as Python objects, DuckDB's text where Python's types end (see sql_rows)."""
    kind = values.type
    bits = 32 if pa.types.is_date32(kind) or pa.types.is_time32(kind) else 64
    numbers = values.cast(pa.int32() if bits == 32 else pa.int64())
    edges = _INFINITE[bits]
    if pa.types.is_time(kind):
        edges = {_PER_DAY[kind.unit]: "24:00:00"}  # datetime.time has no 24:00:00: it would read as 00:00:00
    if not pc.any(pc.is_in(numbers, value_set=pa.array(list(edges), numbers.type))).as_py():
        try:
            return values.to_pylist()
        except (OverflowError, ValueError):
            pass  # a date past Python's year 9999
    out: list[Any] = []
    for i, number in enumerate(numbers.to_pylist()):
        if number is None or number in edges:
            out.append(None if number is None else edges[number])
            continue
        try:
            out.append(values[i].as_py())
        except (OverflowError, ValueError):
            out.append(_far_date_text(number, kind))
    return out


def _far_date_text(number: int, kind: pa.DataType) -> str:
    """ISO text of a date or timestamp past what Python's datetime holds (numpy's calendar runs far enough)."""
    import numpy as np

    if pa.types.is_date(kind):
        return str(np.datetime64(number, "D" if pa.types.is_date32(kind) else "ms"))
    text = re.sub(r"\.0+$", "", str(np.datetime64(number, kind.unit)))
    return text + "+00:00" if kind.tz else text


_json_str = json.encoder.encode_basestring  # C: quoted and escaped, non-ASCII kept


def sql_json(value: Any) -> str:
    """JSON text of one value of sql_rows(): valid JSON for every value, nothing rounded.

    NaN and the infinities (which JSON has no numbers for) are the strings "NaN", "Infinity" and "-Infinity";
    integers and decimals are JSON numbers with all their digits (HUGEINT too; JavaScript's JSON.parse rounds
    past 2^53, Python's json keeps them, and parse_float=Decimal keeps decimals); dates and times are ISO
    text, an INTERVAL {"months", "days", "nanoseconds"}, a BLOB hex text, a MAP a list of [key, value] pairs.
    """
    if value is None:
        return "null"
    if isinstance(value, str):
        return _json_str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return float.__repr__(value) if math.isfinite(value) else _special_number(value)
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else _special_number(float(value))
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_json_str(str(key))}: {sql_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, pa.MonthDayNano):  # a named tuple: before the tuples
        return f'{{"months": {value.months}, "days": {value.days}, "nanoseconds": {value.nanoseconds}}}'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(sql_json(item) for item in value) + "]"
    if isinstance(value, (dt.date, dt.time)):  # datetime too
        return _json_str(value.isoformat())
    if isinstance(value, dt.timedelta):
        return float.__repr__(value.total_seconds())
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _json_str(bytes(value).hex())
    return _json_str(str(value))


def _special_number(value: float) -> str:
    return '"NaN"' if value != value else '"Infinity"' if value > 0 else '"-Infinity"'


def sql_to_pandas(table: pa.Table) -> Any:
    """An analyst answer as a DataFrame, every column kept (repeated names too).

    A column pandas cannot hold in its own types (a DATE past 2262 or infinite, TIME 24:00:00, a UNION)
    becomes one of Python objects, with DuckDB's text where Python's types end (see sql_rows).
    """
    try:
        return table.to_pandas()
    except (pa.ArrowException, OverflowError, ValueError):
        pass
    import pandas as pd

    columns = []
    for column in table.columns:
        try:
            columns.append(column.to_pandas())
        except (pa.ArrowException, OverflowError, ValueError):
            columns.append(pd.Series(_python_values(column), dtype=object))
    frame = pd.concat(columns, axis=1, ignore_index=True)
    frame.columns = table.column_names
    return frame


def _without_nul(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row PostgreSQL takes: its text and JSONB hold no NUL (text refuses 0x00, JSONB the \\u0000
    escape, and the whole batch with it), so a NUL becomes U+FFFD, the marker of other text no store
    holds. Only a row with one is touched."""
    out = dict(row)
    for key, value in row.items():
        if isinstance(value, str):
            out[key] = _json_without_nul(value) if key in ("metadata", "params") else _text_without_nul(value)
    return out


def _text_without_nul(text: str) -> str:
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _json_without_nul(text: str) -> str:
    """JSON text whose strings hold no NUL (the \\u0000 escape); as it was when none does."""
    if "\\u0000" not in text:
        return text
    return json.dumps(_strings_without_nul(json.loads(text)), ensure_ascii=False, separators=(",", ":"))


def _strings_without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_strings_without_nul(k): _strings_without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strings_without_nul(v) for v in value]
    return value


def _upsert(conn: Any, table: Any, rows: list[Mapping[str, Any]]) -> None:
    """Insert rows, or update the row with the same primary key."""
    from sqlalchemy.dialects.postgresql import (
        insert,  # duckdb-engine speaks PostgreSQL's ON CONFLICT
    )

    key = table.primary_key.columns.values()[0].name
    for row in rows:
        statement = insert(table).values(**row)
        changes = {k: statement.excluded[k] for k in row if k != key}
        conn.execute(statement.on_conflict_do_update(index_elements=[key], set_=changes))


def _write_task_row(conn: Any, row: Mapping[str, Any], mode: str | None) -> bool:
    """One task row, as Store.write says; False when the stored row refused it."""
    from sqlalchemy.dialects.postgresql import insert

    owner = row.get("owner")
    values = dict(row)
    if owner is not None:
        values["heartbeat_at"] = func.now()
    if mode == "claim" or owner is None:
        _upsert(conn, tasks, [values])
        return True
    held = (tasks.c.owner == owner) & (tasks.c.status.in_(ACTIVE) | (tasks.c.status == row["status"]))
    if mode == "new":
        statement = insert(tasks).values(**values)
        changes = {k: statement.excluded[k] for k in values if k != "id"}
        statement = statement.on_conflict_do_update(index_elements=["id"], set_=changes, where=held)
    else:
        statement = update(tasks).where(tasks.c.id == row["id"], held).values(
            **{k: v for k, v in values.items() if k != "id"})
    return conn.execute(statement.returning(tasks.c.id)).first() is not None


def _existing_tasks(conn: Any, task_ids: Iterable[str]) -> set[str]:
    return {row[0] for row in conn.execute(select(tasks.c.id).where(tasks.c.id.in_(list(task_ids))))}


def _copy_postgresql(conn: Any, batch: pa.Table) -> None:
    """Append a batch by COPY, left out the records of tasks without a row (deleted meanwhile) and those whose
    (task_id, seq) is stored already (a replay; a retry whose first try committed), which the unique key
    finds. The rows go as CSV that Arrow writes (every value quoted, NULL unquoted: PostgreSQL's CSV
    tells them apart), not row by row from Python. Straight into task_logs first; only a batch the key
    refuses goes through a temporary table and INSERT … ON CONFLICT DO NOTHING, which takes twice as long."""
    import psycopg

    ids = pc.unique(batch.column("task_id"))
    with_row = _existing_tasks(conn, ids.to_pylist())
    if len(with_row) < len(ids):
        batch = batch.filter(pc.is_in(batch.column("task_id"), value_set=pa.array(list(with_row), pa.string())))
        if not batch.num_rows:
            return
    data = pa.BufferOutputStream()
    pa_csv.write_csv(_postgresql_batch(batch.select(list(LOG_COLUMNS))), data,
                     pa_csv.WriteOptions(include_header=False, quoting_style="all_valid"))
    rows = data.getvalue().to_pybytes()
    quoted = ", ".join(f'"{c}"' for c in LOG_COLUMNS)
    cursor = conn.connection.driver_connection.cursor()
    try:
        with conn.begin_nested(), cursor.copy(f"COPY task_logs ({quoted}) FROM STDIN WITH (FORMAT csv)") as copy:
            copy.write(rows)
        return
    except psycopg.errors.UniqueViolation:
        pass
    cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS nbtasklog_batch ON COMMIT DELETE ROWS "
                   f"AS SELECT {quoted} FROM task_logs WITH NO DATA")
    with cursor.copy(f"COPY nbtasklog_batch ({quoted}) FROM STDIN WITH (FORMAT csv)") as copy:
        copy.write(rows)
    cursor.execute(f"INSERT INTO task_logs ({quoted}) SELECT {quoted} FROM nbtasklog_batch "
                   "ON CONFLICT (task_id, seq) DO NOTHING")


def _seq_ranges(batch: pa.Table | None) -> dict[str, tuple[int, int]]:
    """The first and last seq of each task's records in a batch."""
    if batch is None or not batch.num_rows:
        return {}
    ranges = batch.group_by("task_id").aggregate([("seq", "min"), ("seq", "max")])
    return {task_id: (first, last) for task_id, first, last in zip(
        ranges.column("task_id").to_pylist(), ranges.column("seq_min").to_pylist(), ranges.column("seq_max").to_pylist())}


def _postgresql_batch(batch: pa.Table) -> pa.Table:
    """The batch as PostgreSQL takes it: text and JSONB without NUL (see _without_nul)."""
    for name in ("source", "message"):
        column = batch.column(name)
        batch = batch.set_column(batch.schema.get_field_index(name), name, pc.replace_substring(column, "\x00", "\ufffd"))
    metadata = batch.column("metadata")
    if pc.any(pc.match_substring(metadata, "\\u0000")).as_py():  # rare: repaired value by value
        fixed = [None if m is None else _json_without_nul(m) for m in metadata.to_pylist()]
        batch = batch.set_column(batch.schema.get_field_index("metadata"), "metadata", pa.array(fixed, pa.string()))
    return batch


def _quiet_duckdb_connection(dbapi_connection: Any, _record: Any) -> None:
    # DuckDB draws a progress bar (an ipywidget in a kernel) into whichever cell is running when a
    # statement takes over 2 s, a background flush included; the option is per connection.
    dbapi_connection.execute("SET enable_progress_bar = false")


def _nul_free_parameters(dbapi_connection: Any, _record: Any) -> None:
    """PostgreSQL's text holds no NUL and refuses a query parameter with one (a reader's search, source or
    user, typed into a URL): on this store a NUL means the U+FFFD it was stored as, in every parameter."""
    from psycopg.types.string import StrDumperUnknown  # the dumper psycopg gives str (the server infers the type)

    class NulFreeStrDumper(StrDumperUnknown):
        def dump(self, obj: str) -> Any:
            return super().dump(_text_without_nul(obj))

    dbapi_connection.adapters.register_dumper(str, NulFreeStrDumper)


def _duckdb(conn: Any) -> Any:
    """The duckdb connection under a SQLAlchemy one (duckdb-engine wraps it and its cursors return None)."""
    return conn.connection.driver_connection._ConnectionWrapper__c


def _json_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _task_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A tasks row as the store hands it out: params parsed, times in UTC."""
    out = dict(row)
    params = out.get("params")
    out["params"] = json.loads(params) if isinstance(params, str) else params
    for key in ("created_at", "started_at", "finished_at"):
        value = out.get(key)
        if isinstance(value, datetime):
            out[key] = value.astimezone(timezone.utc)
    return out
