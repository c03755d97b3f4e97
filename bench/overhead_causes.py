#!/usr/bin/env python
"""Where a logging task's extra time goes: bench 3's task (pure-Python CPU work, ~10,000 `info`
records/s) run under variants that each take one suspect away, every variant measured as bench 3
measures (paired runs logging on / logging off, alternated, median of the pairs' ratios), wall time
and the task thread's CPU time.

    .venv/bin/python bench/overhead_causes.py                 every variant
    .venv/bin/python bench/overhead_causes.py --only baseline,no-flusher --pairs 15

A diagnosis, not a row of the README table: run it on a quiet machine. A variant changes the
engine's internals in this process only (the patches are below, each named by what it removes).
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter, thread_time
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_overhead import RATE, _calibrate, _work  # noqa: E402
from common import check, median, temp_dir  # noqa: E402

from nbtasklog import Engine  # noqa: E402
from nbtasklog.live import Subscription  # noqa: E402
from nbtasklog.filter import LogFilter  # noqa: E402
from nbtasklog.store import buffer as buffer_module  # noqa: E402


def task_plain(params: dict[str, Any], context: Any) -> dict[str, float]:
    k, n = params["k"], params["n"]
    info = context.logger.info
    x = 1
    if params.get("gc_off"):
        gc.disable()
    try:
        start, cpu = perf_counter(), thread_time()
        for i in range(n):
            x = _work(k, x)
            info("item %d done, checksum %d", i, x)
        return {"elapsed": perf_counter() - start, "cpu": thread_time() - cpu}
    finally:
        gc.enable()


def task_metadata(params: dict[str, Any], context: Any) -> dict[str, float]:
    k, n = params["k"], params["n"]
    info = context.logger.info
    x = 1
    start, cpu = perf_counter(), thread_time()
    for i in range(n):
        x = _work(k, x)
        info("item %d done", i, a=1, b="x", c=x)
    return {"elapsed": perf_counter() - start, "cpu": thread_time() - cpu}


@contextmanager
def nothing(engine: Engine) -> Iterator[dict[str, Any]]:
    yield {}


@contextmanager
def no_flusher(engine: Engine) -> Iterator[dict[str, Any]]:
    """The flusher never wakes during a run (the buffer is written between runs, untimed)."""
    engine.buffer.flush_interval, engine.buffer.flush_size = 3600.0, 10**9
    yield {}


@contextmanager
def gc_off(engine: Engine) -> Iterator[dict[str, Any]]:
    yield {"gc_off": True}


@contextmanager
def no_switch_interval(engine: Engine) -> Iterator[dict[str, Any]]:
    """The flusher's writes leave the GIL switch interval as it is (5 ms)."""
    turns = buffer_module._write_turns
    interval, turns.interval = turns.interval, sys.getswitchinterval()
    try:
        yield {}
    finally:
        turns.interval = interval


@contextmanager
def live_reader(engine: Engine) -> Iterator[dict[str, Any]]:
    """A live reader of every task, as an open viewer is (its queue is drained by nobody: it lags)."""
    yield {"subscribe": True}


VARIANTS: dict[str, tuple[Callable[..., Any], Callable[[Engine], Any]]] = {
    "baseline": (task_plain, nothing),
    "no-flusher": (task_plain, no_flusher),
    "gc-off": (task_plain, gc_off),
    "no-short-switch-interval": (task_plain, no_switch_interval),
    "live-reader": (task_plain, live_reader),
    "metadata": (task_metadata, nothing),
}


def _patch_emitter(engine: Engine, what: str) -> Callable[[], None]:
    """Replace, in every emitter this engine makes from now on, the sink or the lock by a no-op."""
    from nbtasklog import logger as logger_module

    original = logger_module.TaskEmitter.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        fixed = list(self._fixed)
        if what == "sink":
            fixed[1] = lambda row: None
        else:
            fixed[6], fixed[7] = (lambda: True), (lambda: None)
        self._fixed = tuple(fixed)

    logger_module.TaskEmitter.__init__ = init  # type: ignore[method-assign]
    return lambda: setattr(logger_module.TaskEmitter, "__init__", original)


def measure(name: str, pairs: int, seconds: float, k: int) -> dict[str, float]:
    task, variant = VARIANTS.get(name, (task_plain, nothing))
    n = int(seconds * RATE)
    results: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    with temp_dir("overhead-causes") as directory:
        engine = Engine(directory / "bench.duckdb", handle_signals=False)
        undo = _patch_emitter(engine, name.removeprefix("drop-")) if name in ("drop-sink", "drop-lock") else None
        try:
            with variant(engine) as extra:
                engine.run_task(task, {"k": k, "n": 2_000, **extra}).wait(timeout=600)
                engine.flush()
                modes = (("on", None), ("off", "ERROR"))
                for pair in range(pairs):
                    for mode, level in modes if pair % 2 == 0 else modes[::-1]:
                        handle = engine.run_task(task, {"k": k, "n": n, **extra}, log_level=level)
                        subscription = None
                        if extra.get("subscribe"):
                            subscription = engine.subscribe(handle.id, Subscription(LogFilter(), max_queue=10**7))
                        check(handle.wait(timeout=600) == "SUCCESS", f"{name}: task failed: {handle.error}")
                        if subscription is not None:
                            engine.unsubscribe(handle.id, subscription)
                        results[mode].append(handle.result)
                        engine.flush()
        finally:
            if undo is not None:
                undo()
            engine.close()

    def paired(key: str) -> list[float]:
        return sorted(on[key] / off[key] - 1 for on, off in zip(results["on"], results["off"]))

    wall, cpu = paired("elapsed"), paired("cpu")
    off = median([r["elapsed"] for r in results["off"]])
    return {"wall": median(wall), "wall_lo": wall[0], "wall_hi": wall[-1], "cpu": median(cpu),
            "us_per_record": median(wall) * off / n * 1e6}


def main() -> None:
    names = [*VARIANTS, "drop-sink", "drop-lock"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated variants: " + ", ".join(names))
    parser.add_argument("--pairs", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=2.5)
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else names
    k = _calibrate()
    print("| variant | overhead, wall (median; min … max of pairs) | task thread CPU | µs per record |")
    print("|---|---|---|---|")
    for name in chosen:
        figures = measure(name, args.pairs, args.seconds, k)
        print(f"| {name} | {figures['wall']:+.1%} ({figures['wall_lo']:+.1%} … {figures['wall_hi']:+.1%}) "
              f"| {figures['cpu']:+.1%} | {figures['us_per_record']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
