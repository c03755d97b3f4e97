"""The notebook widgets: LogViewer, TaskList and SettingsPanel (anywidget), and Task's display.

The Python side is a thin request/response server over custom messages; the front end
(js/src/widget.ts, bundled into static/widget.js) renders. Protocol, front end -> kernel:
  {"type": "request", "id": N, "method": M, "args": {...}}   reply {"type": "reply", "id": N, "result": ...}
                                                              or {"type": "reply", "id": N, "error": "..."}
  {"type": "open", "stream": S, "task": ID, "filter": {...}}  a task's log: history, then live records
  {"type": "filter", "stream": S, "filter": {...}}            a new filter on the open stream
  {"type": "close", "stream": S}
kernel -> front end, for stream S: {"type": "stream", "stream": S, "event": E, ...} with E one of
  records (+ one buffer: columnar JSON {seq, ts, level, source, message, meta}), history_end, status,
  reset, end, error; and for TaskList: {"type": "task", "task": {...}}, {"type": "deleted", "id": ID}.

Everything goes through the Engine (logs, stats, history, subscribe), so the widgets work the same
on an embedded store and on a RemoteStore talking to a Jupyter server; there, a server task's log
and the task list come over the server's WebSockets (RemoteStore.stream, RemoteStore.watch_tasks).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from .connection import get_engine
from .engine import Engine, LiveFeed
from .errors import UnknownTaskError
from .filter import LogFilter
from .follow import PAGE
from .record import LogRecord
from .server.export import EXPORT_WRITERS, log_pages
from .task import Task, task_text
from .wire import jsonable

log = logging.getLogger("nbtasklog")

BATCH_INTERVAL = 0.05  # seconds: live records are sent at most this often per stream (like the WebSocket)
STATUS_INTERVAL = 0.1  # seconds: task status and progress at most this often per stream


def encode_records(records: list[LogRecord]) -> bytes:
    """One binary buffer of columnar JSON: metadata stays the stored JSON text (numbers exactly as written).

    Chosen over Arrow IPC by measuring 100,000 records (bench/viewer/wire_encode.py + wire_decode.mjs,
    2 cores): JSON 85 ms to encode here + 42 ms to decode into row objects in V8; Arrow 30 ms +
    84 ms with @uwdata/flechette, about the same size (11 MB). Decoding runs on the browser's main
    thread, where it competes with scrolling, so the cheaper decode wins; flechette also turns
    timestamp[us] into float milliseconds (exact µs would need BigInt), and JSON adds nothing to the bundle.
    """
    columns = {
        "seq": [r.seq for r in records],
        "ts": [r.timestamp_us for r in records],
        "level": [r.level for r in records],
        "source": [r.source for r in records],
        "message": [r.message for r in records],
        "meta": [r.metadata_json for r in records],
    }
    return json.dumps(columns, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")


def filter_from_spec(spec: Any) -> LogFilter:
    """The viewer's filter (LogFilter.to_wire's form; none: every record) as a LogFilter, without a
    limit: a stream and an export go on to the last matching record."""
    return LogFilter.from_wire({} if spec is None else spec).with_limit(None)


class _Stream:
    """One open log stream of one front end: a thread that sends history, then live batches."""

    def __init__(self, widget: _Base, stream_id: int, task_id: str, flt: LogFilter) -> None:
        self.widget = widget
        self.engine = widget._engine
        self.id = stream_id
        self.task_id = task_id
        self.filter = flt
        self.stop = threading.Event()
        self.status_due: dict[str, Any] | None = None
        self.unlisten = self.engine.on_task_change(self._task_changed)
        self.thread = threading.Thread(target=self._run, name=f"nbtasklog-widget-{task_id}", daemon=True)
        self.thread.start()

    def _task_changed(self, row: dict[str, Any]) -> None:  # called from task threads
        if row.get("id") == self.task_id and not row.get("deleted"):
            self.status_due = row

    def send(self, event: str, buffers: list[bytes] | None = None, **content: Any) -> None:
        with self.widget._send_lock:  # checked under the lock: nothing of a closed stream follows a reset
            if not self.stop.is_set():
                self.widget.send({"type": "stream", "stream": self.id, "event": event, **content}, buffers)

    def _send_records(self, records: Sequence[LogRecord]) -> None:
        for start in range(0, len(records), PAGE):
            page = records[start:start + PAGE]
            self.send("records", [encode_records(page)], cursor=page[-1].seq, count=len(page))

    def _take(self, feed: LiveFeed, finished: bool) -> list[LogRecord] | None:
        """A live batch, with what comes within BATCH_INTERVAL of it; None when the reader fell behind."""
        batch = feed.take(0 if finished else 0.25)
        if batch and not finished:
            self.stop.wait(BATCH_INTERVAL)  # gather what comes meanwhile into one message
            more = feed.take(0)
            batch = None if more is None else batch + more
        return batch

    def _run(self) -> None:
        engine, task_id = self.engine, self.task_id
        # Of a task the server runs (a remote engine), its log WebSocket brings the history and the live records.
        feed = engine.live_feed(task_id, self.filter)
        follow = feed.follow
        next_status = 0.0
        try:
            while not self.stop.is_set():
                live = not follow.reading
                if live:
                    finished, seam = feed.observe()
                    batch = self._take(feed, finished)
                    if self.stop.is_set():
                        return
                    if batch is None:
                        follow.lagged()
                        continue
                    self._send_records(follow.live(batch, finished=finished, seam=seam))
                else:
                    self._send_records(follow.page(engine.logs(task_id, follow.next_page())))
                if follow.announce_seam():
                    self.send("history_end", cursor=follow.last)
                now = _monotonic()
                if live and self.status_due is not None and now >= next_status:
                    row, self.status_due = self.status_due, None
                    self.send("status", task=jsonable(row))
                    next_status = now + STATUS_INTERVAL
                if follow.ended:
                    info = engine.task_info(task_id)
                    self.send("status", task=jsonable(info))
                    self.send("end", status=info["status"], cursor=follow.last)
                    return
        except Exception as error:  # the front end shows it; the kernel keeps running
            log.warning("nbtasklog: widget stream of %s ended: %s", task_id, error)
            self.send("error", message=f"{type(error).__name__}: {error}")
        finally:
            feed.close()

    def close(self) -> None:
        with self.widget._send_lock:
            self.stop.set()
        self.unlisten()


def _monotonic() -> float:
    import time

    return time.monotonic()


class _Base(anywidget.AnyWidget):
    _esm = Path(__file__).parent / "static" / "widget.js"
    kind = traitlets.Unicode("").tag(sync=True)

    def __init__(self, engine: Engine | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._engine = engine if engine is not None else get_engine()
        self._streams: dict[int, _Stream] = {}
        self._send_lock = threading.RLock()
        self._methods: dict[str, Callable[..., Any]] = {
            "task": self._task, "stats": self._stats, "export": self._export, "tasks": self._tasks,
            "plugins": self._plugins, "start": self._start, "cancel": self._cancel, "delete": self._delete,
            "settings": self._settings, "update_settings": self._update_settings,
        }
        self.on_msg(self._on_msg)

    def send(self, content: dict[str, Any], buffers: list[bytes] | None = None) -> None:  # type: ignore[override]
        # Streams send from their threads; one message at a time keeps the comm's frames whole.
        with self._send_lock:
            super().send(content, buffers)

    # ---- messages ------------------------------------------------------------------------------
    def _on_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        if not isinstance(content, dict):
            return
        kind = content.get("type")
        if kind == "request":
            self._request(content)
        elif kind == "open":
            self._open(content)
        elif kind == "filter":
            stream = self._streams.pop(content.get("stream"), None)
            if stream is not None:
                stream.close()
                self._open(dict(content, task=stream.task_id), reset=True)
        elif kind == "close":
            stream = self._streams.pop(content.get("stream"), None)
            if stream is not None:
                stream.close()

    def _request(self, content: dict[str, Any]) -> None:
        request_id = content.get("id")
        try:
            method = self._methods.get(content.get("method"))  # type: ignore[arg-type]
            if method is None:
                raise ValueError(f"unknown method {content.get('method')!r}")
            args = content.get("args") or {}
            result = method(**args)
            buffers = None
            if isinstance(result, tuple):
                result, buffers = result
            self.send({"type": "reply", "id": request_id, "result": jsonable(result)}, buffers)
        except Exception as error:
            self.send({"type": "reply", "id": request_id, "error": f"{type(error).__name__}: {error}"})

    def _open(self, content: dict[str, Any], reset: bool = False) -> None:
        stream_id = content.get("stream")
        try:
            flt = filter_from_spec(content.get("filter"))
            task_id = str(content.get("task"))
            self._engine.task_info(task_id)
        except Exception as error:
            self.send({"type": "stream", "stream": stream_id, "event": "error", "message": f"{type(error).__name__}: {error}"})
            return
        if reset:
            self.send({"type": "stream", "stream": stream_id, "event": "reset"})
        self._streams[stream_id] = _Stream(self, stream_id, task_id, flt)  # type: ignore[index]

    def close(self) -> None:
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()
        super().close()

    # ---- methods -------------------------------------------------------------------------------
    def _task(self, task_id: str) -> dict[str, Any]:
        return self._engine.task_info(task_id)

    def _stats(self, task_id: str) -> dict[str, Any]:
        return self._engine.stats(task_id)

    def _export(self, task_id: str, filter: Any = None, format: str = "jsonl") -> tuple[dict[str, Any], list[bytes]]:
        """The filtered log as one download: the REST export's writers and paging, so the same bytes."""
        flt = filter_from_spec(filter)
        if format not in ("jsonl", "csv"):
            raise ValueError("format must be jsonl or csv")
        writer = EXPORT_WRITERS[format]()
        chunks, count = [], 0
        for records in log_pages(lambda page: self._engine.logs(task_id, page), flt):
            chunks.append(writer.page(records))
            count += len(records)
        chunks.append(writer.close())
        return {"name": f"{task_id}.{format}", "count": count}, [b"".join(chunks)]

    def _tasks(self, status: str | None = None, plugin: str | None = None, before: str | None = None,
               limit: int = 100, user: str | None = None) -> dict[str, Any]:
        """A page of tasks, as GET tasks answers it (Engine.task_page); `user`: only that user's tasks."""
        return self._engine.task_page(status or None, plugin or None, limit, before or None, user=user or None)

    def _plugins(self) -> list[dict[str, Any]]:
        return self._engine.plugins()

    def _start(self, plugin: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._engine.run_task(plugin, params).info()

    def _cancel(self, task_id: str) -> bool:
        return self._engine.cancel(task_id)

    def _delete(self, task_id: str) -> None:
        self._engine.delete_task(task_id)

    def _writable(self) -> bool:
        """An embedded store belongs to this process; a server decides for its users."""
        return self._engine.control.settings_writable()

    def _settings(self) -> dict[str, Any]:
        return dict(self._engine.settings.to_dict(), writable=self._writable())

    def _update_settings(self, changes: dict[str, Any]) -> dict[str, Any]:
        if not self._writable():
            raise PermissionError("you are not allowed to change the logging settings")
        return dict(self._engine.update_settings(**changes).to_dict(), writable=True)


class LogViewer(_Base):
    """One task's log in a notebook: filters, search, follow mode, live records as they are emitted."""

    task_id = traitlets.Unicode("").tag(sync=True)
    level = traitlets.Unicode("INFO").tag(sync=True)

    def __init__(self, task: Any, *, level: str = "INFO", engine: Engine | None = None, **kwargs: Any) -> None:
        task_id = task if isinstance(task, str) else task.id
        engine = engine if engine is not None else getattr(task, "_engine", None)
        super().__init__(engine=engine, kind="viewer", task_id=task_id, level=level, **kwargs)

    def __repr__(self) -> str:  # text/plain where widgets don't render (nbconvert, GitHub)
        return task_text(Task(self._engine, self.task_id))


class TaskList(_Base):
    """The tasks of the store, updated live, with the form to start a plugin and each task's log."""

    def __init__(self, *, engine: Engine | None = None, **kwargs: Any) -> None:
        super().__init__(engine=engine, kind="tasks", **kwargs)
        self._seen: dict[str, tuple[Any, ...]] = {}
        # Each (re)connection to a server re-reads the list first, so that nothing missed while the
        # server was away stays missing.
        self._unlisten = self._engine.control.watch_tasks(self._changed, on_connect=self.poll_once).close

    def poll_once(self) -> None:
        """Send the rows that changed since the last look, and the ids that are gone."""
        rows = {row["id"]: row for row in self._tasks()["tasks"]}
        for task_id, row in rows.items():
            if self._seen.get(task_id) != _task_state(row):
                self._changed(row)
        for task_id in set(self._seen) - set(rows):
            try:  # past the first page, or gone?
                self._engine.task_info(task_id)
            except UnknownTaskError:
                self._changed({"id": task_id, "deleted": True})

    def _changed(self, row: dict[str, Any]) -> None:  # called from task threads, or the WebSocket's
        if row.get("deleted"):
            self._seen.pop(row["id"], None)
            self.send({"type": "deleted", "id": row["id"]})
        else:
            self._seen[row["id"]] = _task_state(row)
            self.send({"type": "task", "task": jsonable({k: v for k, v in row.items() if k != "deleted"})})

    def close(self) -> None:
        self._unlisten()
        super().close()

    def __repr__(self) -> str:
        try:
            rows = self._tasks(limit=10)["tasks"]
        except Exception as error:  # a repr must not raise (the store may be away)
            return f"nbtasklog tasks ({type(error).__name__}: {error})"
        return "\n".join(["nbtasklog tasks, newest first:"] + [f"  {row['id']} {row['plugin']} {row['status']}" for row in rows])


def _task_state(row: dict[str, Any]) -> tuple[Any, ...]:
    """What the task list shows of a row that can change."""
    return row["status"], row.get("progress"), row.get("finished_at"), row.get("progress_message")


class SettingsPanel(_Base):
    """Log level, task log level and belief_scope; read-only for users the server does not allow to write."""

    def __init__(self, *, engine: Engine | None = None, **kwargs: Any) -> None:
        super().__init__(engine=engine, kind="settings", **kwargs)

    def __repr__(self) -> str:
        settings = self._engine.settings.to_dict()
        return "nbtasklog settings: " + ", ".join(f"{key}={value}" for key, value in sorted(settings.items()))


def task_mimebundle(task: Any, **kwargs: Any) -> dict[str, Any]:
    """The viewer's widget view plus a text/plain fallback (nbconvert, GitHub, nbval) without addresses.

    Outside a kernel (a terminal IPython, a script) there is nothing to show a widget: text only.
    """
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return {"text/plain": task_text(task)}
    bundle = LogViewer(task)._repr_mimebundle_(**kwargs)
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    data["text/plain"] = task_text(task)
    return data
