"""9. A store for teams: several processes on one PostgreSQL server (a throwaway cluster of Debian's
PostgreSQL, started by tests/postgres.py on a Unix socket, fsync off, as the tests use).

- Ingest: one engine emits N records in one task, start → every record in PostgreSQL (COPY into a
  temporary table, then INSERT … ON CONFLICT DO NOTHING). Reference: the same engine code on a DuckDB
  file in the same run. Then two processes at once, each its own engine and task of N records, on one
  PostgreSQL database: their records/s together against the one process's.
- Live latency across servers: two `jupyter server` subprocesses A and B on one PostgreSQL database;
  a task on A logs `info("tick %d", i, emitted_ns=time.time_ns())` at 200/s; one WebSocket client on A
  and one on B take time.time_ns() as each message arrives. B's records travel A's write (sooner while
  B watches), PostgreSQL's NOTIFY on commit, and B's read of the store. Reference: A's own socket, the
  same records at the same time.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import numpy as np
from bench_server import Server, _connect, _drain, tick_latencies
from common import Row, check, temp_dir

from nbtasklog import Engine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from postgres import PostgresServer  # noqa: E402  (tests/postgres.py: the one way a PostgreSQL is started)

# One process's ingest, in a child so that two can run at once: prints records/s.
_INGEST = r"""
import sys, time
from nbtasklog import Engine

def emit(params, context):
    info = context.logger.info
    for i in range(params["n"]):
        info("record %d of the bench", i, i=i)

engine = Engine(sys.argv[1], spill_dir=sys.argv[2], handle_signals=False)
engine.run_task(emit, {"n": 10}).wait(timeout=60)
engine.flush()
ready = sys.stdin.readline()  # both children start together
start = time.perf_counter()
task = engine.run_task(emit, {"n": int(sys.argv[3])})
task.wait(timeout=600)
engine.flush()
elapsed = time.perf_counter() - start
print(int(sys.argv[3]) / elapsed, flush=True)
engine.close()
"""


def _ingest(urls: list[str], directory: Path, n: int) -> list[float]:
    """Records/s of one child per url, started together."""
    children = [subprocess.Popen([sys.executable, "-c", _INGEST, url, str(directory / f"spill-{i}"), str(n)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for i, url in enumerate(urls)]
    try:
        for child in children:
            child.stdin.write("go\n")  # type: ignore[union-attr]
            child.stdin.flush()  # type: ignore[union-attr]
        rates = []
        for child in children:
            out, _ = child.communicate(timeout=900)
            check(child.returncode == 0, f"ingest child failed with {child.returncode}")
            rates.append(float(out.strip().splitlines()[-1]))
        return rates
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()


def _stored(url: str) -> int:
    engine = Engine(url, handle_signals=False)
    try:
        return int(engine.sql("SELECT count(*) AS n FROM task_logs")["n"][0])
    finally:
        engine.close()


async def _latencies(a: Server, b: Server, rate: float, seconds: float) -> tuple[list[float], list[float]]:
    n = int(rate * seconds)
    # settle: the two sockets connect before the first tick (the task's own socket count cannot see B's)
    task_id = a.start_task("bench_live_latency", {"rate": rate, "n": n, "subscribers": 0, "settle": 3.0})
    found: dict[str, list[float]] = {"a": [], "b": []}
    sockets = [await _connect(server, task_id, {}) for server in (a, b)]
    try:
        await asyncio.wait_for(asyncio.gather(*(_drain(conn, tick_latencies(found[name]))
                                                for conn, name in zip(sockets, found))), timeout=seconds + 120)
    finally:
        for conn in sockets:
            conn.close()
    a.wait_task(task_id)
    for name, values in found.items():
        check(len(values) == n, f"team live latency: {len(values)} tick records reached {name}, {n} were logged")
    return found["a"], found["b"]


def run(quick: bool) -> list[Row]:
    n = 100_000 if quick else 1_000_000
    rate, seconds = (200.0, 1.0) if quick else (200.0, 5.0)
    postgres = PostgresServer().init()
    try:
        with temp_dir("team") as directory:
            one = [postgres.new_database(role="nbtasklog_bench")]
            single = _ingest(one, directory / "one", n)[0]
            check(_stored(one[0]) == n + 10 + 4, "team ingest: records missing in PostgreSQL")
            duck = _ingest([str(directory / "ref.duckdb")], directory / "ref", n)[0]
            shared = postgres.new_database(role="nbtasklog_bench")
            pair = _ingest([shared, shared], directory / "two", n)
            check(_stored(shared) == 2 * (n + 10 + 4), "team ingest: records missing with two processes")
            a, b = Server(shared, directory / "a"), Server(shared, directory / "b")  # type: ignore[arg-type]
            try:
                a.start()
                b.start()
                on_a, on_b = asyncio.run(_latencies(a, b, rate, seconds))
            finally:
                a.stop()
                b.stop()
    finally:
        postgres.stop()

    rows = [
        Row("team.ingest", f"9. ingest into PostgreSQL: one task emits {n:,} records, start → all stored "
            "(COPY, then INSERT … ON CONFLICT DO NOTHING; one process) (ref: the same engine on a DuckDB file)",
            single, duck, "rec/s", "≥ 200,000/s", single >= 200_000),
        Row("team.ingest.two", f"9. … two processes at once on one PostgreSQL database, {n:,} records each: "
            f"together ({pair[0]:,.0f} + {pair[1]:,.0f}) (ref: one process alone)",
            sum(pair), single, "rec/s", "≥ 1.6× one process", sum(pair) >= 1.6 * single),
    ]
    interval = f"{rate:.0f} records/s for {seconds:.0f} s, {len(on_b):,} records"
    for label, q, target in (("p50", 50, 500), ("p99", 99, 2000)):
        across, own = float(np.percentile(on_b, q)), float(np.percentile(on_a, q))
        rows.append(Row(f"team.live.{label}", f"9. live latency {label} across servers: a task on server A "
                        f"({interval}) → its record at a WebSocket client of server B on the same PostgreSQL "
                        f"(ref: a client of A, at the same time)", across, own, "ms", f"≤ {target:,} ms", across <= target))
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(f"{row.key}: {row.measured:,.1f} {row.unit} (ref {row.reference:,.1f}) target {row.target}: {row.met}")
