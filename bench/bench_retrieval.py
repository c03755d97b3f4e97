"""4. Retrieval (SC-001): one task's records out of a store of 10,000,000 records of 10,000 tasks, on a
DuckDB file and on PostgreSQL (started by tests/postgres.py on a Unix socket, as the tests use it).

The store is built fast and directly: Arrow batches made column-wise with pyarrow compute (no Python
loop per row) and appended with Store.write, each task's records contiguous and tasks in id order, as
the flusher writes them; the tasks table gets one finished row per task. Records carry realistic
messages, levels (DEBUG 20 %, INFO 70 %, WARNING 8 %, ERROR 2 %), sources and, on a quarter of them,
metadata {"dashboard_id": n, "step": ...}.

Measured: Engine.logs(task_id, ..., limit=1000), the API the REST handler and the widget call
(it looks the task up, queries the store and merges the not-yet-written records), for five filters,
each on a different task per repetition. Reference: the same query as raw SQL on the database's own
driver connection to the same database (fetchall), alternated with the measured one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from time import perf_counter, time_ns
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from common import Row, check, median, temp_dir

from nbtasklog import Engine
from nbtasklog.store.store import LOG_ARROW_SCHEMA, Store, _duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from postgres import PostgresServer  # noqa: E402  (tests/postgres.py: the one way a PostgreSQL is started)

LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
SOURCES = ["plugin", "superset_api", "db", "system"]
# (prefix, suffix) around a number; every fifth one has the text the search query looks for.
MESSAGES = [
    ("Exporting dashboard ", " to the backup bucket"),
    ("GET /api/v1/dashboard/", " -> 200 in 41 ms"),
    ("Copied chart ", " with 3 datasets"),
    ("Resolved database uuid for dataset ", ""),
    ("Request to /api/v1/chart/", " timed out after 30 s, retrying"),
    ("Wrote ", " rows to dashboards.parquet"),
    ("belief_scope enter export_dashboard id=", ""),
    ("Skipping archived dashboard ", ""),
    ("Validated position JSON of dashboard ", ": 12 charts, 4 rows"),
    ("Connection pool checkout took ", " ms"),
]
SEARCH = "timed out"
LOG_SQL_COLUMNS = "task_id, seq, timestamp, level, source, message, metadata"


def _task_ids(count: int, start_us: int) -> list[str]:
    """Ids shaped like runner.new_task_id (13 hex digits of µs, 8 more), increasing."""
    return [f"{start_us + i * 60_000_000:013x}{i:08x}" for i in range(count)]


def _hash(task: np.ndarray, seq: np.ndarray, salt: int) -> np.ndarray:
    return (task * 2654435761 + seq * 40503 + salt * 97) % 1000


def _dashboard(task: np.ndarray, seq: np.ndarray) -> np.ndarray:
    return (task * 13 + seq // 100) % 500


def _batch(ids: pa.Array, first: int, tasks: int, per_task: int, start_us: int) -> pa.Table:
    task = np.repeat(np.arange(first, first + tasks, dtype=np.int64), per_task)
    seq = np.tile(np.arange(1, per_task + 1, dtype=np.int64), tasks)
    timestamp = start_us + task * 60_000_000 + seq * 1_000
    r_level, r_source, r_message, r_meta = (_hash(task, seq, salt) for salt in range(4))
    level = np.select([r_level < 200, r_level < 900, r_level < 980], [0, 1, 2], 3)
    source = np.select([r_source < 550, r_source < 800, r_source < 920], [0, 1, 2], 3)
    template = r_message % len(MESSAGES)
    number = pc.cast(pa.array((task * 7 + seq) % 100_000), pa.string())
    message = pc.binary_join_element_wise(
        pc.take(pa.array([p for p, _ in MESSAGES]), pa.array(template)),
        number,
        pc.take(pa.array([s for _, s in MESSAGES]), pa.array(template)),
        "",
    )
    dashboard = pc.cast(pa.array(_dashboard(task, seq)), pa.string())
    step = pc.take(pa.array(['"export"}', '"verify"}']), pa.array(seq % 2))
    metadata_text = pc.binary_join_element_wise('{"dashboard_id":', dashboard, ',"step":', step, "")
    metadata = pc.if_else(pa.array(r_meta < 250), metadata_text, pa.scalar(None, pa.string()))
    return pa.Table.from_arrays(
        [
            pc.take(ids, pa.array(task)),
            pa.array(seq),
            pa.array(timestamp, pa.timestamp("us", tz="UTC")),
            pc.take(pa.array(LEVELS), pa.array(level)),
            pc.take(pa.array(SOURCES), pa.array(source)),
            message,
            metadata,
        ],
        schema=LOG_ARROW_SCHEMA,
    )


def build(path: Any, tasks: int, per_task: int) -> tuple[list[str], float]:
    """Write the store; returns the task ids and the seconds it took."""
    started = perf_counter()
    start_us = time_ns() // 1000 - tasks * 60_000_000
    ids = _task_ids(tasks, start_us)
    ids_array = pa.array(ids)
    store = Store(path)
    try:
        created = pa.array(start_us + np.arange(tasks, dtype=np.int64) * 60_000_000, pa.timestamp("us", tz="UTC"))
        finished = pc.add(created, pa.scalar(per_task * 1_000 + 1_000, pa.duration("us")))
        task_rows = pa.table({
            "id": ids_array,
            "plugin": pa.array(["dashboard_backup"] * tasks),
            "params": pa.array(['{"dashboards": "all"}'] * tasks),
            "status": pa.array(["SUCCESS"] * tasks),
            "created_at": created,
            "started_at": created,
            "finished_at": finished,
            "progress": pa.array([1.0] * tasks),
            "record_count": pa.array([per_task] * tasks, pa.int64()),
        })
        if store.is_duckdb:
            with store.engine.begin() as conn:  # one bulk insert; Store.write upserts row by row
                raw = _duckdb(conn)
                raw.register("bench_tasks", task_rows)
                raw.execute(f"INSERT INTO tasks ({', '.join(task_rows.column_names)}) "
                            f"SELECT {', '.join(task_rows.column_names)} FROM bench_tasks")
                raw.unregister("bench_tasks")
        else:
            rows = task_rows.to_pylist()
            store.write(rows, row_modes={row["id"]: "new" for row in rows})
        tasks_per_batch = max(1, 1_000_000 // per_task)
        for first in range(0, tasks, tasks_per_batch):
            store.write((), _batch(ids_array, first, min(tasks_per_batch, tasks - first), per_task, start_us))
    finally:
        store.close()
    return ids, perf_counter() - started


def _queries(task_index: int, per_task: int, postgresql: bool = False) -> dict[str, tuple[dict[str, Any], str, list[Any]]]:
    """name -> (Engine.logs filter, raw SQL condition after task_id, its parameters), in the database's
    own SQL and placeholders."""
    seq = np.array([per_task // 2])
    dashboard = int(_dashboard(np.array([task_index]), seq)[0])
    p = "%s" if postgresql else "?"
    json_path = "metadata #>> '{dashboard_id}'" if postgresql else "json_extract_string(metadata, '$.\"dashboard_id\"')"
    return {
        "unfiltered": ({}, "", []),
        "level ≥ WARNING": ({"level": "WARNING"}, "AND level IN ('WARNING', 'ERROR')", []),
        "source = superset_api": ({"source": "superset_api"}, f"AND source IN ({p})", ["superset_api"]),
        f"search \"{SEARCH}\"": ({"search": SEARCH}, f"AND strpos(lower(message), lower({p})) > 0", [SEARCH]),
        "metadata dashboard_id =": ({"meta": {"dashboard_id": dashboard}}, f"AND {json_path} = {p}", [str(dashboard)]),
    }


KEYS = ["unfiltered", "level", "source", "search", "metadata"]


def _measure(engine: Engine, ids: list[str], per_task: int, reps: int, postgresql: bool,
             raw: Callable[[str, list[Any]], list[Any]]) -> tuple[dict[str, list[float]], ...]:
    """Engine.logs against the raw query, alternated, each filter on `reps` tasks (after one warm-up)."""
    tasks = len(ids)
    picks = [int(i) for i in np.linspace(tasks // 7, tasks - 1 - tasks // 11, reps)]
    names = list(_queries(0, per_task))
    ours: dict[str, list[float]] = {name: [] for name in names}
    reference: dict[str, list[float]] = {name: [] for name in names}
    returned: dict[str, list[float]] = {name: [] for name in names}
    placeholder = "%s" if postgresql else "?"
    for warm, index in [(True, picks[0])] + [(False, i) for i in picks]:
        task_id = ids[index]
        for name, (filter_, condition, params) in _queries(index, per_task, postgresql).items():
            sql = (f"SELECT {LOG_SQL_COLUMNS} FROM task_logs WHERE task_id = {placeholder} {condition} "
                   f"ORDER BY seq LIMIT 1000")
            start = perf_counter()
            records = engine.logs(task_id, limit=1000, **filter_)
            middle = perf_counter()
            rows = raw(sql, [task_id, *params])
            end = perf_counter()
            check(len(records) == len(rows), f"retrieval {name}: {len(records)} records, raw SQL {len(rows)}")
            check(all(r.task_id == task_id for r in records), f"retrieval {name}: records of another task")
            if not warm:
                ours[name].append((middle - start) * 1000)
                reference[name].append((end - middle) * 1000)
                returned[name].append(len(records))
    return ours, reference, returned


def _rows(label: str, reference_label: str, key: str, figures: tuple[dict[str, list[float]], ...],
          per_task: int, total: int, tasks: int, reps: int) -> list[Row]:
    ours, reference, returned = figures
    rows = []
    for number, name in enumerate(ours):
        measured = median(ours[name])
        rows.append(Row(
            f"{key}.{KEYS[number]}",
            f"4. retrieval (SC-001){label}: `Engine.logs(task, limit=1000)` {name}, ~{median(returned[name]):,.0f} of a "
            f"task's {per_task:,} records, store of {total:,} records / {tasks:,} tasks "
            f"(ref: same query as raw SQL, {reference_label} fetchall; median of {reps} tasks)",
            measured, median(reference[name]), "ms", "≤ 20 ms (spec 200 ms)", measured <= 20,
        ))
    return rows


def run(quick: bool) -> list[Row]:
    tasks, per_task, reps = (200, 1_000, 5) if quick else (10_000, 1_000, 21)
    total = tasks * per_task
    with temp_dir("retrieval") as directory:
        path = directory / "bench.duckdb"
        ids, build_seconds = build(path, tasks, per_task)
        engine = Engine(path, handle_signals=False)
        try:
            engine.flush()
            # The raw connection: the duckdb connection under the store's own (a second
            # duckdb.connect to the same file in this process would need the same config).
            with engine.store.engine.connect() as conn:
                raw = _duckdb(conn).cursor()
                count = raw.execute("SELECT count(*) FROM task_logs").fetchone()[0]
                check(count == total, f"retrieval: store has {count} records, expected {total}")
                duckdb_figures = _measure(engine, ids, per_task, reps, False,
                                          lambda sql, params: raw.execute(sql, params).fetchall())
                raw.close()
        finally:
            engine.close()
    rows = _rows("", "duckdb", "retrieval", duckdb_figures, per_task, total, tasks, reps)
    rows[0].what += f"; store built in {build_seconds:.1f} s"
    postgres = PostgresServer().init()
    try:
        url = postgres.new_database(role="nbtasklog_bench")
        ids, build_seconds = build(url, tasks, per_task)
        engine = Engine(url, handle_signals=False)
        try:
            engine.flush()
            import psycopg

            conninfo = engine.store.url.set(drivername="postgresql").render_as_string(hide_password=False)
            with psycopg.connect(conninfo) as raw_pg:
                raw_pg.execute("ANALYZE")
                count = raw_pg.execute("SELECT count(*) FROM task_logs").fetchone()[0]
                check(count == total, f"retrieval on PostgreSQL: store has {count} records, expected {total}")
                pg_figures = _measure(engine, ids, per_task, reps, True,
                                      lambda sql, params: raw_pg.execute(sql, params).fetchall())
        finally:
            engine.close()
    finally:
        postgres.stop()
    pg_rows = _rows(" on PostgreSQL", "psycopg", "retrieval_pg", pg_figures, per_task, total, tasks, reps)
    pg_rows[0].what += f"; store built in {build_seconds:.1f} s"
    return rows + pg_rows
