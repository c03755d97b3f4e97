#!/usr/bin/env python
"""Run every nbtasklog benchmark and print one Markdown table (also written to bench/results/latest.md).

    .venv/bin/python bench/run.py            full sizes (a few minutes)
    .venv/bin/python bench/run.py --quick    small sizes: a smoke test of the benchmark code, numbers mean little
    .venv/bin/python bench/run.py --only bench_logger,bench_memory
    .venv/bin/python bench/run.py --only bench_overhead --repeat 5   five runs in a row, each row's spread

Each benchmark module has `run(quick) -> list[Row]` and runs in a Python process of its own, so that
one benchmark's memory, threads and garbage cannot weigh on the next. A module that fails is reported
as a failed row and the exit status is 1; no benchmark asserts on time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "viewer"))  # bench_viewer lives beside the page it builds

from common import Row, fmt, table  # noqa: E402

MODULES = ["bench_logger", "bench_redact", "bench_end_to_end", "bench_overhead", "bench_retrieval", "bench_memory", "bench_server", "bench_viewer", "bench_team"]


def _child(module: str, quick: bool, out: str) -> None:
    rows = importlib.import_module(module).run(quick)
    Path(out).write_text(json.dumps([row.to_dict() for row in rows]))


def _run_module(module: str, quick: bool) -> tuple[list[Row], str | None, float]:
    with tempfile.TemporaryDirectory(prefix="nbtasklog-bench-rows-") as directory:
        out = Path(directory) / "rows.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", module, "--rows", str(out)]
        if quick:
            command.append("--quick")
        start = time.perf_counter()
        done = subprocess.run(command, cwd=HERE.parent, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        if done.returncode != 0 or not out.exists():
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
            return [], f"exit status {done.returncode}\n{tail}", elapsed
        return [Row(**row) for row in json.loads(out.read_text())], None, elapsed


def _combined(runs: list[list[Row]]) -> list[Row]:
    """One row per key of repeated runs: its median run (by ratio), the ratios of all runs beside it,
    met only when every run met its target."""
    combined = []
    for key in dict.fromkeys(row.key for rows in runs for row in rows):
        same = [row for rows in runs for row in rows if row.key == key]
        ranked = sorted(same, key=lambda row: row.ratio if row.ratio is not None else 0.0)
        middle = ranked[len(ranked) // 2]
        each = ", ".join(f"{fmt(row.measured)} {row.unit} ({row.ratio_text or f'{row.ratio:.2f}×'})"
                         for row in same if row.ratio is not None)
        met = None if middle.met is None else all(bool(row.met) for row in same)
        text = f"median run {middle.ratio_text or f'{middle.ratio:.2f}×'}; {len(same)} runs in a row: {each}"
        combined.append(Row(**{**middle.to_dict(), "met": met, "ratio_text": text}))
    return combined


def _load() -> str:
    """The 1-minute load average: on a shared machine, how much else was running."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "?"


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1]) / 2**20
        memory_text = f", {memory:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        memory_text = ""
    import duckdb
    import pyarrow

    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()) if hasattr(os, "getloadavg") else ""
    return (f"{cpu}, {os.cpu_count()} CPUs{memory_text}{load}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, DuckDB {duckdb.__version__}, pyarrow {pyarrow.__version__}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--only", help="comma-separated module names (default: all)")
    parser.add_argument("--repeat", type=int, default=1, help="run each module this many times in a row; "
                        "each row then shows its median run and the range of its ratio, met only when every run met")
    parser.add_argument("--out", help="where to write the Markdown (default bench/results/latest.md, quick.md with --quick)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.quick, args.rows)
        return 0

    modules = args.only.split(",") if args.only else MODULES
    unknown = set(modules) - set(MODULES)
    if unknown:
        parser.error(f"unknown benchmark {', '.join(sorted(unknown))}; choose from {', '.join(MODULES)}")
    started = datetime.now(timezone.utc)
    machine = _machine()
    rows: list[Row] = []
    failures: list[str] = []
    timings: list[str] = []
    total_start = time.perf_counter()
    for module in modules:
        runs: list[list[Row]] = []
        for _ in range(args.repeat):
            print(f"running {module}{' (quick)' if args.quick else ''} …", file=sys.stderr, flush=True)
            load_before = _load()
            module_rows, error, elapsed = _run_module(module, args.quick)
            timings.append(f"{module} {elapsed:.0f} s, load {load_before}→{_load()}")
            runs.append(module_rows)
            if error:
                failures.append(f"{module}: {error}")
                print(f"{module} FAILED: {error}", file=sys.stderr, flush=True)
        rows.extend(_combined(runs) if args.repeat > 1 else runs[0])
    total = time.perf_counter() - total_start

    text = "\n".join([
        f"nbtasklog benchmarks{' (--quick: smoke-test sizes, not results)' if args.quick else ''}, "
        f"{started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Machine: {machine}",
        "",
        table(rows),
        "",
        f"Total {total:.0f} s ({'; '.join(timings)}; load = 1-minute load average before→after, "
        f"{os.cpu_count()} CPUs). Medians of repeated runs; ratio = measured / reference.",
        *(["", "FAILED:", *failures] if failures else []),
    ])
    print(text)
    out = Path(args.out) if args.out else HERE / "results" / ("quick.md" if args.quick else "latest.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
