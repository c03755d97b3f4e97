"""1. One logging call inside a running task: TaskLogger.info on the persisted path (plain, and with three
fields of metadata), and a debug call the level gate drops.

The calls are made by a real task of a real engine, so `info` goes all the way to the write buffer
(seq, timestamp, record, deque). The flusher is kept out of the timed loops (flush_interval and
flush_size far beyond one loop); the buffer is written between loops, untimed. The reference is
stdlib logging in the same thread: a Logger at INFO with one handler whose emit does nothing.
"""

from __future__ import annotations

import logging
from time import perf_counter
from typing import Any

from common import Row, check, median, persisted_plugin_records, temp_dir

from nbtasklog import Engine

CASES = ("info", "debug", "std_info", "std_debug", "info_fields", "std_info_fields")


class NoopHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        pass


def _stdlib_logger() -> logging.Logger:
    logger = logging.getLogger("nbtasklog_bench.reference")
    logger.handlers[:] = [NoopHandler()]
    logger.setLevel(logging.INFO)
    logger.propagate = False  # only the no-op handler, not nbtasklog's capture on the root
    return logger


def _task(engine: Engine):
    def per_call(params: dict[str, Any], context: Any) -> dict[str, list[float]]:
        n, reps = params["n"], params["reps"]
        reference = _stdlib_logger()
        calls = {
            "info": context.logger.info,
            "debug": context.logger.debug,
            "std_info": reference.info,
            "std_debug": reference.debug,
        }
        info, std_info = context.logger.info, reference.info
        times: dict[str, list[float]] = {name: [] for name in CASES}
        for _ in range(reps):
            for name in CASES:  # interleaved, so that a noisy moment hits every case alike
                start = perf_counter()
                if name == "info_fields":  # a structured call: three fields of metadata
                    for i in range(n):
                        info("msg %d", i, a=1, b="x", c=i)
                elif name == "std_info_fields":
                    for i in range(n):
                        std_info("msg %d", i, extra={"a": 1, "b": "x", "c": i})
                else:
                    call = calls[name]
                    for i in range(n):
                        call("msg %d", i)
                times[name].append((perf_counter() - start) / n * 1e6)
            engine.flush()  # untimed: write what the info loop queued
        return times

    return per_call


def run(quick: bool) -> list[Row]:
    n, reps = (10_000, 3) if quick else (100_000, 9)
    with temp_dir("logger") as directory:
        engine = Engine(directory / "bench.duckdb", flush_interval=3600, flush_size=2**62, handle_signals=False)
        try:
            task = engine.run_task(_task(engine), {"n": n, "reps": reps})
            check(task.wait(timeout=600) == "SUCCESS", f"per-call task failed: {task.error}")
            times = task.result
            engine.flush()
            persisted = persisted_plugin_records(engine, task.id)
            check(persisted == 2 * n * reps, f"per-call: {persisted} info records persisted, expected {2 * n * reps}")
        finally:
            engine.close()
    info, debug, std_info, std_debug, fields, std_fields = (median(times[name]) for name in CASES)
    label = f"median of {reps} loops of {n:,} calls, loop included"
    return [
        Row("logger.info", f"1. per call: `TaskLogger.info(\"msg %d\", i)` in a running task, to the write buffer "
            f"(ref: stdlib `Logger.info` to a no-op handler; {label})",
            info, std_info, "µs/call", "≤ 1.0 µs", info <= 1.0),
        Row("logger.info_fields", f"1. per call, structured: `TaskLogger.info(\"msg %d\", i, a=1, b=\"x\", c=i)`, the "
            f"fields stored as JSON metadata (ref: stdlib `Logger.info(\"msg %d\", i, extra={{…}})` to a no-op "
            f"handler; {label})", fields, std_fields, "µs/call", "≤ 1.2 µs", fields <= 1.2),
        Row("logger.debug_filtered", f"1. per call: `TaskLogger.debug` dropped by task_log_level INFO "
            f"(ref: stdlib `Logger.debug` below the logger's level; {label})",
            debug, std_debug, "µs/call", "≤ 0.3 µs", debug <= 0.3),
    ]
