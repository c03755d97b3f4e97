"""WebSockets: one task's log, live and filtered on the server; and the task list's changes.

Log stream protocol (JSON text messages):
  server -> client  {"type": "records", "records": [...], "cursor": SEQ}   history pages, then live batches
                    {"type": "history_end", "cursor": SEQ}                 history sent; live records follow
                    {"type": "status", "task": {...}}                      status or progress changed
                    {"type": "lagging", "cursor": SEQ}                     fell behind; catching up from SEQ
                    {"type": "reset", "filter": {...}}                     a new filter applies from here on
                    {"type": "end", "status": STATUS, "cursor": SEQ}       the task ended; nothing more comes
                    {"type": "error", "message": "..."}                    a bad client message (the socket stays)
  client -> server  {"type": "filter", "level": ..., "source": ..., "search": ..., "meta": {...}, "after": SEQ}
The socket closes with code 4404 for an unknown task and 4400 for a bad filter in the URL.

The sockets of a task run in this process read its live records from one shared window
(live_window.LiveWindow); a task run elsewhere (a kernel's, ingested) gives each socket its own queue.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from http.client import responses
from itertools import islice
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import ensure_async
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..errors import UnknownTaskError
from ..filter import FilterError, LogFilter, make_filter
from ..live import Subscription
from ..runner import TaskState
from ..wire import dumps, record_text
from .errors import INTERNAL_ERROR, allowed_methods, close_code, error_status
from .live_window import PAGE, LiveWindow, SocketSubscription, records_message
from .rest import filter_from_query
from .services import Services

STATUS_COALESCE = 0.1  # seconds: progress changes are sent at most this often per socket


class _AuthorizedSocket(WebSocketMixin, WebSocketHandler, JupyterHandler):
    auth_resource = "nbtasklog"

    @property
    def services(self) -> Services:
        return self.settings["nbtasklog"]

    async def pre_get(self) -> None:
        authorized = await ensure_async(self.authorizer.is_authorized(self, self.current_user, "read", self.auth_resource))
        if not authorized:
            raise web.HTTPError(403)

    @ws_authenticated
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await self.pre_get()
        refusal = _not_a_handshake(self.request.headers)
        if refusal is not None:  # tornado would answer it in plain text
            raise web.HTTPError(*refusal)
        result = super().get(*args, **kwargs)
        if result is not None:
            await result

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Refusals before the upgrade are JSON, as the REST API's. (JupyterHandler's HTML page needs the
        user, which is never looked up for a method tornado refuses at once, such as TRACE.)"""
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, web.HTTPError):
            message, reason = error.log_message or responses.get(status_code, "error"), error.reason
        else:
            message, reason = INTERNAL_ERROR, None
        if status_code == 405:  # RFC 9110: a 405 names the methods the path has
            self.set_header("Allow", ", ".join(allowed_methods(type(self))))
        if status_code == 426:  # RFC 6455: the versions the server speaks
            self.set_header("Sec-WebSocket-Version", "13")
        self.set_header("Content-Type", "application/json")
        self.finish(dumps({"message": message, "reason": reason}))

    def send(self, message: dict[str, Any]) -> Any:
        return self.write_message(dumps(message))


def _not_a_handshake(headers: Any) -> tuple[int, str] | None:
    """(status, message) when a request to a socket path is not a WebSocket opening handshake, else None."""
    if headers.get("Upgrade", "").lower() != "websocket":
        return 400, "this path is a WebSocket: open it with a WebSocket client (a GET with Upgrade: websocket)"
    if "upgrade" not in [part.strip().lower() for part in headers.get("Connection", "").split(",")]:
        return 400, "a WebSocket handshake needs the header Connection: Upgrade"
    if not headers.get("Sec-WebSocket-Key") or not headers.get("Sec-WebSocket-Version"):
        return 400, "a WebSocket handshake needs the headers Sec-WebSocket-Key and Sec-WebSocket-Version"
    if headers["Sec-WebSocket-Version"] not in ("7", "8", "13"):  # what tornado speaks
        return 426, "WebSocket version 13 is the one this server speaks"
    return None


