"""The one mapping of domain errors to HTTP statuses and WebSocket close codes, and the methods a
handler answers (the `Allow` of a 405)."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError
from tornado import web

from ..errors import TaskActiveError, UnknownTaskError
from ..filter import FilterError
from ..plugins import UnknownPluginError
from ..store.store import SQLError

HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
INTERNAL_ERROR = "internal error in nbtasklog (see the server log)"


def error_status(error: BaseException) -> tuple[int, str]:
    """The one mapping from domain errors to HTTP answers (REST and WebSocket close codes share it)."""
    if isinstance(error, web.HTTPError):
        return error.status_code, error.log_message or error.reason or "error"
    if isinstance(error, (UnknownTaskError, UnknownPluginError)):
        return 404, str(error)
    if isinstance(error, TaskActiveError):
        return 409, str(error)
    if isinstance(error, (FilterError, SQLError, ValueError, TypeError)):
        return 400, str(error)
    if isinstance(error, (OperationalError, DBAPIError, OSError, RuntimeError)):
        return 503, f"log store unavailable: {str(error).splitlines()[0][:300]}"
    return 500, INTERNAL_ERROR


def close_code(status: int) -> int:
    """The WebSocket close code of an HTTP status: 4000 + status (4404, 4503), 4500 past the 4xxx range."""
    return 4000 + status if status < 1000 else 4500


def allowed_methods(handler: type[web.RequestHandler]) -> list[str]:
    """The methods a handler class answers (tornado's default for the others is 405), for `Allow`."""
    return [m for m in HTTP_METHODS if getattr(handler, m.lower()) is not getattr(web.RequestHandler, m.lower())]
