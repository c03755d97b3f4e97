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

from .levels import LEVEL_VALUES, Level, parse_level
from .record import (
    LogRecord,
    cut_metadata,
    metadata_to_json,
    new_tuple,
    safe_repr,
    safe_str,
    valid_text,
)
from .redact import Redactor

DEFAULT_SOURCE = "plugin"
SYSTEM_SOURCE = "system"
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024


# What TaskEmitter.emit reads on every call and never changes, in the order it unpacks them: the task
# id, the sink, the character limit and the scan limit of a message (see emit), the redactor's text,
# metadata and fields_clean functions (None without a redactor), and the acquire and release of the
# emitter's lock.
_Fixed = tuple[str, Callable[[tuple[Any, ...]], None], int, int,
               Callable[[str], str] | None, Callable[[str], str] | None, Callable[[dict[str, Any]], bool] | None,
               Callable[[], bool], Callable[[], None]]


class TaskEmitter:
    """Makes the records of one task: seq numbers, timestamps, size cap, secrets redacted; hands each one
    to the sink and to the task's live readers.

    The sink gets each record as a plain tuple of the LogRecord fields (`LogRecord._make` gives the
    record back): the write buffer queues exactly that, so no LogRecord is made for it, and live
    readers, when there are any, get a LogRecord built from the same tuple.

    Changed from outside while the task runs: `min_level` (read by every TaskLogger call before it
    calls emit; settings change it), `belief_scope_enabled`, and `subscribers`, the live.Subscription
    objects offered every record, which live.LiveReaders replaces whole and never changes in place.
    """

    __slots__ = ("task_id", "min_level", "belief_scope_enabled", "subscribers", "_last_seq", "_max_bytes", "_fixed")

    def __init__(
        self,
        task_id: str,
        sink: Callable[[tuple[Any, ...]], None],
        min_level: Level = Level.INFO,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        belief_scope_enabled: bool = True,
        redactor: Redactor | None = None,
    ) -> None:
        self.task_id = task_id
        self.min_level = int(min_level)
        self.belief_scope_enabled = belief_scope_enabled
        self.subscribers: tuple[Any, ...] = ()
        self._last_seq = 0
        self._max_bytes = max_message_bytes
        lock = threading.Lock()  # seq order == order in the sink and in every live queue
        # acquire/release bound once: half the cost of `with lock` (0.07 against 0.14 µs)
        self._fixed: _Fixed = (
            task_id, sink, max_message_bytes // 4, max_message_bytes + SCAN_MARGIN,
            redactor.text if redactor is not None else None,
            redactor.metadata_json if redactor is not None else None,
            redactor.fields_clean if redactor is not None else None,
            lock.acquire, lock.release,
        )

    @property
    def last_seq(self) -> int:
        """The seq of the newest record made, 0 before the first: the task's record count."""
        return self._last_seq

    @property
    def max_message_bytes(self) -> int:
        """Longest message kept whole, in UTF-8 bytes (fixed: emit's limits are made from it)."""
        return self._max_bytes

    def emit(self, level: str, source: str, msg: Any, args: tuple[Any, ...], metadata: dict[str, Any] | None) -> None:
        """Make one record of this task and hand it on: `msg` formatted with `args` as stdlib logging
        does (from here on `msg` is the record's text), `metadata` as JSON text, the next seq and the
        time now. Never raises: bad arguments become part of the record.

        The hot path of every logging call. Its fixed values come as one tuple unpacked into locals:
        as fast as a closure's cells, where one attribute read per value cost 5% of a call. Only what
        an unusual record needs (a long message, large metadata) is read from the emitter itself.
        """
        task_id, sink, char_limit, scan_limit, redact_text, redact_metadata, fields_clean, acquire, release = self._fixed
        try:
            if args:
                msg = msg % args
            if type(msg) is not str:  # an object, or what a non-str % args gave (5 % 2 is 1)
                msg = str(msg)
            if not msg.isascii():  # O(1): only non-ASCII text can hold a lone surrogate
                msg = valid_text(msg)
            meta = metadata_to_json(metadata) if metadata else None
        except Exception as error:  # a bad format string or a __str__ that raises
            msg, meta = _unformattable(msg, args, metadata, error)
            metadata = None  # meta is not the fields' JSON any more: the redactor reads meta itself
        # char_limit is max_message_bytes // 4 (a character is 4 UTF-8 bytes at most): the cheap test before encoding
        if meta is not None and len(meta) > char_limit:
            meta = cut_metadata(meta, self._max_bytes)
            metadata = None
        # Secrets go before a record is stored or offered. Of a message longer than scan_limit only the
        # start is searched, and the last SCAN_MARGIN characters of that start are never kept (a secret
        # may cross where the search stopped): a 100 MB message costs what 1 MB does.
        if redact_text is not None:
            # Keyword fields of plain values are decided from the dict (fields_clean), the rest by the JSON.
            if meta is not None and redact_metadata is not None and (metadata is None or not fields_clean(metadata)):
                meta = redact_metadata(meta)
            if len(msg) <= scan_limit:
                msg = redact_text(msg)
            else:
                original = len(msg.encode("utf-8"))
                msg, meta = _cut(redact_text(msg[:scan_limit])[:-SCAN_MARGIN], meta, self._max_bytes, original)
        if len(msg) > char_limit:
            msg, meta = _cut(msg, meta, self._max_bytes)
        timestamp = time_ns() // 1000
        acquire()
        try:
            seq = self._last_seq = self._last_seq + 1
            row = (task_id, seq, timestamp, level, source, msg, meta)
            sink(row)
            readers = self.subscribers  # read once: a change meanwhile replaces the tuple, never edits it
            if readers:
                # tuple.__new__ directly: a NamedTuple's own __new__ is Python code (~0.3 µs here).
                record = new_tuple(LogRecord, row)
                for subscriber in readers:
                    subscriber.offer(record)
        finally:
            release()