class LogStreamHandler(_AuthorizedSocket):
    """History after the cursor, then live records of one task; the filter can change on the open socket."""

    def open(self, task_id: str) -> None:  # type: ignore[override]
        self.task_id = task_id
        self.loop = asyncio.get_running_loop()
        self.ready = asyncio.Event()
        self.pump: asyncio.Task[None] | None = None
        self.subscription: Subscription | None = None
        self.unlisten = self.services.engine.on_task_change(self._task_changed)
        self.status_due: dict[str, Any] | None = None
        try:
            flt = filter_from_query(self.request.arguments, default_limit=None)
        except FilterError as error:
            self.close(4400, str(error)[:120])
            return
        self._start(flt)

    def _start(self, flt: LogFilter) -> None:
        if self.pump is not None:
            self.pump.cancel()
        self.pump = asyncio.ensure_future(self._run(flt))

    async def _run(self, flt: LogFilter) -> None:
        engine = self.services.engine
        try:
            await self.services.run(engine.task_info, self.task_id)
        except UnknownTaskError as error:
            self.close(4404, str(error)[:120])
            return
        flt = flt.with_limit(None)
        try:
            state = engine.runner.get(self.task_id)
            if state is not None:
                last = await self._stream_window(flt, state)
            else:
                last = await self._stream_subscription(flt)
            # Records of tasks run elsewhere arrive through the store too: one last look.
            last = await self._catch_up(flt, last)
            info = await self.services.run(engine.task_info, self.task_id)
            await self.send({"type": "status", "task": info})
            await self.send({"type": "end", "status": info["status"], "cursor": last})
        except (WebSocketClosedError, asyncio.CancelledError):
            return
        except Exception as error:
            status, message = error_status(error)
            self.log.warning("nbtasklog: log stream of %s ended: %s", self.task_id, message)
            if self.ws_connection is not None:
                self.close(close_code(status), message[:120])

    async def _stream_window(self, flt: LogFilter, state: TaskState) -> int:
        """A task run in this process: history, then its shared live window, until it ended; returns the cursor."""
        services, task_id = self.services, self.task_id
        window = services.windows.get(task_id)
        if window is None:
            window = services.windows[task_id] = LiveWindow(services, state)
        reader = object()  # this run's place in the window (a filter change starts another run)
        window.readers.add(reader)
        key = replace(flt, after_seq=None)
        try:
            last, pos = await self._catch_up_window(window, flt, flt.after_seq or 0)
            await self.send({"type": "history_end", "cursor": last})
            while True:
                finished = state.done.is_set()  # before the tick: the tick's drain then holds its last record
                await window.ticked.wait()
                await self._flush_status()
                while True:
                    taken = window.take(key, pos)
                    if taken is None:
                        await self.send({"type": "lagging", "cursor": last})
                        last, pos = await self._catch_up_window(window, flt, last)
                        continue
                    message, cursor, pos = taken
                    if message is not None:
                        await self.write_message(message)
                        last = cursor  # type: ignore[assignment]
                    if pos >= window.end:
                        break  # else a page of a catch-up inside the window: the next one at once
                if finished:
                    return last
        finally:
            window.readers.discard(reader)
            if not window.readers and services.windows.get(task_id) is window:
                del services.windows[task_id]
                window.close()

    async def _catch_up_window(self, window: LiveWindow, flt: LogFilter, last: int) -> tuple[int, int]:
        """History after `last` that the window no longer holds, from the store; returns the new cursor
        and the window position to read on from (the window holds the rest, its texts shared)."""
        first = window.first  # records before it were emitted earlier: they are in the store or its buffer
        last = await self._catch_up(replace(flt, before_seq=first), last)
        return last, max(first - 1, last)

    async def _stream_subscription(self, flt: LogFilter) -> int:
        """A task run elsewhere (a kernel's, ingested): history, then live records, until it ended."""
        engine = self.services.engine
        subscription = SocketSubscription(flt, self.services.stream_queue, on_ready=self._wake)
        self._swap_subscription(subscription)
        last = await self._catch_up(flt, flt.after_seq or 0)
        await self.send({"type": "history_end", "cursor": last})
        while True:
            finished = await self.services.run(engine.is_finished, self.task_id)
            if not (finished or subscription.pending or subscription.lagging):
                try:
                    await asyncio.wait_for(self.ready.wait(), timeout=0.5)
                except asyncio.TimeoutError:
                    pass
            self.ready.clear()
            await asyncio.sleep(self.services.stream_interval)  # batch: at most one message per interval
            await self._flush_status()
            batch = subscription.take(timeout=0)
            if subscription.lagging:
                await self.send({"type": "lagging", "cursor": last})
                subscription.resume()
                last = await self._catch_up(flt, last)
                continue
            fresh = [r for r in batch if r.seq > last]
            if fresh:
                last = fresh[-1].seq
                await self.write_message(records_message(map(record_text, fresh), last))
            if finished and not batch:
                return last

    async def _catch_up(self, flt: LogFilter, last: int) -> int:
        """Send history after `last`, page by page; returns the new cursor."""
        engine = self.services.engine
        while True:
            page = await self.services.run(lambda: list(islice(engine.history(self.task_id, flt, last), PAGE)))
            if not page:
                return last
            last = page[-1].seq
            await self.write_message(records_message(map(record_text, page), last))
            if len(page) < PAGE:
                return last

    def _wake(self) -> None:
        self.loop.call_soon_threadsafe(self.ready.set)

    def _swap_subscription(self, subscription: Subscription | None) -> None:
        engine = self.services.engine
        if self.subscription is not None:
            engine.unsubscribe(self.task_id, self.subscription)
        self.subscription = subscription
        if subscription is not None:
            engine.subscribe(self.task_id, subscription)

    def _task_changed(self, row: dict[str, Any]) -> None:  # called from task threads
        if row["id"] == self.task_id and not row.get("deleted"):
            self.status_due = row
            self.loop.call_soon_threadsafe(self.ready.set)

    async def _flush_status(self) -> None:
        row, self.status_due = self.status_due, None
        if row is not None:
            await self.send({"type": "status", "task": row})

    def on_message(self, message: str | bytes) -> None:
        try:
            data = json.loads(message)
            if not isinstance(data, dict) or data.get("type") != "filter":
                raise FilterError('send {"type": "filter", ...} to change the filter')
            fields = {k: v for k, v in data.items() if k != "type"}
            meta = fields.pop("meta", None)
            if isinstance(meta, dict):
                fields["meta"] = meta
            elif meta is not None:
                raise FilterError("meta must be an object of key: value")
            unknown = set(fields) - {"level", "source", "search", "meta", "after", "errors_only"}
            if unknown:
                raise FilterError(f"unknown filter field(s) {', '.join(sorted(unknown))}")
            flt = make_filter(**fields)
        except (ValueError, TypeError) as error:
            self.send({"type": "error", "message": str(error)})
            return
        self.send({"type": "reset", "filter": flt.to_params()})
        self._start(flt)

    def on_close(self) -> None:
        if getattr(self, "pump", None) is not None:
            self.pump.cancel()
        if getattr(self, "unlisten", None) is not None:
            self.unlisten()
        if getattr(self, "subscription", None) is not None:
            self._swap_subscription(None)


