"""2. End to end: one task emits N records; records/s from task start until every one is in the database.

The engine runs with its defaults (flush every 2 s or 122,880 records, one DuckDB row group). The
clock starts before run_task and stops after the task ended and engine.flush() returned; the records
are then counted in the database (untimed). The reference, in the same run, is the raw bulk path
alone on the same rows, prebuilt as LogRecord tuples: records_to_arrow into one Arrow table, then
Store.write (DuckDB's INSERT ... SELECT from the registered table) into a fresh file.

Runs alternate ours / raw, and the ratio is the median of the per-pair ratios: on a shared machine
the load drifts over seconds, and a pair run back to back sees about the same load. The process CPU
time of both (all threads: task, flusher, DuckDB's workers) is reported too; it does not depend on
how much of the machine others take, and it is the bound when no core is free.
"""

from __future__ import annotations

from datetime import datetime, timezone
from time import perf_counter, process_time, time_ns
from typing import Any

from common import Row, check, median, persisted_plugin_records, temp_dir

from nbtasklog import Engine, LogRecord
from nbtasklog.store.store import Store, records_to_arrow


def emit(params: dict[str, Any], context: Any) -> None:
    info = context.logger.info
    for i in range(params["n"]):
        info("record %d", i)


def _ours(n: int) -> tuple[float, float]:
    with temp_dir("e2e") as directory:
        engine = Engine(directory / "bench.duckdb", handle_signals=False)
        try:
            engine.run_task(emit, {"n": 10}).wait(timeout=60)  # connected, schema made: as in a running server
            engine.flush()
            start, cpu = perf_counter(), process_time()
            task = engine.run_task(emit, {"n": n})
            task.wait(timeout=600)
            check(engine.flush(), "end to end: the buffer could not be written")
            elapsed, cpu = perf_counter() - start, process_time() - cpu
            check(task.status == "SUCCESS", f"end to end: task {task.status}: {task.error}")
            count = persisted_plugin_records(engine, task.id)
            check(count == n, f"end to end: {count} records persisted, expected {n}")
        finally:
            engine.close()
    return n / elapsed, cpu


def _raw(records: list[LogRecord]) -> tuple[float, float]:
    with temp_dir("e2e-raw") as directory:
        store = Store(directory / "raw.duckdb")
        try:
            store.engine  # schema made before the clock starts, as for the engine (warmed up by a first task)
            start, cpu = perf_counter(), process_time()
            store.write([{"id": records[0].task_id, "plugin": "bench", "params": "{}", "status": "RUNNING",
                          "created_at": datetime.now(timezone.utc)}], records_to_arrow(records))
            elapsed, cpu = perf_counter() - start, process_time() - cpu
            count = store.sql("SELECT count(*) FROM task_logs", max_rows=1, timeout=60)[0].column(0)[0].as_py()
            check(count == len(records), f"raw reference: {count} rows, expected {len(records)}")
        finally:
            store.close()
    return len(records) / elapsed, cpu


def run(quick: bool) -> list[Row]:
    n, reps = (50_000, 2) if quick else (1_000_000, 5)
    base = time_ns() // 1000
    records = [LogRecord("0" * 13 + "bench000", i + 1, base + i, "INFO", "plugin", f"record {i}", None) for i in range(n)]
    ours: list[float] = []
    raw: list[float] = []
    cpu_ours: list[float] = []
    cpu_raw: list[float] = []
    for _ in range(reps):
        rate, cpu = _ours(n)
        ours.append(rate)
        cpu_ours.append(cpu)
        rate, cpu = _raw(records)
        raw.append(rate)
        cpu_raw.append(cpu)
    rate, reference = median(ours), median(raw)
    share = median([a / b for a, b in zip(ours, raw)])
    cpu_per_record, cpu_per_record_ref = median(cpu_ours) / n * 1e6, median(cpu_raw) / n * 1e6
    return [
        Row("end_to_end", f"2. end to end: one task emits {n:,} `info(\"record %d\", i)` records, task start → all "
            f"persisted, engine defaults (ref: `records_to_arrow` + `Store.write` of the same prebuilt rows into a "
            f"fresh DuckDB file; medians of {reps} alternated pairs, ratio = median of the pairs' ratios; process CPU "
            f"per record {cpu_per_record:.2f} µs, ref {cpu_per_record_ref:.2f} µs "
            f"(ref / ours {cpu_per_record_ref / cpu_per_record:.0%}))",
            rate, reference, "records/s", "≥ 150,000 records/s and ≥ 50 % of ref",
            rate >= 150_000 and share >= 0.5, ratio=share, ratio_text=f"{share:.0%} of ref"),
    ]
