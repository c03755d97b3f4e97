"""Attribute what a task writes through stdlib logging and print to that task (found through the context variable).

Installed once per process. Outside tasks nothing changes: stdout/stderr writes go where they went,
and a warning with no other handler to go to is printed the way Python's last-resort handler does.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from typing import Any

from .context import current_emitter
from .levels import from_stdlib
from .logger import MAX_SOURCE_LENGTH, TaskEmitter, exception_fields
from .record import safe_str, valid_text

# Attributes every stdlib LogRecord has; anything else came from `extra=` and becomes metadata.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_LEVEL_NAMES = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR"}
_install_lock = threading.Lock()


class TaskLogHandler(logging.Handler):
    """A root handler: a record logged inside a task becomes a record of that task, source = logger name."""

    def emit(self, record: logging.LogRecord) -> None:
        emitter = current_emitter.get()
        if emitter is None:
            self._outside_task(record)
            return
        level = int(from_stdlib(record.levelno))
        if level < emitter.min_level:
            return
        name = _LEVEL_NAMES[level]
        try:
            metadata: dict[str, Any] = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS}
            if record.exc_info and record.exc_info[1] is not None:
                metadata.update(exception_fields(record.exc_info[1]))
            if record.stack_info:
                metadata["stack"] = record.stack_info
            # The emitter formats msg % args itself, so that a bad format or an argument whose str
            # raises is recorded the way a TaskLogger call's is (format_error, format_args).
            message = record.msg if isinstance(record.msg, str) else safe_str(record.msg)
            emitter.emit(name, _source_of(record.name), message, record.args or (), metadata)
        except Exception as error:  # never raise into the code that logged (stdlib's own rule)
            emitter.emit(name, _source_of(record.name), "a stdlib log call could not be recorded", (),
                         {"error": f"{type(error).__name__}: {safe_str(error)}"})

    def _outside_task(self, record: logging.LogRecord) -> None:
        # Our handler on the root hides Python's last-resort handler; stand in for it when
        # nothing else would have shown this record.
        if record.levelno < logging.lastResort.level or _has_other_handler(record.name, self):
            return
        logging.lastResort.handle(record)


_sources: dict[str, str] = {}  # logger name -> source: a process has a few hundred loggers at most


def _source_of(name: str) -> str:
    """A logger's name as a record's source: valid text, without the comma filters separate sources by."""
    source = _sources.get(name)
    if source is None:
        if len(_sources) > 10_000:  # loggers made per object: do not keep them all
            _sources.clear()
        source = _sources[name] = valid_text(str(name) or "root").replace(",", "_")[:MAX_SOURCE_LENGTH]
    return source


def _has_other_handler(name: str, ours: logging.Handler) -> bool:
    logger: logging.Logger | None = logging.getLogger(name)
    while logger is not None:
        if any(handler is not ours for handler in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent  # type: ignore[assignment]
    return False


class TaskStream(io.TextIOBase):
    """Stands in for sys.stdout / sys.stderr: inside a task each line becomes a record; outside, it passes through."""

    def __init__(self, original: Any, source: str, level: str) -> None:
        self.original = original
        self.source = source
        self.level = level
        self._levelno = int(from_stdlib(logging.getLevelName(level)))
        self._partial: dict[TaskEmitter, str] = {}
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        emitter = current_emitter.get()
        if emitter is None:
            return self.original.write(text)
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            pending = self._partial.pop(emitter, "") + text
            *lines, rest = pending.split("\n")
            if rest:
                self._partial[emitter] = rest
        for line in lines:
            self._emit(emitter, line)
        return len(text)

    def _emit(self, emitter: TaskEmitter, line: str) -> None:
        line = line.rpartition("\r")[2]  # a progress bar redraws with \r: keep what a terminal shows
        if line and self._levelno >= emitter.min_level:
            emitter.emit(self.level, self.source, line, (), None)

    def finish(self, emitter: TaskEmitter) -> None:
        """Emit a task's last unterminated line (at the end of the task)."""
        with self._lock:
            rest = self._partial.pop(emitter, "")
        if rest:
            self._emit(emitter, rest)

    def flush(self) -> None:
        self.original.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        # Inside a task, output goes to its log (not a terminal); outside, ask the real stream.
        return current_emitter.get() is None and self.original.isatty()

    def fileno(self) -> int:
        return self.original.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


_handler = TaskLogHandler()
_root_level_set: int | None = None


def install(task_log_level: int) -> None:
    """Put the handler on the root logger and the streams on sys.stdout/stderr (again, if replaced since)."""
    global _root_level_set
    with _install_lock:
        root = logging.getLogger()
        if _handler not in root.handlers:
            root.addHandler(_handler)
        # With logging unconfigured the root logger stops INFO at WARNING before any handler sees
        # it; lower it to the task level so a plugin's logging.info() reaches its task. A level the
        # user set themselves is left alone.
        # (Never above WARNING, so that warnings outside tasks still show.)
        unconfigured = _root_level_set is None and root.level == logging.WARNING and root.handlers == [_handler]
        if unconfigured or root.level == _root_level_set:
            _root_level_set = min(task_log_level, logging.WARNING)
            root.setLevel(_root_level_set)
        if not isinstance(sys.stdout, TaskStream):
            sys.stdout = TaskStream(sys.stdout, "stdout", "INFO")
        if not isinstance(sys.stderr, TaskStream):
            sys.stderr = TaskStream(sys.stderr, "stderr", "WARNING")


def finish_streams(emitter: TaskEmitter) -> None:
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, TaskStream):
            stream.finish(emitter)
