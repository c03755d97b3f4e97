"""Runner: runs tasks on a bounded pool of worker threads, each in its own context, and keeps their state."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import getpass
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from . import capture
from .context import TaskCancelled, TaskContext, current_context_var, current_emitter
from .levels import Level
from .logger import SYSTEM_SOURCE, TaskEmitter, TaskLogger, exception_fields, exception_text
from .record import safe_str, valid_text
from .statuses import ACTIVE

log = logging.getLogger("nbtasklog.runner")



def new_task_id() -> str:
    """Ids sort by creation time (keyset paging of task lists, and DuckDB's zone maps on task_id)."""
    return f"{time.time_ns() // 1000:013x}{secrets.token_hex(4)}"


def os_username() -> str | None:
    """Who runs this process, as the tasks it starts record it outside a Jupyter server; None when the
    system cannot say (a container's uid without a passwd entry and no LOGNAME/USER)."""
    try:
        return getpass.getuser()[:255] or None
    except (OSError, KeyError):
        return None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(eq=False)
class TaskState:
    """A task this process runs: its row in the tasks table plus what only the process has."""

    id: str
    plugin: str
    params: dict[str, Any]  # the row's params, as every reader sees them (text made valid)
    params_json: str
    plugin_params: dict[str, Any]  # what the plugin is called with: its own copy, as it was given
    emitter: TaskEmitter
    log_level: Level | None  # a per-task override of the task_log_level setting
    username: str | None = None  # who started it
    status: str = "PENDING"
    created_at: datetime = field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    progress: float | None = None
    progress_message: str | None = None
    result: Any = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    ended: bool = False  # its end was decided (done is set once the row went out)

    def row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "plugin": self.plugin,
            "params": self.params_json,
            "status": self.status,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "progress": self.progress,
            "progress_message": self.progress_message,
            "log_level": self.log_level.name if self.log_level is not None else None,
            "record_count": self.emitter.last_seq,
            "username": self.username,
        }


