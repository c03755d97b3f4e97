"""TaskContext, what a plugin receives (FR-003), and the context variable that says which task is running."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from .logger import TaskEmitter, TaskLogger
from .record import safe_str

# The task whose code is running now. Threads started with a copied context and asyncio code see
# it too; that is how stdlib logging, print and belief_scope find the task they belong to.
current_emitter: ContextVar[TaskEmitter | None] = ContextVar("nbtasklog_task", default=None)
current_context_var: ContextVar[TaskContext | None] = ContextVar("nbtasklog_context", default=None)


class TaskCancelled(Exception):
    """Raised by `context.check_cancelled()` once the task was asked to stop."""


class TaskContext:
    """What a running task knows: its id, its logger, its config, cancellation and progress."""

    def __init__(
        self,
        task_id: str,
        logger: TaskLogger,
        config: Mapping[str, Any],
        cancel_event: threading.Event,
        report_progress: Callable[[float, str | None], None],
    ) -> None:
        self.task_id = task_id
        self.logger = logger
        self.config: Mapping[str, Any] = MappingProxyType(dict(config))
        self._cancel_event = cancel_event
        self._report_progress = report_progress

    @property
    def cancelled(self) -> bool:
        """True once someone asked this task to stop; a long loop should check it."""
        return self._cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise TaskCancelled if the task was asked to stop."""
        if self._cancel_event.is_set():
            raise TaskCancelled(f"task {self.task_id} was cancelled")

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress between 0 and 1 (clamped), with an optional message."""
        try:
            value = float(fraction)
        except (TypeError, ValueError):
            raise ValueError(f"progress must be a number between 0 and 1, not {fraction!r}") from None
        if value != value:  # NaN
            raise ValueError("progress must be a number between 0 and 1, not NaN")
        self._report_progress(min(1.0, max(0.0, value)), None if message is None else safe_str(message))

    def __repr__(self) -> str:
        return f"<TaskContext task={self.task_id}>"


def current_context() -> TaskContext | None:
    """The TaskContext of the task running in this context, or None outside tasks.

    Legacy plugins (`execute(self, params)`) can use it to reach the new API.
    """
    return current_context_var.get()
