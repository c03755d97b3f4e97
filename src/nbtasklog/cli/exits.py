"""The exit codes, `CLIError`, and the mapping of what the library raises to an exit code and one line."""

from __future__ import annotations

import os

from ..errors import TaskActiveError, UnknownTaskError
from ..filter import FilterError
from ..plugins import UnknownPluginError
from ..remote import ServerError
from ..store.store import SQLError
from .output import note

OK, TASK_FAILED, USAGE, UNKNOWN_TASK, DATABASE, INTERRUPTED, BROKEN_PIPE = 0, 1, 2, 3, 4, 130, 141


class CLIError(Exception):
    """A problem to report in one line, with the exit code it stands for."""

    def __init__(self, message: str, code: int = USAGE) -> None:
        super().__init__(message)
        self.code = code


def report_unexpected(error: Exception) -> int:
    """Map the errors the library raises to exit codes; anything else is an internal error (exit 1)."""
    if isinstance(error, UnknownTaskError):
        note(f"nbtasklog: error: {error}")
        return UNKNOWN_TASK
    if isinstance(error, (FilterError, UnknownPluginError, SQLError, TaskActiveError)):
        note(f"nbtasklog: error: {error}")
        return USAGE
    if isinstance(error, ServerError):
        note(f"nbtasklog: error: the server answered {error.status}: {error}")
        return USAGE if error.status == 400 else UNKNOWN_TASK if error.status == 404 else DATABASE
    if isinstance(error, (ConnectionError, PermissionError)) or _is_database_error(error):
        note(f"nbtasklog: error: database unavailable: {one_line(error)}")
        return DATABASE
    if os.environ.get("NBTASKLOG_DEBUG"):
        import traceback

        traceback.print_exception(error)
    note(f"nbtasklog: error: unexpected {type(error).__name__}: {one_line(error)} (NBTASKLOG_DEBUG=1 shows the traceback)")
    return TASK_FAILED


def one_line(error: BaseException) -> str:
    """An error's message without SQLAlchemy's wrapping and 'Background on this error' lines."""
    original = getattr(error, "orig", None)
    text = str(original if original is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _is_database_error(error: Exception) -> bool:
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(error, SQLAlchemyError):
        return True
    try:
        import duckdb
    except ImportError:
        return False
    return isinstance(error, duckdb.Error)
