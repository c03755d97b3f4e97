#!/usr/bin/env python
"""Where a logging task's extra time goes: bench 3's task (pure-Python CPU work, ~10,000 `info`
records/s, in slices alternating logging on and off) under variants that each take one suspect away,
every variant measured exactly as bench 3 measures (bench_overhead.measure): the per-call part, the
task thread's CPU, the time off the CPU, and their sum.

    .venv/bin/python bench/overhead_causes.py                 every variant
    .venv/bin/python bench/overhead_causes.py --only baseline,no-flusher --pairs 3000

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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_overhead import _calibrate, measure  # noqa: E402
from common import temp_dir  # noqa: E402

from nbtasklog import Engine  # noqa: E402
from nbtasklog import logger as logger_module  # noqa: E402
from nbtasklog.filter import LogFilter  # noqa: E402
from nbtasklog.live import Subscription  # noqa: E402
from nbtasklog.store import buffer as buffer_module  # noqa: E402


@contextmanager
def nothing(engine: Engine) -> Iterator[dict[str, Any]]:
    yield {}


@contextmanager
def no_flusher(engine: Engine) -> Iterator[dict[str, Any]]:
    """The flusher never wakes during a run (the buffer is written after it, untimed)."""
    engine.buffer.flush_interval, engine.buffer.flush_size = 3600.0, 10**9
    yield {}


@contextmanager
def gc_off(engine: Engine) -> Iterator[dict[str, Any]]:
    gc.disable()
    try:
        yield {}
    finally:
        gc.enable()


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
    """A live reader of every record, as an open viewer is (nobody drains its queue: it lags)."""
    original = engine.run_task

    def run_task(*args: Any, **kwargs: Any) -> Any:
        handle = original(*args, **kwargs)
        engine.subscribe(handle.id, Subscription(LogFilter(), max_queue=10**7))
        return handle

    engine.run_task = run_task  # type: ignore[method-assign]
    yield {}


@contextmanager
def metadata(engine: Engine) -> Iterator[dict[str, Any]]:
    """Each call carries three keyword fields (`a=1, b="x", c=i`)."""
    yield {"metadata": True}


def _emitter_patch(index: int, values: tuple[Any, ...]) -> Callable[[Engine], Any]:
    """A variant that replaces entries of TaskEmitter._fixed (see logger.py) in every emitter made meanwhile."""

    @contextmanager
    def patch(engine: Engine) -> Iterator[dict[str, Any]]:
        original = logger_module.TaskEmitter.__init__

        def init(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            fixed = list(self._fixed)
            fixed[index:index + len(values)] = values
            self._fixed = tuple(fixed)

        logger_module.TaskEmitter.__init__ = init  # type: ignore[method-assign]
        try:
            yield {}
        finally:
            logger_module.TaskEmitter.__init__ = original  # type: ignore[method-assign]

    return patch


VARIANTS: dict[str, Callable[[Engine], Any]] = {
    "baseline": nothing,
    "no-flusher": no_flusher,
    "gc-off": gc_off,
    "no-short-switch-interval": no_switch_interval,
    "live-reader": live_reader,
    "metadata": metadata,
    "drop-sink": _emitter_patch(1, (lambda row: None,)),  # records made, never queued
    "no-redaction": _emitter_patch(4, (None, None, None)),
    "drop-lock": _emitter_patch(7, (lambda: True, lambda: None)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated variants: " + ", ".join(VARIANTS))
    parser.add_argument("--pairs", type=int, default=2_000)
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(VARIANTS)
    k = _calibrate()
    print("| variant | overhead at 10,000/s | µs per record | per call (95 % CI) | task thread CPU | off the CPU (less the reference) | µs per item |")
    print("|---|---|---|---|---|---|---|")
    for name in chosen:
        with temp_dir("overhead-causes") as directory:
            engine = Engine(directory / "bench.duckdb", handle_signals=False)
            try:
                with VARIANTS[name](engine) as params:
                    result = measure(engine, args.pairs, k, stored=name != "drop-sink", **params)
            finally:
                engine.close()
        print(f"| {name} | {result.total:+.1%} | {result.per_record_s * 1e6:.2f} | {result.calls:+.1%} ({result.calls_lo:+.1%} … {result.calls_hi:+.1%}) "
              f"| {result.cpu:+.1%} | {result.waiting:+.1%} ({result.off_cpu:.1%} − {result.off_cpu_reference:.1%}) | {result.item_s * 1e6:.0f} |", flush=True)


if __name__ == "__main__":
    main()
