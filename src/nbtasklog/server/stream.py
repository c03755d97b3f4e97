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
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from collections import deque
from dataclasses import replace
from typing import Any

from jupyter_server.auth.decorator import ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import ensure_async
from tornado import web
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..engine import UnknownTaskError
from ..filter import FilterError, LogFilter, make_filter
from ..levels import Level, levels_at_or_above
from ..live import Subscription
from .app import Services
from .handlers import dumps, error_status, filter_from_query, record_text

STATUS_COALESCE = 0.1  # seconds: progress changes are sent at most this often per socket
SHARED_TEXTS = 65_536  # JSON texts of a task's live records kept for its other sockets


class _SocketSubscription(Subscription):
    """A Subscription read by the event loop: little more than a deque append on the emitter's side.

    offer() runs in the task's thread, once per record per open socket, under the emitter's lock.
    The loop takes with timeout=0, so the Condition (lock + notify, about half of
    Subscription.offer) is not needed: deque append and popleft are atomic and only the loop pops.

    `polled` (a task run in this process): offer is the bounded deque's own append, in C, with no
    Python frame per record, so that viewers cost the task's thread next to nothing; the reader
    polls every stream_interval instead of being woken, filters on the event loop, and a full
    deque (it drops its oldest) or a gap in the consecutive seqs it takes means that the reader
    fell behind (`lagging`); the bound then counts every record of the task, matching or not.
    Otherwise (records ingested from a kernel) offer() filters, bounds and wakes the reader.
    """

    def __init__(self, flt: LogFilter, max_queue: int, on_ready: Any, local: bool = False) -> None:
        super().__init__(flt, max_queue, on_ready)
        self._match = None if flt.with_limit(None) == LogFilter() else flt.matches
        self.polled = local
        self._keep = _batch_filter(flt) if local else None  # polled: the filter, run on the loop per batch
        self._next: int | None = None  # polled: the seq the next take must start with, once known
        if self.polled:
            self._queue = deque(maxlen=max_queue)
            self.offer = self._queue.append  # type: ignore[method-assign]

    def offer(self, record: Any) -> None:
        if self.lagging or (self._match is not None and not self._match(record)):
            return
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.lagging = True  # set before the clear: the reader that sees it re-reads from its cursor
            queue.clear()
            return
        queue.append(record)
        if len(queue) == 1:
            self.on_ready()

    def take(self, timeout: float | None = None) -> list[Any]:
        queue = self._queue
        if self.polled and len(queue) >= self.max_queue:  # full: it may have dropped records
            return self._fell_behind()
        pop = queue.popleft
        try:
            items = [pop() for _ in range(len(queue))]
        except IndexError:  # offer() cleared the queue meanwhile: lagging is set, the reader catches up
            return []
        if self.polled and items:
            first, last = items[0].seq, items[-1].seq
            if last - first + 1 != len(items) or (self._next is not None and first != self._next):
                return self._fell_behind()
            self._next = last + 1
            if self._keep is not None:
                items = self._keep(items)
        return items

    def _fell_behind(self) -> list[Any]:
        self.lagging = True
        self._next = None  # the reader re-reads from its cursor; the seqs after it are not known
        self._queue.clear()
        return []


def _batch_filter(flt: LogFilter) -> Any:
    """records -> the matching ones; a plain comprehension on level and source when that is all `flt` asks."""
    if flt.with_limit(None) == LogFilter():
        return None
    if replace(flt, min_level=Level.DEBUG, sources=None, order="asc", limit=None) != LogFilter():
        match = flt.matches
        return lambda records: [r for r in records if match(r)]
    levels, sources = frozenset(levels_at_or_above(flt.min_level)), flt.sources
    # r[3] is the level and r[4] the source (LogRecord's fields by position: no property call).
    if sources is None:
        return lambda records: [r for r in records if r[3] in levels]
    if flt.min_level <= Level.DEBUG:
        return lambda records: [r for r in records if r[4] in sources]
    return lambda records: [r for r in records if r[3] in levels and r[4] in sources]


