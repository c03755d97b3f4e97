"""WebSockets: one task's log, live and filtered on the server; and the task list's changes.

Log stream protocol (JSON text messages):
  server -> client  {"type": "records", "records": [...], "cursor": SEQ}   history pages, then live batches
                    {"type": "history_end", "cursor": SEQ}                 history sent; live records follow
                    {"type": "status", "task": {...}}                      status or progress changed
                    {"type": "lagging", "cursor": SEQ}                     fell behind; catching up from SEQ
                    {"type": "reset", "filter": {...}}                     a new filter (to_wire) applies from here on
                    {"type": "end", "status": STATUS, "cursor": SEQ}       the task ended; nothing more comes
                    {"type": "error", "message": "..."}                    a bad client message (the socket stays)
  client -> server  {"type": "filter", "level": ..., "source": [...], "meta": [...], "after": SEQ, ...}  (LogFilter.to_wire's fields)
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
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import ensure_async
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..errors import UnknownTaskError
from ..filter import FilterError, LogFilter
from ..follow import Follow
from ..live import LoopSubscription, Subscription
from ..runner import TaskState
from ..wire import dumps, record_text
from .errors import INTERNAL_ERROR, allowed_methods, close_code, error_status
from .live_window import LiveWindow, records_message
from .rest import filter_from_query
from .services import Services
from .users import is_theirs, may_others, refusal, request_username

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
        self.username = request_username(self)
        self.others_visible = await may_others(self, "read")

    def may_read(self, row: dict[str, Any]) -> bool:
        """A task this socket's user may read: theirs, or any when the authorizer allows other users' tasks."""
        return self.others_visible or not is_theirs(row, self.username)

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
            info = await self.services.run(engine.task_info, self.task_id)
        except UnknownTaskError as error:
            self.close(4404, str(error)[:120])
            return
        if not self.may_read(info):
            self.close(close_code(403), refusal(self.task_id, "read").log_message[:120])
            return
        flt = flt.with_limit(None)
        try:
            state = engine.runner.get(self.task_id)
            if state is not None:
                last = await self._stream_window(flt, state)
            else:
                last = await self._stream_subscription(flt)
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
        # The records before the window's first were emitted earlier: they are in the store or its buffer.
        # The end is told after one more read of the store: a server stopping meanwhile (its store
        # closing) closes the socket instead, and the client resumes from its cursor on the next one.
        follow = Follow(flt, feed_from=window.first, last_look=True)
        try:
            await self._read(follow)
            await self.send({"type": "history_end", "cursor": follow.last})
            while not follow.ended:
                if follow.reading:  # the last look at the store after the end, or a catch-up
                    await self._read(follow)
                    continue
                finished = state.done.is_set()  # before the tick: the tick's drain then holds its last record
                await window.ticked.wait()
                await self._flush_status()
                while True:
                    taken = window.take(key, follow.position)
                    if taken is None:  # the window no longer holds the records after this socket's position
                        await self.send({"type": "lagging", "cursor": follow.last})
                        follow.lagged(feed_from=window.first)
                        await self._read(follow)
                        continue
                    message, cursor, position = taken
                    drained = position >= window.end  # else a page of a catch-up inside the window: the next one at once
                    if follow.live_through(cursor, position, finished=finished and drained):
                        await self.write_message(message)
                    if drained:
                        break
            return follow.last
        finally:
            window.readers.discard(reader)
            if not window.readers and services.windows.get(task_id) is window:
                del services.windows[task_id]
                window.close()

    async def _stream_subscription(self, flt: LogFilter) -> int:
        """A task run elsewhere (a kernel's, ingested): history, then live records, until it ended."""
        engine = self.services.engine
        subscription = LoopSubscription(flt, self.services.stream_queue, on_ready=self._wake)
        self._swap_subscription(subscription)
        # Records of a task run elsewhere may reach the store without passing this server's ingest
        # (another process on the same database): the store is read too when the queue is quiet.
        follow = Follow(flt, store_fed=True)
        await self._read(follow)
        await self.send({"type": "history_end", "cursor": follow.last})
        while not follow.ended:
            if follow.reading:
                await self._read(follow)
                continue
            finished = await self.services.run(engine.is_finished, self.task_id)
            if not (finished or subscription.pending or subscription.lagging):
                try:
                    await asyncio.wait_for(self.ready.wait(), timeout=0.5)
                except asyncio.TimeoutError:
                    pass
            self.ready.clear()
            await asyncio.sleep(self.services.stream_interval)  # batch: at most one message per interval
            await self._flush_status()
            batch = subscription.take_live(timeout=0)
            if batch is None:
                await self.send({"type": "lagging", "cursor": follow.last})
                follow.lagged()
                continue
            fresh = follow.live(batch, finished=finished)
            if fresh:
                await self.write_message(records_message(map(record_text, fresh), follow.last))
        return follow.last

    async def _read(self, follow: Follow) -> None:
        """The history pages the follow asks for, from the store (in the executor), each sent as one message."""
        engine, task_id = self.services.engine, self.task_id
        while follow.reading:
            page = follow.next_page()
            records = follow.page(await self.services.run(engine.logs, task_id, page))
            if records:
                await self.write_message(records_message(map(record_text, records), follow.last))

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
            flt = LogFilter.from_wire({k: v for k, v in data.items() if k != "type"})
        except (ValueError, TypeError) as error:
            self.send({"type": "error", "message": str(error)})
            return
        self.send({"type": "reset", "filter": flt.to_wire()})
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
            if not row.get("deleted") and not self.may_read(row):
                continue
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
