"""Talking to a Jupyter server that runs the nbtasklog extension: finding it, and RemoteStore.

RemoteStore has the Store's methods, spoken over the server's REST API, so the same Engine,
WriteBuffer (batching, retry, spill) and Task handle work in a kernel or the CLI: records of
tasks run in the kernel are shipped to the server's ingest endpoint in Arrow batches. Live
records of tasks run by the server, and the task list's changes, come over its WebSockets
(`stream`, `watch_tasks`), all run by one daemon thread with its own asyncio loop.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import pyarrow as pa
from sqlalchemy.engine import make_url

from .filter import LogFilter
from .follow import Follow
from .live import Subscription
from .record import LogRecord
from .store.store import SQLError
from .wire import record_from_wire, task_row_from_wire, task_row_to_wire

log = logging.getLogger("nbtasklog")

API = "nbtasklog/api"
_SocketT = TypeVar("_SocketT", bound="_Socket")
RECONNECT_FOR = 60.0  # seconds a socket keeps reconnecting to a silent server before its reader falls back to REST
RECONNECT_MAX_DELAY = 2.0  # seconds: the longest pause between two attempts
# A history page is 10,000 records, each up to max_message_bytes: tornado's 10 MiB default is too small.
MAX_SOCKET_MESSAGE = 1 << 30


class ServerError(RuntimeError):
    """The server answered with an error; `status` is the HTTP status, the message its explanation."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class ServerConnection:
    """Base URL (with the server's base_url) and token of a Jupyter server."""

    url: str
    token: str = ""
    timeout: float = 30.0

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                body: bytes | None = None, content_type: str = "application/json") -> tuple[bytes, dict[str, str]]:
        """One HTTP request; returns (body, headers). Raises ServerError for an error answer and
        ConnectionError when the server cannot be reached."""
        url = self.url.rstrip("/") + "/" + API + "/" + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        request = urllib.request.Request(url, data=body, method=method)
        if self.token:
            request.add_header("Authorization", f"token {self.token}")
        if body is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            try:
                message = json.loads(text).get("message") or text
            except ValueError:
                message = text or error.reason
            raise ServerError(error.code, str(message)) from None
        except (urllib.error.URLError, OSError) as error:
            raise ConnectionError(f"cannot reach the nbtasklog server at {self.url}: {getattr(error, 'reason', error)}") from None

    def get_json(self, path: str, **params: Any) -> Any:
        return json.loads(self.request("GET", path, params=params or None)[0])

    def send_json(self, method: str, path: str, value: Any) -> Any:
        data, _ = self.request(method, path, body=json.dumps(value).encode())
        return json.loads(data) if data else None

    def socket_request(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """The tornado HTTPRequest that opens the WebSocket at `path` under the API (ws:// or wss://)."""
        from tornado.httpclient import HTTPRequest

        url = "ws" + self.url.rstrip("/")[4:] + "/" + API + "/" + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        return HTTPRequest(url, headers=headers, connect_timeout=self.timeout, request_timeout=self.timeout)

    def alive(self) -> dict[str, Any] | None:
        """The server's nbtasklog health, or None when it does not answer as an nbtasklog server."""
        try:
            return self.get_json("health")
        except (ServerError, ConnectionError, ValueError):
            return None


def discover_server(database: str | None = None) -> ServerConnection | None:
    """The nbtasklog server this process should talk to, if there is one.

    1. NBTASKLOG_SERVER_URL (and NBTASKLOG_SERVER_TOKEN);
    2. the Jupyter server that started this process (a kernel's parent);
    3. with `database`: any running Jupyter server whose nbtasklog store is that database (the CLI).
    """
    if os.environ.get("NBTASKLOG_SERVER_URL"):
        return ServerConnection(os.environ["NBTASKLOG_SERVER_URL"], os.environ.get("NBTASKLOG_SERVER_TOKEN", ""))
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    servers = list(list_running_servers())
    parent = os.getppid()
    for info in servers:
        if info.get("pid") == parent:
            connection = ServerConnection(info["url"], info.get("token", ""))
            if connection.alive() is not None:
                return connection
    if database is not None:
        wanted = str(make_url(_as_url(database)))
        for info in servers:
            connection = ServerConnection(info["url"], info.get("token", ""), timeout=5.0)
            health = connection.alive()
            if health is not None and health.get("database") == wanted:
                return connection
    return None


def _as_url(database: str) -> str:
    from .store.store import database_url

    return database_url(database).render_as_string(hide_password=True)


TASK_PAGE = 1000  # most task rows GET tasks answers at once
INGEST_BODY_CAP = 16 * 1024 * 1024  # bytes per ingest request: well under the server's 64 MiB default


def _identity_of(page: Mapping[str, Any]) -> dict[str, Any]:
    return {"user": page.get("user"), "others_visible": bool(page.get("others_visible", True))}


def _task_path(task_id: str, *rest: str) -> str:
    """The API path of a task (and what is under it), its id %-escaped whole: an id holding '/', '?',
    '#', '%' or a space is one path segment that names no other task and no other route."""
    return "/".join(("tasks", urllib.parse.quote(task_id, safe=""), *rest))


def _ingest_body(rows: list[dict[str, Any]], table: pa.Table) -> bytes:
    """An ingest request's body: the records as an Arrow IPC stream, the task rows in its schema metadata."""
    sink = pa.BufferOutputStream()
    tagged = table.replace_schema_metadata({"nbtasklog.tasks": json.dumps(rows)})
    with pa.ipc.new_stream(sink, tagged.schema) as writer:
        writer.write_table(tagged)
    return sink.getvalue().to_pybytes()


def _shrunk_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Task rows whose long texts are cut (an error with a huge traceback, params of many megabytes)."""
    out = []
    for row in rows:
        row = dict(row)
        for key in ("error", "progress_message"):
            if isinstance(row.get(key), str) and len(row[key]) > 4096:
                row[key] = row[key][:4096] + f" … [cut: {len(row[key])} characters]"
        params = json.dumps(row.get("params"))
        if len(params) > 4096:
            row["params"] = json.dumps({"params_cut": f"{len(params)} characters of params, too large to send"})
        out.append(row)
    return out


def _shrunk(table: pa.Table, max_bytes: int) -> pa.Table:
    """A one-record batch whose message and metadata are cut to fit in about `max_bytes`."""
    from .logger import repair_record
    from .store.store import arrow_to_records, records_to_arrow

    record = arrow_to_records(table)[0]
    return records_to_arrow([repair_record(record, max(256, max_bytes // 2))])


class RemoteStore:
    """The Store interface over a server's REST API (see store/store.py for what each method means)."""

    gil_bound_writes = False  # its writes are HTTP requests, which let the GIL go while they wait
    shared = False  # the server alone writes its store; the kernel's own rows reach it by its flushes

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.url = make_url("nbtasklog+" + connection.url.rstrip("/"))
        self._sockets: _SocketLoop | None = None
        self._sockets_lock = threading.Lock()
        # What came over the WebSockets: "records", "connects", "lagging" (the server said a stream fell behind).
        self.socket_counts: Counter[str] = Counter()
        self.refused_records = 0  # records of this process the server would not take (their task had ended there)
        self.on_cancel: Callable[[str], None] = lambda task_id: None  # a task running here was cancelled elsewhere
        self._whoami: dict[str, Any] | None = None

    def reset(self) -> None:
        """Nothing to drop: every call is its own HTTP request."""

    def close(self) -> None:
        """Close the WebSockets and end their thread."""
        with self._sockets_lock:
            sockets, self._sockets = self._sockets, None
        if sockets is not None:
            sockets.close()

    def _loop(self) -> _SocketLoop:
        with self._sockets_lock:
            if self._sockets is None:
                self._sockets = _SocketLoop()
            return self._sockets

    def _start(self, socket: _SocketT) -> _SocketT:
        """Run `socket` on this store's socket thread; `socket.close()` stops it."""
        socket._future = self._loop().run(socket._run())
        return socket

    def stream(self, task_id: str, subscription: Subscription,
               on_status: Callable[[dict[str, Any]], None] | None = None) -> RemoteStream:
        """Feed `subscription` the task's records past its filter's `after` from the server's log WebSocket
        (history, then live, filtered on the server by the subscription's filter); `on_status` gets
        the task's row when its status or progress changes. Close the returned stream when done."""
        return self._start(RemoteStream(self, task_id, subscription, on_status))

    def watch_tasks(self, on_change: Callable[[dict[str, Any]], None],
                    on_connect: Callable[[], None] | None = None) -> TaskWatch:
        """Call `on_change(row)` for every task created or changed on the server (`{"id", "deleted": True}`
        for a deleted one), from the task-list WebSocket. `on_connect` runs (in a worker thread)
        each time the socket opens, before its messages are read: the place to re-read the list."""
        return self._start(TaskWatch(self, on_change, on_connect))

    def write_settings(self, values: Mapping[str, str]) -> None:
        """Change the server's settings now (an admin's change must not wait for a flush)."""
        try:
            self.connection.send_json("PUT", "settings", dict(values))
        except ServerError as error:
            if error.status == 403:
                raise PermissionError(f"the server does not allow you to change settings: {error}") from None
            raise ValueError(str(error)) from None

    def write(self, task_rows: Iterable[Mapping[str, Any]] = (), batch: pa.Table | None = None,
              settings: Mapping[str, str] | None = None, *, only_new: bool = False,
              row_modes: Mapping[str, str] | None = None) -> list[str]:
        """Ship task rows and records to the server's ingest (`only_new` and `row_modes` need nothing
        here: the server answers records it has already as duplicates, and owns the rows)."""
        if settings:
            self.connection.send_json("PUT", "settings", dict(settings))
        rows = [task_row_to_wire(row) for row in task_rows]
        if not rows and (batch is None or batch.num_rows == 0):
            return []
        from .store.store import LOG_ARROW_SCHEMA

        self._ingest(rows, batch if batch is not None else LOG_ARROW_SCHEMA.empty_table())
        return []

    def _ingest(self, rows: list[dict[str, Any]], table: pa.Table) -> None:
        """POST one batch. One larger than INGEST_BODY_CAP, or than the server takes (413), goes in halves,
        the task rows with the first (a task's row makes it known; an ended task still takes records up
        to its final count); a single record too large is cut the way a long message is, task rows too
        large have their texts cut. A part sent twice after a failure is answered as duplicates by the
        server, so a retry adds nothing twice. A body the server refuses for what it holds (a 400) is
        taken apart until what it refuses is found: that is dropped, logged and counted, the rest goes
        on, so that one bad record never holds up every later one."""
        body = _ingest_body(rows, table)
        if len(body) > INGEST_BODY_CAP and table.num_rows > 1:
            self._ingest_halves(rows, table)
            return
        try:
            answer = self.connection.request("POST", "ingest", body=body, content_type="application/vnd.apache.arrow.stream")[0]
        except ServerError as error:
            if error.status == 413:
                if table.num_rows > 1:
                    self._ingest_halves(rows, table)
                elif table.num_rows == 1 and table.nbytes > 4096:
                    self._ingest(rows, _shrunk(table, table.nbytes // 2))
                elif rows and len(json.dumps(rows)) > 4096:
                    self._ingest(_shrunk_rows(rows), table)
                else:  # nothing left to make smaller: a server limit below any batch is an outage to report
                    raise
            elif error.status == 400:
                self._take_apart(rows, table, error)
            else:
                raise
            return
        answered = json.loads(answer)
        for refusal in answered.get("refused", ()):
            self._refused(refusal.get("records", 0), f"task {refusal.get('task_id')}: {refusal.get('reason')}")
        for task_id in answered.get("cancel", ()):
            self.on_cancel(task_id)

    def _ingest_halves(self, rows: list[dict[str, Any]], table: pa.Table) -> None:
        half = table.num_rows // 2
        self._ingest(rows, table.slice(0, half))
        self._ingest([], table.slice(half))

    def _take_apart(self, rows: list[dict[str, Any]], table: pa.Table, error: ServerError) -> None:
        if rows and table.num_rows:  # the rows, or the records? each alone
            self._ingest(rows, table.slice(0, 0))
            self._ingest([], table)
        elif table.num_rows > 1:
            self._ingest_halves(rows, table)
        else:
            what = f"{table.num_rows} record(s)" if table.num_rows else f"the rows of task(s) {', '.join(r['id'] for r in rows)}"
            self._refused(table.num_rows, f"{what} refused: {error}")

    def _refused(self, records: int, why: str) -> None:
        self.refused_records += records
        log.warning("nbtasklog: the server refused %s record(s): %s", records, why)

    def query_logs(self, task_id: str, flt: LogFilter) -> list[LogRecord]:
        params = flt.to_params()
        params.setdefault("limit", str(flt.limit or 100_000))
        records: list[LogRecord] = []
        while True:  # the server caps a page; walk the pages up to the limit
            try:
                page = self.connection.get_json(_task_path(task_id, "logs"), **params)
            except ServerError as error:
                if error.status == 404:  # a task run here whose first batch has not arrived yet
                    return records
                raise
            records.extend(record_from_wire(item) for item in page["records"])
            if not page["has_more"] or (flt.limit is not None and len(records) >= flt.limit) or not page["records"]:
                return records[: flt.limit] if flt.limit is not None else records
            key = "before" if flt.order == "desc" else "after"
            params[key] = str(page["cursor"])

    def log_stats(self, task_id: str) -> dict[str, Any]:
        try:
            stats = self.connection.get_json(_task_path(task_id, "logs", "stats"))
        except ServerError as error:
            if error.status == 404:  # a task run here whose first batch has not arrived yet
                return {"levels": {}, "sources": {}, "metadata_keys": []}
            raise
        stats.pop("total", None)
        return stats

    def get_task(self, task_id: str) -> dict[str, Any] | None:
        try:
            return task_row_from_wire(self.connection.get_json(_task_path(task_id)))
        except ServerError as error:
            if error.status == 404:
                return None
            raise

    def list_tasks(self, status: Iterable[str] | None = None, plugin: str | None = None,
                   before_id: str | None = None, limit: int = 100, user: str | None = None) -> list[dict[str, Any]]:
        """Newest first, up to `limit` rows, walking the server's pages (at most TASK_PAGE rows each)."""
        params: dict[str, Any] = {}
        if status:
            params["status"] = ",".join(status)
        if plugin:
            params["plugin"] = plugin
        if user is not None:
            params["user"] = user
        rows: list[dict[str, Any]] = []
        cursor = before_id or None
        while len(rows) < limit:
            if cursor:
                params["before"] = cursor
            page = self.connection.get_json("tasks", **params, limit=min(limit - len(rows), TASK_PAGE))
            self._whoami = _identity_of(page)
            rows.extend(task_row_from_wire(t) for t in page["tasks"])
            cursor = page["cursor"]
            if cursor is None:
                break
        return rows

    def delete_tasks(self, task_ids: list[str]) -> int:
        """Delete each task the server has, with its records; returns how many there were. A task the
        server still runs is refused (ServerError 409): the engine asks only for finished ones."""
        deleted = 0
        for task_id in task_ids:
            try:
                self.connection.request("DELETE", _task_path(task_id))
            except ServerError as error:
                if error.status != 404:  # 404: not there (never was, or deleted already)
                    raise
            else:
                deleted += 1
        return deleted

    def cleanup(self, older_than: str, user: str | None = None) -> list[str]:
        body = {"older_than": older_than} if user is None else {"older_than": older_than, "user": user}
        return self.connection.send_json("POST", "cleanup", body)["deleted"]

    def whoami(self) -> dict[str, Any]:
        """Whom the server records this process's requests as ("user"), and whether it lists other users'
        tasks to it ("others_visible"): the fields of its task list's answer, the last one read or a new one."""
        if self._whoami is None:
            self._whoami = _identity_of(self.connection.get_json("tasks", limit=1))
        return self._whoami

    def load_settings(self) -> dict[str, str]:
        values = self.connection.get_json("settings")
        values.pop("writable", None)
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}

    def sql(self, query: str, max_rows: int, timeout: float) -> tuple[pa.Table, bool]:
        try:
            data, headers = self.connection.request(
                "POST", "sql", body=json.dumps({"query": query, "format": "arrow", "max_rows": max_rows}).encode())
        except ServerError as error:
            if error.status in (400, 429):  # refused, or the server's analyst queries are all taken
                raise SQLError(str(error)) from None
            raise
        table = pa.ipc.open_stream(data).read_all()
        truncated = {k.lower(): v for k, v in headers.items()}.get("x-nbtasklog-truncated") == "true"
        return table, truncated

    # Server-side task control (tasks run by the server, not by this process).
    def submit(self, plugin: str, params: dict[str, Any], log_level: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"plugin": plugin, "params": params}
        if log_level is not None:
            body["log_level"] = log_level
        return task_row_from_wire(self.connection.send_json("POST", "tasks", body))

    def cancel(self, task_id: str) -> bool:
        return bool(self.connection.send_json("POST", _task_path(task_id, "cancel"), {})["cancelled"])

    def plugins(self) -> list[dict[str, Any]]:
        return self.connection.get_json("plugins")["plugins"]


# ---- WebSockets ----------------------------------------------------------------------------------
class _SocketLoop:
    """One daemon thread running an asyncio loop for every WebSocket of one RemoteStore."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="nbtasklog-sockets", daemon=True)
        self.thread.start()
        _open_loops.add(self)

    def run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self, timeout: float = 5.0) -> None:
        """Cancel every socket task (they close their sockets), then stop and close the loop."""
        _open_loops.discard(self)
        if not self.thread.is_alive():
            return

        async def cancel_all() -> None:
            # tornado's own frame readers are tasks too: cancel and await them all, so that none is
            # left pending when the loop closes ("Task was destroyed but it is pending").
            for _ in range(3):
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                if not tasks:
                    return
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(cancel_all()).result(timeout)
        except Exception as error:
            log.debug("nbtasklog: sockets did not all close: %s", error)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)
        if not self.thread.is_alive():
            self.loop.close()


_open_loops: weakref.WeakSet[_SocketLoop] = weakref.WeakSet()


@atexit.register
def _close_loops() -> None:
    for sockets in list(_open_loops):
        sockets.close(timeout=2.0)


class _Socket:
    """A WebSocket that reconnects with backoff until it is told to stop, or gives up (`failed`).

    A refusal that retrying cannot fix (an HTTP 4xx to the upgrade; a close code 44xx: unknown task,
    bad filter, forbidden) ends it at once, and so do `give_up_after` seconds without a connection.
    """

    path = ""
    give_up_after: float | None = RECONNECT_FOR

    def __init__(self, store: RemoteStore) -> None:
        self.store = store
        self.connection = store.connection
        self.received = 0  # messages read
        self.failed: str | None = None  # why it gave up
        self._future: Any = None

    def close(self) -> None:
        """Stop reading and close the socket (from any thread)."""
        if self._future is not None:
            self._future.cancel()

    def params(self) -> dict[str, Any] | None:
        return None

    async def opened(self) -> None:
        """Called after each connection, before its first message is read."""

    def handle(self, message: dict[str, Any]) -> bool:
        """Handle one message; True when the stream is complete and the socket can close."""
        raise NotImplementedError

    def gave_up(self) -> None:
        """Called once when the socket stops for good without completing."""

    async def _run(self) -> None:
        from tornado.httpclient import HTTPClientError
        from tornado.websocket import websocket_connect

        delay, down_since = 0.05, time.monotonic()
        try:
            while True:
                ws = None
                received, opened_at = self.received, time.monotonic()
                try:
                    ws = await websocket_connect(self.connection.socket_request(self.path, self.params()),
                                                 max_message_size=MAX_SOCKET_MESSAGE)
                    self.store.socket_counts["connects"] += 1
                    await self.opened()
                    while True:
                        raw = await ws.read_message()
                        if raw is None:
                            break
                        self.received += 1
                        if self.handle(json.loads(raw)):
                            return
                except HTTPClientError as error:
                    if 400 <= error.code < 500:  # the server refused the upgrade: retrying will not help
                        raise _GiveUp(f"the server refused the WebSocket: HTTP {error.code}") from None
                except OSError:  # refused, reset: the server is down or restarting
                    pass
                finally:
                    if ws is not None:
                        ws.close()
                if ws is not None:
                    if ws.close_code is not None and 4400 <= ws.close_code < 4500:
                        raise _GiveUp(f"the server closed the WebSocket: {ws.close_code} {ws.close_reason or ''}".strip())
                if ws is not None and (self.received > received or time.monotonic() - opened_at > 1.0):
                    delay, down_since = 0.05, time.monotonic()  # it worked: start over (one closed at once backs off)
                if self.give_up_after is not None and time.monotonic() - down_since > self.give_up_after:
                    raise _GiveUp(f"no connection to {self.connection.url} for {self.give_up_after:.0f} s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY)
        except _GiveUp as error:
            self.failed = str(error)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a bug or a malformed message: say so, the reader falls back to REST
            log.warning("nbtasklog: WebSocket %s stopped: %r", self.path, error)
            self.failed = f"{type(error).__name__}: {error}"
        self.gave_up()


class _GiveUp(Exception):
    pass


class RemoteStream(_Socket):
    """One task's log WebSocket feeding a live Subscription (made by RemoteStore.stream).

    Read from the reader's thread: `cursor` (the last seq offered), `history_end` (set once the
    history up to the seam has been offered), `ended` (the task's final status, set after its last
    record was offered), `failed` (why the socket gave up: read over REST instead), `received`. The
    socket's Follow (the server's messages bring history and live records alike) offers only records
    past `cursor`, and a reconnect asks for those again, so none is lost or repeated; a `lagging`
    message needs nothing here: the server then re-reads from its own cursor and goes on.
    """

    def __init__(self, store: RemoteStore, task_id: str, subscription: Subscription,
                 on_status: Callable[[dict[str, Any]], None] | None) -> None:
        super().__init__(store)
        self.path = _task_path(task_id, "logs", "stream")
        self.subscription = subscription
        self.follow = Follow(subscription.filter, history_on_feed=True)
        self.on_status = on_status
        self.history_end = threading.Event()
        self.ended: str | None = None

    def params(self) -> dict[str, Any]:
        return self.follow.from_cursor().to_params()

    def handle(self, message: dict[str, Any]) -> bool:
        kind = message.get("type")
        if kind == "records":
            fresh = self.follow.live([record_from_wire(item) for item in message["records"]])
            offer = self.subscription.offer
            for record in fresh:
                offer(record)
            self.store.socket_counts["records"] += len(fresh)
        elif kind == "history_end":
            self.follow.reach_seam()
            self.history_end.set()
            self.subscription.wake()
        elif kind == "status":
            if self.on_status is not None:
                self.on_status(task_row_from_wire(message["task"]))
        elif kind == "lagging":
            self.store.socket_counts["lagging"] += 1
        elif kind == "end":
            self.follow.finish()
            self.ended = message["status"]
            self.subscription.wake()
            return True
        elif kind == "error":
            log.debug("nbtasklog: log stream of %s: %s", self.path, message.get("message"))
        return False

    def gave_up(self) -> None:
        self.subscription.wake()


class TaskWatch(_Socket):
    """The task-list WebSocket: every task's creation, status and progress changes, and deletions."""

    path = "tasks/stream"
    give_up_after = None  # nothing else would tell the list: keep trying while the kernel lives

    def __init__(self, store: RemoteStore, on_change: Callable[[dict[str, Any]], None],
                 on_connect: Callable[[], None] | None) -> None:
        super().__init__(store)
        self.on_change = on_change
        self.on_connect = on_connect

    async def opened(self) -> None:
        if self.on_connect is not None:
            # A blocking REST read: in its own thread, so that the loop's other sockets keep going.
            # The socket's messages wait meanwhile, so a change made after the read always comes later.
            try:
                await _in_thread(self.on_connect)
            except Exception as error:
                log.debug("nbtasklog: re-reading the task list failed: %s", error)

    def handle(self, message: dict[str, Any]) -> bool:
        kind = message.get("type")
        try:
            if kind == "task":
                self.on_change(task_row_from_wire(message["task"]))
            elif kind == "deleted":
                self.on_change({"id": message["id"], "deleted": True})
        except Exception:
            log.exception("nbtasklog: task-list listener failed")
        return False


async def _in_thread(function: Callable[[], None]) -> None:
    """Run `function` in a daemon thread and wait for it (an executor's threads would hold up exit)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if not done.done():
            done.set_exception(error) if error is not None else done.set_result(None)

    def work() -> None:
        error: BaseException | None = None
        try:
            function()
        except BaseException as raised:
            error = raised
        try:
            loop.call_soon_threadsafe(settle, error)
        except RuntimeError:  # the loop closed meanwhile
            pass

    threading.Thread(target=work, name="nbtasklog-socket-work", daemon=True).start()
    await done
