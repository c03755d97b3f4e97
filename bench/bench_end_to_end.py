"""2. End to end: one task emits N records; records/s from task start until every one is in the database.

The engine runs with its defaults (flush every 2 s or 20,000 records). The clock starts before
run_task and stops after the task ended and engine.flush() returned; the records are then counted
in the database (untimed). The reference, in the same run, is the raw bulk path alone on the same
rows, prebuilt as LogRecord tuples: records_to_arrow into one Arrow table, then Store.write (DuckDB's
INSERT ... SELECT from the registered table) into a fresh file. Runs alternate ours / raw.
"""

from __future__ import annotations

from time import perf_counter, time_ns
from typing import Any

from common import Row, check, median, persisted_plugin_records, temp_dir

from nbtasklog import Engine, LogRecord
from nbtasklog.store.store import Store, records_to_arrow


def emit(params: dict[str, Any], context: Any) -> None:
    info = context.logger.info
    for i in range(params["n"]):
        info("record %d", i)


def _ours(n: int) -> float:
    with temp_dir("e2e") as directory:
        engine = Engine(directory / "bench.duckdb", handle_signals=False)
        try:
            engine.run_task(emit, {"n": 10}).wait(timeout=60)  # connected, schema made: as in a running server
            engine.flush()
            start = perf_counter()
            task = engine.run_task(emit, {"n": n})
            task.wait(timeout=600)
            check(engine.flush(), "end to end: the buffer could not be written")
            elapsed = perf_counter() - start
            check(task.status == "SUCCESS", f"end to end: task {task.status}: {task.error}")
            count = persisted_plugin_records(engine, task.id)
            check(count == n, f"end to end: {count} records persisted, expected {n}")
        finally:
            engine.close()
    return n / elapsed


def _raw(records: list[LogRecord]) -> float:
    with temp_dir("e2e-raw") as directory:
        store = Store(directory / "raw.duckdb")
        try:
            store.engine  # schema made before the clock starts, as for the engine (warmed up by a first task)
            start = perf_counter()
            store.write((), records_to_arrow(records))
            elapsed = perf_counter() - start
            count = store.sql("SELECT count(*) FROM task_logs", max_rows=1, timeout=60)[0].column(0)[0].as_py()
            check(count == len(records), f"raw reference: {count} rows, expected {len(records)}")
        finally:
            store.close()
    return len(records) / elapsed


def run(quick: bool) -> list[Row]:
    n, reps = (50_000, 2) if quick else (1_000_000, 3)
    base = time_ns() // 1000
    records = [LogRecord("0" * 13 + "bench000", i + 1, base + i, "INFO", "plugin", f"record {i}", None) for i in range(n)]
    ours: list[float] = []
    raw: list[float] = []
    for _ in range(reps):
        ours.append(_ours(n))
        raw.append(_raw(records))
    rate, reference = median(ours), median(raw)
    share = rate / reference
    return [
        Row("end_to_end", f"2. end to end: one task emits {n:,} `info(\"record %d\", i)` records, task start → all "
            f"persisted, engine defaults (ref: `records_to_arrow` + `Store.write` of the same prebuilt rows into a "
            f"fresh DuckDB file; median of {reps})",
            rate, reference, "records/s", "≥ 150,000 records/s and ≥ 50 % of ref",
            rate >= 150_000 and share >= 0.5, ratio_text=f"{share:.0%} of ref"),
    ]