class TaskListStreamHandler(_AuthorizedSocket):
    """Task created, status and progress changes, for the sidebar: {"type": "task", "task": {...}}."""

    def open(self) -> None:  # type: ignore[override]
        self.loop = asyncio.get_running_loop()
        self.due: dict[str, dict[str, Any]] = {}
        self.scheduled = False
        self.last_sent = 0.0
        self.unlisten = self.services.engine.on_task_change(self._changed)

    def _changed(self, row: dict[str, Any]) -> None:  # called from task threads
        self.loop.call_soon_threadsafe(self._queue, row)

    def _queue(self, row: dict[str, Any]) -> None:
        self.due[row["id"]] = row
        if not self.scheduled:
            self.scheduled = True
            delay = max(0.0, self.last_sent + STATUS_COALESCE - time.monotonic())
            self.loop.call_later(delay, self._send_due)

    def _send_due(self) -> None:
        self.scheduled = False
        self.last_sent = time.monotonic()
        due, self.due = self.due, {}
        for row in due.values():
            message = {"type": "deleted", "id": row["id"]} if row.get("deleted") else {"type": "task", "task": row}
            try:
                self.send(message)
            except WebSocketClosedError:
                return

    def on_message(self, message: str | bytes) -> None:
        self.send({"type": "error", "message": "this socket only sends; use the REST API to act on tasks"})

    def on_close(self) -> None:
        if getattr(self, "unlisten", None) is not None:
            self.unlisten()
