"""Task, the handle run_task returns, and LogRecords, the list its logs() returns."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa

from .record import LogRecord
from .statuses import FINISHED
from .store.store import LOG_ARROW_SCHEMA, records_to_arrow

if TYPE_CHECKING:
    import pandas



class LogRecords(list[LogRecord]):
    """A list of records that also converts to Arrow and pandas."""

    def to_arrow(self) -> pa.Table:
        return records_to_arrow(list(self)) if self else LOG_ARROW_SCHEMA.empty_table()

    def to_pandas(self) -> pandas.DataFrame:
        """One row per record; `metadata` as JSON text, `timestamp` as UTC datetimes."""
        return self.to_arrow().to_pandas()

    def __str__(self) -> str:
        return "\n".join(str(r) for r in self)


class TaskEngine(Protocol):
    """What a Task asks of the engine it came from (nbtasklog.Engine)."""

    def task_info(self, task_id: str) -> dict[str, Any]: ...
    def task_result(self, task_id: str) -> Any: ...
    def wait(self, task_id: str, timeout: float | None = None) -> None: ...
    def cancel(self, task_id: str) -> bool: ...
    def logs(self, task_id: str, flt: Any = None, **filter: Any) -> LogRecords: ...
    def follow(self, task_id: str, flt: Any = None, **filter: Any) -> Iterator[LogRecord]: ...
    def stats(self, task_id: str) -> dict[str, Any]: ...
    def delete_task(self, task_id: str) -> None: ...


class Task:
    """A task, running here or stored: status, progress, logs, and the controls to wait for or cancel it."""

    def __init__(self, engine: TaskEngine, task_id: str) -> None:
        self._engine = engine
        self.id = task_id

    def info(self) -> dict[str, Any]:
        """The task's row: plugin, params, status, timestamps, error, progress."""
        return self._engine.task_info(self.id)

    @property
    def status(self) -> str:
        return self.info()["status"]

    @property
    def plugin(self) -> str:
        return self.info()["plugin"]

    @property
    def params(self) -> dict[str, Any]:
        return self.info()["params"]

    @property
    def error(self) -> str | None:
        return self.info()["error"]

    @property
    def progress(self) -> float | None:
        return self.info()["progress"]

    @property
    def progress_message(self) -> str | None:
        return self.info()["progress_message"]

    @property
    def created_at(self) -> datetime:
        return self.info()["created_at"]

    @property
    def started_at(self) -> datetime | None:
        return self.info()["started_at"]

    @property
    def finished_at(self) -> datetime | None:
        return self.info()["finished_at"]

    @property
    def duration(self) -> timedelta | None:
        info = self.info()
        if info["started_at"] is None:
            return None
        end = info["finished_at"] or datetime.now(info["started_at"].tzinfo)
        return end - info["started_at"]

    @property
    def done(self) -> bool:
        return self.status in FINISHED

    @property
    def result(self) -> Any:
        """What execute() returned (only for tasks run by this process)."""
        return self._engine.task_result(self.id)

    def wait(self, timeout: float | None = None) -> str:
        """Block until the task has finished; returns its status. Raises TimeoutError after `timeout` s."""
        self._engine.wait(self.id, timeout)
        return self.status

    def cancel(self) -> bool:
        """Ask the task to stop (cooperative: it stops at its next check_cancelled()). False if already finished."""
        return self._engine.cancel(self.id)

    def logs(self, **filter: Any) -> LogRecords:
        """Records of this task; keyword arguments as `make_filter` (level, source, search, meta, after, limit…)."""
        return self._engine.logs(self.id, **filter)

    def follow(self, **filter: Any) -> Iterator[LogRecord]:
        """Matching records as they come: history first, then live ones, until the task ends.

        In a kernel started by a Jupyter server with nbtasklog, a task the server runs streams over
        its WebSocket (filtered there), resuming where it was if the server restarts meanwhile.
        """
        return self._engine.follow(self.id, **filter)

    def stats(self) -> dict[str, Any]:
        """Counts by level and by source, and the metadata keys seen."""
        return self._engine.stats(self.id)

    def delete(self) -> None:
        """Delete the task and all its logs."""
        self._engine.delete_task(self.id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        try:
            info = self.info()
        except Exception as error:  # a repr must not raise (the database may be down)
            return f"Task {self.id} ({type(error).__name__}: {error})"
        text = f"Task {self.id} {info['plugin']} {info['status']}"
        if info["progress"] is not None and info["status"] == "RUNNING":
            text += f" {info['progress']:.0%}"
        duration = self.duration
        if duration is not None:
            text += f" in {duration.total_seconds():.2f} s"
        if info["error"]:
            text += f"\n  error: {info['error']}"
        return text

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The text form: status and last lines, no address. In a notebook a task shows as its log viewer
        (nbtasklog registers that display with IPython: the widget layer builds on this one)."""
        return {"text/plain": task_text(self)}

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        """IPython's text form: the status line and the last lines of the log."""
        printer.text(repr(self))
        try:
            last = self.logs(order="desc", limit=5)
        except Exception:
            return
        for record in reversed(last):
            printer.break_()
            printer.text(f"  {record.timestamp.strftime('%H:%M:%S.%f')[:-3]} {record.level:<7} [{record.source}] {record.message[:200]}")


def wait_until(predicate: Any, timeout: float | None, what: str) -> None:
    """Poll `predicate` until true; TimeoutError naming `what` after `timeout` seconds."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.01
    while not predicate():
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"{what} did not finish within {timeout} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


def task_text(task: Task) -> str:
    """A task's plain-text form: the status line and its last lines, without a memory address."""
    lines = [repr(task)]
    try:
        last = task.logs(order="desc", limit=5)
    except Exception:
        return lines[0]
    for record in reversed(last):
        lines.append(f"  {record.timestamp.strftime('%H:%M:%S.%f')[:-3]} {record.level:<7} [{record.source}] {record.message[:200]}")
    return "\n".join(lines)
