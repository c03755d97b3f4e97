"""Plugins that bench_server.py has a real `jupyter server` import (--NbTaskLogApp.plugin_modules=server_plugins).

Both wait until the task has the number of live subscribers the benchmark asked for (so that no
record is emitted before the WebSocket clients listen), settle a moment, then emit at a fixed rate
and end with one record "bench done" whose metadata holds the timings the benchmark reads back.
"""

from __future__ import annotations

import gc
from time import perf_counter, sleep, thread_time, time_ns
from typing import Any

from nbtasklog import register
from nbtasklog.context import current_emitter

CHUNK = 100  # firehose: records the task may run ahead of its schedule (1 ms at 100,000/s)


class _GcPauses:
    """Full (generation 2) collections in this process while it is installed, and the time they took."""

    def __init__(self) -> None:
        self.count, self.seconds, self._start = 0, 0.0, 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._start = perf_counter()
        else:
            self.count += 1
            self.seconds += perf_counter() - self._start


def _readers(emitter: Any) -> int:
    """Live readers of the task: a server's shared window counts its sockets (`readers`), another subscriber counts one."""
    return sum(len(s.readers) if hasattr(s, "readers") else 1 for s in list(emitter.subscribers))


def _wait_for_subscribers(params: dict[str, Any]) -> int:
    emitter = current_emitter.get()
    wanted = int(params.get("subscribers", 0))
    deadline = perf_counter() + float(params.get("wait_timeout", 60))
    while _readers(emitter) < wanted and perf_counter() < deadline:
        sleep(0.005)
    attached = _readers(emitter)
    sleep(float(params.get("settle", 0.3)))  # the subscribers' history catch-up (one record) is done
    return attached


@register(name="bench_live_latency")
def live_latency(params: dict[str, Any], context: Any) -> dict[str, Any]:
    """`n` records at `rate`/s, each carrying time.time_ns() of its emission in metadata."""
    attached = _wait_for_subscribers(params)
    rate, n = float(params["rate"]), int(params["n"])
    info = context.logger.info
    start = perf_counter()
    for i in range(n):
        delay = start + i / rate - perf_counter()
        if delay > 0:
            sleep(delay)
        info("tick %d", i, emitted_ns=time_ns())
    elapsed = perf_counter() - start
    info("bench done", elapsed_s=elapsed, subscribers=attached)
    return {"elapsed_s": elapsed, "subscribers": attached}


@register(name="bench_firehose")
def firehose(params: dict[str, Any], context: Any) -> dict[str, Any]:
    """`n` records paced at `rate`/s (at most CHUNK ahead of schedule, sleeping when ahead).

    Every 10th record is a WARNING and every 3rd comes from source "db", so that filtered
    subscribers have something to match. The run time is measured here, around the loop, with the
    task thread's CPU time beside it.
    """
    attached = _wait_for_subscribers(params)
    rate, n = float(params["rate"]), int(params["n"])
    logger = context.logger
    info, warning = logger.info, logger.warning
    db = logger.with_source("db")
    db_info, db_warning = db.info, db.warning
    pauses = _GcPauses()
    gc.callbacks.append(pauses)
    start = perf_counter()
    cpu = thread_time()
    i = 0
    while i < n:
        due = min(n, int((perf_counter() - start) * rate) + CHUNK)
        if i >= due:
            sleep(0.0002)
            continue
        while i < due:
            if i % 3 == 0:
                if i % 10 == 0:
                    db_warning("query %d slow", i)
                else:
                    db_info("query %d ok", i)
            elif i % 10 == 0:
                warning("record %d retried", i)
            else:
                info("record %d", i)
            i += 1
    elapsed = perf_counter() - start
    cpu = thread_time() - cpu
    gc.callbacks.remove(pauses)
    info("bench done", elapsed_s=elapsed, cpu_s=cpu, subscribers=attached, full_gcs=pauses.count, full_gc_s=pauses.seconds)
    return {"elapsed_s": elapsed, "cpu_s": cpu, "subscribers": attached}
