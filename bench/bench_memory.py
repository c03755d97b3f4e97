"""5. Memory: peak RSS of a process whose task emits N records while the database is unavailable.

The outage is real: another process holds the DuckDB file open (duckdb.connect) from before the
engine starts, so every write fails and the records wait, buffer_cap (default 500,000) of them in
memory as Arrow batches and the rest spilled to Arrow files. When the task has ended and the buffer
has been drained, the peak RSS is read; then the lock is released and the process checks that every
record reaches the database. The reference is the same process with the database available.

Each case runs in a fresh subprocess (this file, run as a script), so the peaks are not mixed up.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import Row, check, persisted_plugin_records, temp_dir

LOCKER = "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.read()"


def _status_kb(field: str) -> int:
    """VmHWM (peak) or VmRSS (now) of this process, in kB; ru_maxrss where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB on Linux


def emit(params: dict[str, Any], context: Any) -> None:
    info = context.logger.info
    for i in range(params["n"]):
        info("record %d", i)


def child(database: str, n: int, buffer_cap: int, outage: bool) -> None:
    """The measured process: prints one JSON line after the outage phase and one at the end."""
    from nbtasklog import Engine

    engine = Engine(database, buffer_cap=buffer_cap, handle_signals=False)
    baseline = _status_kb("VmRSS")
    task = engine.run_task(emit, {"n": n})
    task.wait(timeout=600)
    written = engine.flush()
    health = engine.health()
    waiting = {"baseline_kb": baseline, "peak_kb": _status_kb("VmHWM"), "written": written,
               "pending": health.pending, "spilled": health.spilled, "status": task.status}
    print(json.dumps(waiting), flush=True)
    if outage:
        sys.stdin.readline()  # the parent has released the lock
    deadline = time.monotonic() + 120
    while not engine.flush():
        if time.monotonic() > deadline:
            raise SystemExit("the buffer was not written within 120 s of the database coming back")
        time.sleep(0.2)
    count = persisted_plugin_records(engine, task.id)
    engine.close()
    print(json.dumps({"count": count, "final_peak_kb": _status_kb("VmHWM")}), flush=True)


def _measure(directory: Path, n: int, buffer_cap: int, outage: bool) -> dict[str, Any]:
    database = directory / ("outage.duckdb" if outage else "available.duckdb")
    locker = None
    if outage:
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(database)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        check(locker.stdout.readline().strip() == "locked", "memory: the locking process did not start")
    try:
        process = subprocess.Popen(
            [sys.executable, __file__, "child", str(database), str(n), str(buffer_cap), "1" if outage else "0"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"memory: the measured process died: {process.stderr.read()[-2000:]}")
        result = json.loads(line)
        if locker is not None:
            locker.stdin.close()  # the locking process ends: the database is back
            locker.wait(timeout=60)
            locker = None
            process.stdin.write("\n")
            process.stdin.flush()
        out, err = process.communicate(timeout=300)
        check(process.returncode == 0, f"memory: the measured process failed: {err[-2000:]}")
        result.update(json.loads(out.strip().splitlines()[-1]))
    finally:
        if locker is not None:
            locker.kill()
            locker.wait()
    check(result["status"] == "SUCCESS", f"memory: task {result['status']}")
    check(result["count"] == n, f"memory: {result['count']} records reached the database, expected {n}")
    if outage:
        check(not result["written"], "memory: the outage did not stop the writes")
        check(result["pending"] >= n and result["spilled"] >= n - buffer_cap,
              f"memory: {result['pending']} pending, {result['spilled']} spilled during the outage")
    return result


def run(quick: bool) -> list[Row]:
    n, buffer_cap = (100_000, 50_000) if quick else (1_000_000, 500_000)
    with temp_dir("memory") as directory:
        outage = _measure(directory, n, buffer_cap, outage=True)
        available = _measure(directory, n, buffer_cap, outage=False)
    mb = 1024
    per = n / 100_000
    rows = [
        Row("memory.peak", f"5. memory: peak RSS of a process whose task emits {n:,} records while another process "
            f"holds the DuckDB file (buffer_cap {buffer_cap:,}: {outage['spilled']:,} spilled), read after the "
            f"buffer drained; all written once the lock went, peak {outage['final_peak_kb'] / mb:.0f} MB counting that replay "
            f"(ref: same process, database available)",
            outage["peak_kb"] / mb, available["peak_kb"] / mb, "MB", "report only", None),
        Row("memory.per_100k", f"5. memory: (peak − RSS before the task) per 100k records, same two processes "
            f"(baseline RSS {outage['baseline_kb'] / mb:.0f} MB)",
            (outage["peak_kb"] - outage["baseline_kb"]) / mb / per,
            (available["peak_kb"] - available["baseline_kb"]) / mb / per, "MB", "report only", None),
    ]
    return rows


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "child":
    child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1")
