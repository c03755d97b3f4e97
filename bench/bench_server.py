"""7. Server: the REST API, live latency and WebSocket fan-out of a real `jupyter server` with the extension.

One `jupyter server` subprocess (127.0.0.1, a free port, fresh JUPYTER_CONFIG_DIR / DATA_DIR /
RUNTIME_DIR / IPYTHONDIR, a token), NBTASKLOG_DB pointing at a DuckDB file built beforehand with
bench_retrieval.build (10,000,000 records of 10,000 tasks; --quick: 200,000 of 200), and the plugins
of server_plugins.py imported through --NbTaskLogApp.plugin_modules (bench/ on PYTHONPATH).

- REST: GET {base}/nbtasklog/api/tasks/{id}/logs?limit=1000 (unfiltered, level=WARNING,
  source=superset_api) on one keep-alive loopback connection, a different task per repetition, time
  from sending the request to the last byte of the body. Reference: the same Engine.logs queries in
  this process on the same file, run just before the server starts (DuckDB lets one process at a time
  hold the file), so the ratio is the HTTP + JSON + server cost.
- Live latency: a server task logs `info("tick %d", i, emitted_ns=time.time_ns())` at 200/s; one
  WebSocket client (tornado, this process) takes time.time_ns() when each message arrives and
  subtracts each record's emitted_ns. Reference: the stream's batching interval (stream_interval),
  the wait a record can have before its batch is sent.
- Fan-out: a task emits at 100,000 records/s (paced, its run time measured inside it), alternately
  with 10 WebSocket subscribers and with none; every subscriber must get every record matching its
  filter (count, no duplicate, the seq set of the store), lagging and catch-up included.
Every server started is stopped (terminate, then kill) whatever happens.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from time import perf_counter
from typing import Any
from urllib.parse import urlencode

import numpy as np
from bench_retrieval import build
from common import Row, check, median, temp_dir

from nbtasklog import Engine

HERE = Path(__file__).resolve().parent
API = "/nbtasklog/api"
STREAM_INTERVAL = 0.05  # the extension's default NbTaskLogApp.stream_interval, passed explicitly
REST_FILTERS = {
    "unfiltered": {},
    "level ≥ WARNING": {"level": "WARNING"},
    "source = superset_api": {"source": "superset_api"},
}
# The fan-out subscribers' filters (query strings of the stream URL).
FANOUT_FILTERS: list[dict[str, str]] = [{}] * 6 + [{"level": "WARNING"}] * 2 + [{"source": "db"}] * 2
ACTIVE = {"PENDING", "RUNNING"}


# ---- the server ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `jupyter server` subprocess with the nbtasklog extension on a given DuckDB file."""

    def __init__(self, db: Path, directory: Path) -> None:
        self.db = db
        self.directory = directory
        self.token = secrets.token_hex(16)
        self.port = _free_port()
        self.headers = {"Authorization": f"token {self.token}"}
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "server.log"

    def start(self, timeout: float = 120.0) -> None:
        for name in ("config", "data", "runtime", "ipython", "root"):
            (self.directory / name).mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(self.directory / "config"),
            JUPYTER_DATA_DIR=str(self.directory / "data"),
            JUPYTER_RUNTIME_DIR=str(self.directory / "runtime"),
            IPYTHONDIR=str(self.directory / "ipython"),
            NBTASKLOG_DB=str(self.db),
            PYTHONPATH=os.pathsep.join([str(HERE), *filter(None, [env.get("PYTHONPATH")])]),
        )
        command = [
            sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
            "--ip", "127.0.0.1", f"--port={self.port}", "--port-retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={self.directory / 'root'}",
            "--ServerApp.jpserver_extensions", "nbtasklog=True",
            "--NbTaskLogApp.plugin_modules=server_plugins",
            f"--NbTaskLogApp.stream_interval={STREAM_INTERVAL}",
            "--NbTaskLogApp.sql_max_rows=2000000",
        ]
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(command, env=env, cwd=self.directory, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter server exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                status, _ = self.request("GET", f"{API}/health", timeout=5)
                if status == 200:
                    return
                if status == 404:
                    raise RuntimeError(f"the nbtasklog extension did not load:\n{self.log_tail()}")
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter server did not answer within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def connection(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method: str, path: str, body: Any = None, timeout: float = 120.0) -> tuple[int, Any]:
        """One request on a fresh connection; (status, parsed JSON body or None)."""
        conn = self.connection(timeout)
        try:
            data = None if body is None else json.dumps(body)
            headers = dict(self.headers, **({"Content-Type": "application/json"} if data else {}))
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    def call(self, method: str, path: str, body: Any = None) -> Any:
        status, value = self.request(method, path, body)
        check(200 <= status < 300, f"server: {method} {path} answered {status}: {value}")
        return value

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def start_task(self, plugin: str, params: dict[str, Any]) -> str:
        return self.call("POST", f"{API}/tasks", {"plugin": plugin, "params": params})["id"]

    def wait_task(self, task_id: str, timeout: float = 600.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            info = self.call("GET", f"{API}/tasks/{task_id}")
            if info["status"] not in ACTIVE:
                check(info["status"] == "SUCCESS", f"server: task {task_id} {info['status']}: {info.get('error')}")
                return info
            check(time.monotonic() < deadline, f"server: task {task_id} still {info['status']} after {timeout} s")
            time.sleep(0.1)

    def done_record(self, task_id: str) -> dict[str, Any]:
        """The metadata of the task's "bench done" record (its own timings)."""
        query = urlencode({"search": "bench done", "order": "desc", "limit": 1})
        records = self.call("GET", f"{API}/tasks/{task_id}/logs?{query}")["records"]
        check(len(records) == 1, f"server: task {task_id} has no 'bench done' record")
        return records[0]["metadata"]

    def stored(self, task_id: str) -> list[list[Any]]:
        """[seq, level, source] of every record of the task, in seq order (/sql flushes the buffer first)."""
        result = self.call("POST", f"{API}/sql", {
            "query": f"SELECT seq, level, source FROM task_logs WHERE task_id = '{task_id}' ORDER BY seq",
            "max_rows": 2_000_000,
        })
        check(not result["truncated"], "server: /sql result truncated")
        return result["rows"]


# ---- 1. REST -------------------------------------------------------------------------------------
def _rest_queries(task_ids: list[str]) -> list[tuple[bool, str, str, dict[str, str]]]:
    """(warm-up?, task id, filter name, filter); the first task once, untimed, then every task."""
    return [(warm, task_id, name, flt) for warm, task_id in [(True, task_ids[0])] + [(False, t) for t in task_ids]
            for name, flt in REST_FILTERS.items()]


def _rest_reference(path: Path, task_ids: list[str]) -> tuple[dict[str, list[float]], dict[tuple[str, str], int]]:
    """Engine.logs in this process: ms per filter, and the record counts the server must match."""
    times: dict[str, list[float]] = {name: [] for name in REST_FILTERS}
    counts: dict[tuple[str, str], int] = {}
    engine = Engine(path, handle_signals=False)
    try:
        for warm, task_id, name, flt in _rest_queries(task_ids):
            start = perf_counter()
            records = engine.logs(task_id, limit=1000, **flt)
            elapsed = perf_counter() - start
            check(all(r.task_id == task_id for r in records), "REST reference: records of another task")
            counts[(task_id, name)] = len(records)
            if not warm:
                times[name].append(elapsed * 1000)
    finally:
        engine.close()
    return times, counts


def _rest(server: Server, task_ids: list[str], counts: dict[tuple[str, str], int]) -> tuple[dict[str, list[float]], dict[str, int]]:
    times: dict[str, list[float]] = {name: [] for name in REST_FILTERS}
    sizes: dict[str, list[int]] = {name: [] for name in REST_FILTERS}
    conn = server.connection()
    try:
        for warm, task_id, name, flt in _rest_queries(task_ids):
            path = f"{API}/tasks/{task_id}/logs?{urlencode(dict(flt, limit=1000))}"
            start = perf_counter()
            conn.request("GET", path, headers=server.headers)
            response = conn.getresponse()
            body = response.read()
            elapsed = perf_counter() - start
            check(response.status == 200, f"REST {name}: status {response.status}: {body[:300]!r}")
            records = json.loads(body)["records"]
            check(len(records) == counts[(task_id, name)],
                  f"REST {name}: {len(records)} records, Engine.logs gave {counts[(task_id, name)]}")
            check(all(r["task_id"] == task_id for r in records), f"REST {name}: records of another task")
            if not warm:
                times[name].append(elapsed * 1000)
                sizes[name].append(len(body))
    finally:
        conn.close()
    return times, {name: int(median(values)) for name, values in sizes.items()}


# ---- WebSocket clients ---------------------------------------------------------------------------
async def _connect(server: Server, task_id: str, flt: dict[str, str]) -> Any:
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    query = f"?{urlencode(flt)}" if flt else ""
    request = HTTPRequest(server.ws_url(f"{API}/tasks/{task_id}/logs/stream{query}"), headers=server.headers)
    return await websocket_connect(request, max_message_size=1 << 30)


def _is_end(message: str) -> bool:
    return len(message) < 2000 and json.loads(message).get("type") == "end"


async def _drain(conn: Any, on_message: Any) -> None:
    """Read messages until the stream's "end"; `on_message(text, arrival_ns)` for every one."""
    while True:
        message = await conn.read_message()
        arrival = time.time_ns()
        if message is None:
            raise AssertionError(f"stream closed before its end message: {conn.close_code} {conn.close_reason}")
        on_message(message, arrival)
        if _is_end(message):
            return


# ---- 2. live latency -----------------------------------------------------------------------------
def tick_latencies(into: list[float]) -> Any:
    """An on_message for _drain that adds, for each tick record, ms from its emitted_ns to the message's arrival."""
    def on_message(message: str, arrival: int) -> None:
        data = json.loads(message)
        if data.get("type") == "records":
            for record in data["records"]:
                sent = (record.get("metadata") or {}).get("emitted_ns")
                if sent is not None:
                    into.append((arrival - sent) / 1e6)
    return on_message


async def _live(server: Server, rate: float, seconds: float) -> list[float]:
    n = int(rate * seconds)
    task_id = server.start_task("bench_live_latency", {"rate": rate, "n": n, "subscribers": 1})
    conn = await _connect(server, task_id, {})
    latencies: list[float] = []
    try:
        await asyncio.wait_for(_drain(conn, tick_latencies(latencies)), timeout=seconds + 120)
    finally:
        conn.close()
    server.wait_task(task_id)
    check(len(latencies) == n, f"live latency: {len(latencies)} tick records arrived, {n} were logged")
    return latencies


# ---- 3. fan-out ----------------------------------------------------------------------------------
def _matches(flt: dict[str, str], level: str, source: str) -> bool:
    if flt.get("level") == "WARNING" and level not in ("WARNING", "ERROR"):
        return False
    return not ("source" in flt and source != flt["source"])


async def _fanout_run(server: Server, rate: float, n: int, subscribers: int) -> dict[str, Any]:
    """One firehose task; returns its own timings, plus what the subscribers got (when any)."""
    filters = FANOUT_FILTERS[:subscribers]
    task_id = server.start_task("bench_firehose", {"rate": rate, "n": n, "subscribers": subscribers})
    conns = [await _connect(server, task_id, flt) for flt in filters]
    received: list[list[str]] = [[] for _ in conns]
    arrivals: list[int] = []  # time.time_ns() of each stream's last message (its end)

    def collect(out: list[str]) -> Any:
        def on_message(message: str, arrival: int) -> None:
            out.append(message)
            arrivals.append(arrival)
        return on_message

    try:
        if conns:
            await asyncio.wait_for(asyncio.gather(*(_drain(c, collect(out)) for c, out in zip(conns, received))),
                                   timeout=n / rate + 300)
    finally:
        for conn in conns:
            conn.close()
    info = server.wait_task(task_id)
    done = server.done_record(task_id)
    check(done["subscribers"] == subscribers, f"fan-out: {done['subscribers']} subscribers attached, {subscribers} expected")
    result = {"elapsed": done["elapsed_s"], "cpu": done["cpu_s"], "lagging": 0, "messages": 0, "records": 0, "drain": 0.0,
              "full_gcs": done["full_gcs"], "full_gc_s": done["full_gc_s"]}
    if arrivals:  # from the task's end (server clock, same machine) to the last subscriber's end message
        finished = datetime.fromisoformat(info["finished_at"]).timestamp()
        result["drain"] = max(0.0, max(arrivals) / 1e9 - finished)
    stored = server.stored(task_id)  # flushes the buffer too: the next run starts with it empty
    check(sum(1 for _seq, _l, source in stored if source == "plugin") >= n * 0.6, "fan-out: records missing in the store")
    for flt, messages in zip(filters, received):
        expected = [seq for seq, level, source in stored if _matches(flt, level, source)]
        seqs: list[int] = []
        for message in messages:
            data = json.loads(message)
            if data["type"] == "records":
                seqs.extend(r["seq"] for r in data["records"])
            elif data["type"] == "lagging":
                result["lagging"] += 1
        check(len(seqs) == len(set(seqs)), f"fan-out {flt or 'unfiltered'}: {len(seqs) - len(set(seqs))} duplicates")
        check(set(seqs) == set(expected),
              f"fan-out {flt or 'unfiltered'}: got {len(seqs)} records, {len(expected)} match "
              f"({len(set(expected) - set(seqs))} missing, {len(set(seqs) - set(expected))} unexpected)")
        result["messages"] += len(messages)
        result["records"] += len(seqs)
    return result


async def _fanout(server: Server, rate: float, n: int, pairs: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    await _fanout_run(server, rate, min(n, 20_000), len(FANOUT_FILTERS))  # warm-up, untimed
    with_subs: list[dict[str, Any]] = []
    without: list[dict[str, Any]] = []
    for _ in range(pairs):
        with_subs.append(await _fanout_run(server, rate, n, len(FANOUT_FILTERS)))
        without.append(await _fanout_run(server, rate, n, 0))
    return with_subs, without


# ---- the benchmark -------------------------------------------------------------------------------
def run(quick: bool) -> list[Row]:
    tasks, per_task, reps = (200, 1_000, 5) if quick else (10_000, 1_000, 21)
    live_rate, live_seconds = (200.0, 1.0) if quick else (200.0, 5.0)
    fan_rate, fan_seconds, pairs = (100_000.0, 0.5, 2) if quick else (100_000.0, 3.0, 5)
    fan_n = int(fan_rate * fan_seconds)
    total = tasks * per_task
    with temp_dir("server") as directory:
        path = directory / "bench.duckdb"
        ids, build_seconds = build(path, tasks, per_task)
        picks = [ids[int(i)] for i in np.linspace(tasks // 7, tasks - 1 - tasks // 11, reps)]
        reference, counts = _rest_reference(path, picks)
        server = Server(path, directory / "server")
        try:
            started = perf_counter()
            server.start()
            start_seconds = perf_counter() - started
            rest, sizes = _rest(server, picks, counts)
            latencies = asyncio.run(_live(server, live_rate, live_seconds))
            with_subs, without = asyncio.run(_fanout(server, fan_rate, fan_n, pairs))
        finally:
            server.stop()

    rows: list[Row] = []
    for number, name in enumerate(REST_FILTERS):
        measured = median(rest[name])
        returned = median([counts[(t, name)] for t in picks])
        rows.append(Row(
            f"server.rest.{['unfiltered', 'level', 'source'][number]}",
            f"7. REST `GET …/tasks/{{id}}/logs?limit=1000` {name}: ~{returned:,.0f} records "
            f"(~{sizes[name] / 1000:,.0f} kB JSON) of one task from a store of {total:,} records / {tasks:,} tasks, "
            f"`jupyter server` subprocess over loopback, one keep-alive connection, request to last byte "
            f"(ref: `Engine.logs` same query in-process, run just before the server; median of {reps} tasks)",
            measured, median(reference[name]), "ms", "≤ 50 ms (spec 200 ms)", measured <= 50,
        ))
    rows[0].what += f"; store built in {build_seconds:.0f} s, server ready in {start_seconds:.1f} s"
    p50, p99 = float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99))
    interval_ms = STREAM_INTERVAL * 1000
    live_what = (f"7. live latency: `logger.info` in a server task ({live_rate:.0f} records/s for {live_seconds:.0f} s, "
                 f"time.time_ns() in metadata) → record arriving at a WebSocket client, {len(latencies):,} records "
                 f"(ref: the stream's batching interval stream_interval = {interval_ms:.0f} ms)")
    rows.append(Row("server.live.p50", live_what.replace("live latency", "live latency p50"),
                    p50, interval_ms, "ms", "≤ 100 ms", p50 <= 100))
    rows.append(Row("server.live.p99", live_what.replace("live latency", "live latency p99") + f"; max {max(latencies):.0f} ms",
                    p99, interval_ms, "ms", "≤ 250 ms", p99 <= 250))
    busy, idle = median([r["elapsed"] for r in with_subs]), median([r["elapsed"] for r in without])
    slowdown = busy / idle - 1
    cpu_busy, cpu_idle = median([r["cpu"] for r in with_subs]), median([r["cpu"] for r in without])
    unfiltered = FANOUT_FILTERS.count({})
    rows.append(Row(
        "server.fanout",
        f"7. fan-out: one server task emitting {fan_n:,} records paced at {fan_rate:,.0f}/s with "
        f"{len(FANOUT_FILTERS)} WebSocket subscribers ({unfiltered} unfiltered, "
        f"{len(FANOUT_FILTERS) - unfiltered} filtered by level or source), its run time; every subscriber got "
        f"every matching record, no duplicate ({median([r['records'] for r in with_subs]):,.0f} records in "
        f"{median([r['messages'] for r in with_subs]):,.0f} messages per run, "
        f"{sum(r['lagging'] for r in with_subs)} lagging catch-ups in all, the last subscriber done "
        f"{median([r['drain'] for r in with_subs]):.1f} s after the task); task thread CPU "
        f"{cpu_busy:.2f} s vs {cpu_idle:.2f} s (ref: same task, no subscriber; median of {pairs} alternated pairs)",
        busy, idle, "s", "slowed ≤ 5 %, every subscriber gets every matching record", slowdown <= 0.05,
        ratio_text=f"{busy / idle:.3f}× ({slowdown:+.1%})",
    ))
    return rows


def fanout_only(pairs: int, seconds: float, rate: float = 100_000.0) -> None:
    """The fan-out part alone, on a small store (quick to build): prints each alternated pair."""
    with temp_dir("server") as directory:
        path = directory / "bench.duckdb"
        build(path, 200, 1_000)
        server = Server(path, directory / "server")
        try:
            server.start()
            latencies = asyncio.run(_live(server, 200.0, 2.0))
            print(f"live latency p50 {np.percentile(latencies, 50):.1f} ms, p99 {np.percentile(latencies, 99):.1f} ms", flush=True)
            with_subs, without = asyncio.run(_fanout(server, rate, int(rate * seconds), pairs))
        finally:
            server.stop()
    for busy, idle in zip(with_subs, without):
        print(f"pair: {busy['elapsed']:.3f} s vs {idle['elapsed']:.3f} s ({busy['elapsed'] / idle['elapsed'] - 1:+.1%}); "
              f"cpu {busy['cpu']:.2f} vs {idle['cpu']:.2f} s; full GCs {busy['full_gcs']} ({busy['full_gc_s'] * 1000:.0f} ms) "
              f"vs {idle['full_gcs']} ({idle['full_gc_s'] * 1000:.0f} ms); lagging {busy['lagging']}; "
              f"{busy['messages']} messages; drain {busy['drain']:.2f} s", flush=True)
    busy, idle = median([r["elapsed"] for r in with_subs]), median([r["elapsed"] for r in without])
    ratios = sorted(b["elapsed"] / i["elapsed"] - 1 for b, i in zip(with_subs, without))
    print(f"median {busy:.3f} s vs {idle:.3f} s: {busy / idle - 1:+.1%}; pairs {', '.join(f'{r:+.1%}' for r in ratios)}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="the fan-out benchmark alone (small store, full fan-out)")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3.0)
    arguments = parser.parse_args()
    fanout_only(arguments.pairs, arguments.seconds)
