"""TaskLogger, what plugins log with, and TaskEmitter, which turns a call into a record of one task.

The level gate comes first in every method, so a call below the task's level costs one comparison.
"""

from __future__ import annotations

import json
import sys
import threading
import traceback
from collections.abc import Callable
from time import time_ns
from typing import Any

from .levels import Level, parse_level
from .record import LogRecord, metadata_to_json

_new_tuple = tuple.__new__
DEFAULT_SOURCE = "plugin"
SYSTEM_SOURCE = "system"
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024


class TaskEmitter:
    """Makes the records of one task: seq numbers, timestamps, size cap; hands them to the sink and live readers."""

    def __init__(
        self,
        task_id: str,
        sink: Callable[[LogRecord], None],
        min_level: Level = Level.INFO,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        belief_scope_enabled: bool = True,
    ) -> None:
        self.task_id = task_id
        self.min_level = int(min_level)  # read on every call; changed by settings at runtime
        self.belief_scope_enabled = belief_scope_enabled
        self.max_message_bytes = max_message_bytes
        self._sink = sink
        self._seq = 0
        self._lock = threading.Lock()  # seq order == order in the sink and in every live queue
        self.subscribers: list[Any] = []  # live.Subscription; offered every record

    @property
    def last_seq(self) -> int:
        return self._seq

    def emit(self, level: str, source: str, msg: object, args: tuple, metadata: dict[str, Any] | None) -> LogRecord:
        """Make and hand on one record. Never raises: bad arguments become part of the record."""
        try:
            if args:
                msg = msg % args  # type: ignore[operator]
            elif type(msg) is not str:
                msg = str(msg)
            meta = metadata_to_json(metadata) if metadata else None
        except Exception as error:  # a bad format string or a __str__ that raises
            msg, meta = _unformattable(msg, args, metadata, error)
        if len(msg) * 4 > self.max_message_bytes:  # type: ignore[arg-type]
            msg, meta = self._cut(msg, meta)  # type: ignore[arg-type]
        timestamp = time_ns() // 1000
        with self._lock:
            self._seq += 1
            # tuple.__new__ directly: a NamedTuple's own __new__ is Python code (~0.3 µs here).
            record = _new_tuple(LogRecord, (self.task_id, self._seq, timestamp, level, source, msg, meta))
            self._sink(record)
            for subscriber in self.subscribers:
                subscriber.offer(record)
        return record

    def _cut(self, msg: str, meta: str | None) -> tuple[str, str | None]:
        data = msg.encode("utf-8", "surrogatepass")
        if len(data) <= self.max_message_bytes:
            return msg, meta
        marker = f" … [message cut: {len(data)} bytes, limit {self.max_message_bytes}]"
        kept = data[: max(0, self.max_message_bytes - len(marker.encode()))].decode("utf-8", "ignore")
        fields = json.loads(meta) if meta is not None else {}
        fields["message_original_bytes"] = len(data)
        return kept + marker, metadata_to_json(fields)


def _unformattable(msg: object, args: tuple, metadata: dict[str, Any] | None, error: Exception) -> tuple[str, str | None]:
    try:
        text = repr(msg)
    except Exception:
        text = f"<{type(msg).__name__} with a failing __repr__>"
    extra = dict(metadata or {})
    extra["format_error"] = f"{type(error).__name__}: {error}"
    if args:
        extra["format_args"] = [_safe_repr(a) for a in args]
    return text, metadata_to_json(extra)


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:
        return f"<{type(value).__name__}>"


class TaskLogger:
    """A task's logger for one source. `with_source()` gives another source for the same task.

    `logger.info("copied %d rows", n, table="users")`: %-style args as in stdlib logging, keyword
    arguments become the record's JSON metadata.
    """

    __slots__ = ("_emitter", "source")

    def __init__(self, emitter: TaskEmitter, source: str = DEFAULT_SOURCE) -> None:
        self._emitter = emitter
        self.source = source

    @property
    def task_id(self) -> str:
        return self._emitter.task_id

    def with_source(self, source: str) -> TaskLogger:
        """A logger for the same task whose records carry `source` (this one is unchanged)."""
        if not isinstance(source, str) or not source.strip():
            raise ValueError(f"source must be a non-empty name, not {source!r}")
        return TaskLogger(self._emitter, source.strip())

    def debug(self, msg: object, /, *args: object, **metadata: Any) -> None:
        if self._emitter.min_level <= 10:
            self._emitter.emit("DEBUG", self.source, msg, args, _exc(metadata) if metadata else None)

    def info(self, msg: object, /, *args: object, **metadata: Any) -> None:
        if self._emitter.min_level <= 20:
            self._emitter.emit("INFO", self.source, msg, args, _exc(metadata) if metadata else None)

    def warning(self, msg: object, /, *args: object, **metadata: Any) -> None:
        if self._emitter.min_level <= 30:
            self._emitter.emit("WARNING", self.source, msg, args, _exc(metadata) if metadata else None)

    warn = warning

    def error(self, msg: object, /, *args: object, **metadata: Any) -> None:
        self._emitter.emit("ERROR", self.source, msg, args, _exc(metadata) if metadata else None)

    critical = error

    def exception(self, msg: object, /, *args: object, **metadata: Any) -> None:
        """An ERROR record with the exception being handled (type, text, traceback) in its metadata."""
        metadata.setdefault("exc_info", True)
        self.error(msg, *args, **metadata)

    def log(self, level: object, msg: object, /, *args: object, **metadata: Any) -> None:
        name = parse_level(level).name
        getattr(self, name.lower())(msg, *args, **metadata)

    def is_enabled_for(self, level: object) -> bool:
        return parse_level(level) >= self._emitter.min_level

    isEnabledFor = is_enabled_for  # stdlib spelling, for code written against logging.Logger

    def __repr__(self) -> str:
        return f"<TaskLogger task={self.task_id} source={self.source!r}>"


def _exc(metadata: dict[str, Any]) -> dict[str, Any]:
    """Turn a stdlib-style exc_info=... argument into exception fields of the metadata."""
    if "exc_info" in metadata:
        exc_info = metadata.pop("exc_info")
        if exc_info:
            if isinstance(exc_info, BaseException):
                exc = exc_info
            elif isinstance(exc_info, tuple):
                exc = exc_info[1]
            else:
                exc = sys.exc_info()[1]
            if exc is not None:
                metadata.update(exception_fields(exc))
    return metadata


def exception_fields(exc: BaseException) -> dict[str, str]:
    return {
        "exc_type": type(exc).__qualname__,
        "exc_message": str(exc),
        "traceback": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)),
    }