class Runner:
    """Queues tasks and runs at most `max_workers` at once on daemon threads.

    Daemon threads, not a ThreadPoolExecutor: the executor's exit hook waits for every running task
    before atexit handlers run, so a long task would block a graceful exit that wants to cancel it.
    """

    def __init__(self, max_workers: int, on_change: Callable[[TaskState], None],
                 redact: Callable[[str], str] = lambda text: text) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self.max_workers = max_workers
        self._on_change = on_change
        self._redact = redact  # for the error and progress texts of the task rows (secrets never stored)
        self._queue: queue.SimpleQueue[tuple[TaskState, Callable[..., Any], dict[str, Any]] | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._states: dict[str, TaskState] = {}
        self._lock = threading.Lock()
        self._closed = False

    def get(self, task_id: str) -> TaskState | None:
        return self._states.get(task_id)

    def states(self) -> list[TaskState]:
        return list(self._states.values())

    def active(self) -> list[TaskState]:
        return [s for s in self._states.values() if s.status in ACTIVE]

    def forget(self, task_id: str) -> None:
        self._states.pop(task_id, None)

    def submit(self, state: TaskState, call: Callable[[dict[str, Any], TaskContext], Any], config: dict[str, Any]) -> None:
        if self._closed:
            raise RuntimeError("this nbtasklog engine is closed")
        with self._lock:
            self._states[state.id] = state
            if len(self._workers) < self.max_workers and len(self._workers) < len(self.active()):
                worker = threading.Thread(target=self._work, name=f"nbtasklog-worker-{len(self._workers)}", daemon=True)
                self._workers.append(worker)
                worker.start()
        self._on_change(state)
        self._queue.put((state, call, config))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            state, call, config = item
            try:
                contextvars.copy_context().run(self._execute, state, call, config)
            except BaseException as error:  # a failure of ours, not the plugin's: the worker and the task must not hang
                log.exception("nbtasklog: running task %s failed", state.id)
                self._finish(state, "FAILED", f"nbtasklog failed to run the task: {exception_text(error)}")

    def _execute(self, state: TaskState, call: Callable[..., Any], config: dict[str, Any]) -> None:
        system = TaskLogger(state.emitter, SYSTEM_SOURCE)
        with self._lock:  # against a cancel: a queued task is either started here or cancelled there
            if state.status != "PENDING":
                return  # cancelled while queued (or marked at exit): nothing to run
            cancelled = state.cancel_event.is_set()  # asked to stop by an exit that is waiting for it
            state.status = "CANCELLED" if cancelled else "RUNNING"
            state.started_at = None if cancelled else utcnow()
        if cancelled:
            system.warning("Task cancelled before it started")
            self._finish(state, "CANCELLED", "cancelled before it started")
            return
        self._on_change(state)
        capture.install(state.emitter.min_level)
        context = TaskContext(state.id, TaskLogger(state.emitter), config, state.cancel_event,
                              lambda fraction, message: self._progress(state, fraction, message))
        current_emitter.set(state.emitter)
        current_context_var.set(context)
        system.info("Task started: %s", state.plugin, plugin=state.plugin, params=state.params)
        started = time.perf_counter()
        try:
            result = call(state.plugin_params, context)
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
        except TaskCancelled as exc:
            capture.finish_streams(state.emitter)
            system.warning("Task cancelled after %.2f s", time.perf_counter() - started)
            self._finish(state, "CANCELLED", safe_str(exc) or "cancelled")
        except BaseException as exc:  # the plugin's failure, whatever it is, is the task's, not the worker's
            capture.finish_streams(state.emitter)
            error = exception_text(exc)
            system.error("Task failed after %.2f s: %s", time.perf_counter() - started, error, **exception_fields(exc))
            self._finish(state, "FAILED", error)
        else:
            capture.finish_streams(state.emitter)
            state.result = result
            system.info("Task succeeded in %.2f s", time.perf_counter() - started)
            self._finish(state, "SUCCESS", None)

    def _progress(self, state: TaskState, fraction: float, message: str | None) -> None:
        state.progress, state.progress_message = fraction, None if message is None else self._redact(valid_text(message))
        self._on_change(state)

    def _finish(self, state: TaskState, status: str, error: str | None) -> None:
        with self._lock:  # the worker's ending and an exit's marking may come at once: one of them counts
            if state.ended:  # already marked INTERRUPTED at exit; the late ending changes nothing
                return
            state.ended = True
        state.status, state.error, state.finished_at = status, None if error is None else self._redact(error), utcnow()
        if status == "SUCCESS":
            state.progress = 1.0
        self._on_change(state)
        state.done.set()

    def cancel(self, state: TaskState) -> None:
        """Ask a task to stop: one still queued ends CANCELLED now, a running one at its next check."""
        with self._lock:
            state.cancel_event.set()
            queued = state.status == "PENDING"
            if queued:
                state.status = "CANCELLED"  # the worker that dequeues it sees this and skips it
        if queued:
            TaskLogger(state.emitter, SYSTEM_SOURCE).warning("Task cancelled before it started")
            self._finish(state, "CANCELLED", "cancelled before it started")
        else:
            self._on_change(state)

    def close(self, timeout: float) -> None:
        """Ask every task to stop, wait up to `timeout` s, and mark the ones still going INTERRUPTED."""
        self._closed = True
        for state in self.active():
            state.cancel_event.set()
        deadline = time.monotonic() + timeout
        for state in self.active():
            state.done.wait(max(0.0, deadline - time.monotonic()))
        for state in self.active():
            system = TaskLogger(state.emitter, SYSTEM_SOURCE)
            system.error("Task interrupted: the process is exiting")
            self._finish(state, "INTERRUPTED", "the process exited before the task finished")
        for _ in self._workers:
            self._queue.put(None)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