class _TaskTexts:
    """JSON texts of one task's live records by seq, made once on the event loop, shared by its sockets.

    A task's records have consecutive seqs, so the texts are a list for seqs start, start + 1, …:
    a socket whose batch is a run of consecutive seqs (no filter) sends a slice of it, joined in C,
    with no Python work per record; a filtered socket picks its records' texts by seq, and keeps
    those it had to make in `ahead` for the list. Past SHARED_TEXTS texts the older half is dropped.
    """

    def __init__(self) -> None:
        self.start = 1  # seq of texts[0]
        self.texts: list[str] = []
        self.ahead: dict[int, str] = {}  # seq -> text made by a filtered socket past the list's end

    def texts_for(self, records: list[Any]) -> list[str]:
        first, last = records[0].seq, records[-1].seq
        start, texts = self.start, self.texts
        end = start + len(texts)  # the first seq not held
        if last - first + 1 == len(records):  # consecutive seqs, if in order
            if start <= first and last < end:
                return texts[first - start:last - start + 1]
            if first >= start:  # new records at the end, or after a gap (then start the list over)
                if first > end or not texts:
                    texts.clear()
                    self.start = start = end = first
                tail = records[end - first:]
                if [r.seq for r in tail] == list(range(end, last + 1)):
                    ahead = self.ahead
                    if ahead:
                        texts.extend([ahead.pop(r.seq, None) or record_text(r) for r in tail])
                    else:
                        texts.extend([record_text(r) for r in tail])
                    result = texts[first - start:]
                    if len(texts) > SHARED_TEXTS:
                        drop = len(texts) // 2
                        del texts[:drop]
                        self.start += drop
                    return result
        return [texts[r.seq - start] if start <= r.seq < end else self._ahead(r) for r in records]

    def _ahead(self, record: Any) -> str:
        ahead = self.ahead
        text = ahead.get(record.seq)
        if text is None:
            if len(ahead) >= SHARED_TEXTS:
                ahead.clear()
            text = ahead[record.seq] = record_text(record)
        return text


_task_texts: weakref.WeakValueDictionary[str, _TaskTexts] = weakref.WeakValueDictionary()


def _texts_of(task_id: str) -> _TaskTexts:
    """The shared texts of a task's live records; kept while a socket of the task holds them."""
    texts = _task_texts.get(task_id)
    if texts is None:
        texts = _task_texts[task_id] = _TaskTexts()
    return texts


def _records_message(texts: Any, cursor: int) -> str:
    """{"type": "records", "records": [...], "cursor": SEQ} from the records' JSON texts."""
    return '{"type": "records", "records": [' + ", ".join(texts) + f'], "cursor": {cursor}}}'


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
        result = super().get(*args, **kwargs)
        if result is not None:
            await result

    def send(self, message: dict[str, Any]) -> Any:
        return self.write_message(dumps(message))


class LogStreamHandler(_AuthorizedSocket):
    """History after the cursor, then live records of one task; the filter can change on the open socket."""

    def open(self, task_id: str) -> None:  # type: ignore[override]
        self.task_id = task_id
        self.texts = _texts_of(task_id)
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
        local = engine.runner.get(self.task_id) is not None
        subscription = _SocketSubscription(flt, self.services.stream_queue, on_ready=self._wake, local=local)
        self._swap_subscription(subscription)
        last = flt.after_seq or 0
        try:
            last = await self._catch_up(flt, last)
            await self.send({"type": "history_end", "cursor": last})
            while True:
                state = engine.runner.get(self.task_id)  # a task run here: no trip through the executor
                finished = state.done.is_set() if state is not None else await self.services.run(engine.is_finished, self.task_id)
                if not (finished or subscription.polled or subscription._queue or subscription.lagging):  # ended: end now
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
                fresh = batch if batch and batch[0].seq > last else [r for r in batch if r.seq > last]
                if fresh:
                    last = fresh[-1].seq
                    await self.write_message(_records_message(self.texts.texts_for(fresh), last))
                if finished and not batch:
                    # Records of tasks run elsewhere arrive through the store too: one last look.
                    last = await self._catch_up(flt, last)
                    info = await self.services.run(engine.task_info, self.task_id)
                    await self.send({"type": "status", "task": info})
                    await self.send({"type": "end", "status": info["status"], "cursor": last})
                    return
        except (WebSocketClosedError, asyncio.CancelledError):
            return
        except Exception as error:
            status, message = error_status(error)
            self.log.warning("nbtasklog: log stream of %s ended: %s", self.task_id, message)
            if self.ws_connection is not None:
                self.close(4000 + status if status < 1000 else 4500, message[:120])

    async def _catch_up(self, flt: LogFilter, last: int) -> int:
        """Send history after `last`, page by page; returns the new cursor."""
        engine = self.services.engine
        while True:
            page = await self.services.run(lambda: list(_take(engine.history(self.task_id, flt, last), 10_000)))
            if not page:
                return last
            last = page[-1].seq
            await self.write_message(_records_message(map(record_text, page), last))
            if len(page) < 10_000:
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


def _take(iterator: Any, count: int) -> Any:
    for index, item in enumerate(iterator):
        yield item
        if index + 1 >= count:
            return