def repair_record(record: LogRecord, max_bytes: int) -> LogRecord:
    """A record made elsewhere (a kernel, maybe of another version) as this process would have made it:
    valid text, metadata normalized (depth, size) and a message within `max_bytes`."""
    task_id, seq, timestamp, level, source, message, meta = record
    message = valid_text(message)
    source = valid_text(source).replace(",", "_")[:MAX_SOURCE_LENGTH]  # as capture names a logger's source
    if level not in LEVEL_VALUES:
        level = "INFO"
    if meta is not None:
        try:
            meta = metadata_to_json(json.loads(meta))
        except (ValueError, RecursionError):  # not JSON: keep the text as a value
            meta = metadata_to_json({"metadata_text": meta})
        if len(meta) > max_bytes // 4:
            meta = cut_metadata(meta, max_bytes)
    if len(message) > max_bytes // 4:
        message, meta = _cut(message, meta, max_bytes)
    return new_tuple(LogRecord, (task_id, seq, timestamp, level, source, message, meta))


SCAN_MARGIN = 4096  # characters: longer than any secret the patterns find but a private key block


def _cut(msg: str, meta: str | None, max_bytes: int, original: int | None = None) -> tuple[str, str | None]:
    """A message longer than max_bytes in UTF-8 (or already shortened from `original` bytes), cut with a
    marker; its original size goes into the metadata."""
    data = msg.encode("utf-8")
    if len(data) <= max_bytes and original is None:
        return msg, meta
    size = original if original is not None else len(data)
    marker = f" … [message cut: {size} bytes, limit {max_bytes}]"
    kept = data[: max(0, max_bytes - len(marker.encode()))].decode("utf-8", "ignore")
    fields = json.loads(meta) if meta is not None else {}
    fields.setdefault("message_original_bytes", size)  # cut again on its way (a kernel's): the first size counts
    return kept + marker, metadata_to_json(fields)


def _unformattable(msg: object, args: tuple, metadata: dict[str, Any] | None, error: Exception) -> tuple[str, str | None]:
    extra = dict(metadata or {})
    extra["format_error"] = f"{type(error).__name__}: {safe_str(error)}"
    if args:
        extra["format_args"] = [safe_repr(a) for a in args]
    return safe_repr(msg), metadata_to_json(extra)


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
        return TaskLogger(self._emitter, check_source(source))

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
    """Turn a stdlib-style exc_info=... argument into exception fields of the metadata.

    As in stdlib logging: an exception, an exc_info triple, or any other true value for the exception
    being handled. A tuple that is not a triple stays in the metadata as given.
    """
    if "exc_info" in metadata:
        exc_info = metadata.pop("exc_info")
        exc: BaseException | None = None
        if isinstance(exc_info, BaseException):
            exc = exc_info
        elif isinstance(exc_info, tuple):
            if len(exc_info) == 3 and isinstance(exc_info[1], BaseException):
                exc = exc_info[1]
            elif exc_info and exc_info[1:2] != (None,):
                metadata["exc_info"] = exc_info
        else:
            try:
                wanted = bool(exc_info)
            except Exception:  # an object whose __bool__ raises: keep it as a value
                metadata["exc_info"] = exc_info
                wanted = False
            if wanted:
                exc = sys.exc_info()[1]
        if exc is not None:
            metadata.update(exception_fields(exc))
    return metadata


def exception_fields(exc: BaseException) -> dict[str, str]:
    """Type, text and traceback of an exception, for a record's metadata; never raises."""
    try:
        trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception as error:  # a broken __cause__ chain, odd __notes__
        trace = f"<traceback unavailable: {type(error).__name__}>"
    return {"exc_type": type(exc).__qualname__, "exc_message": safe_str(exc), "traceback": trace}


def exception_text(exc: BaseException) -> str:
    """"Type: message", the way a task's error is shown; never raises."""
    return f"{type(exc).__name__}: {safe_str(exc)}"


MAX_SOURCE_LENGTH = 255  # the column's width: PostgreSQL refuses a longer value, and the whole batch with it


def check_source(source: object) -> str:
    """A source name as records carry it, or ValueError saying what is wrong with it."""
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"source must be a non-empty name, not {source!r}")
    name = valid_text(source.strip())
    if "," in name:
        raise ValueError(f"source {name!r} has a comma, which separates sources in filters: use another character")
    if len(name) > MAX_SOURCE_LENGTH:
        raise ValueError(f"source names are at most {MAX_SOURCE_LENGTH} characters, not {len(name)}")
    return name
