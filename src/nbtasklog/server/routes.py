"""The extension's routes: every path under {base_url}/nbtasklog/api/ and its handler, the catch-all 404 last."""

from __future__ import annotations

from typing import Any

from .admin_handlers import HealthHandler, SettingsHandler, SQLHandler
from .ingest import IngestHandler
from .rest import TASK_ID_PATTERN, OpenAPIHandler, UnknownPathHandler
from .sockets import LogStreamHandler, TaskListStreamHandler
from .task_handlers import (
    CancelHandler,
    CleanupHandler,
    ExportHandler,
    LogsHandler,
    PluginsHandler,
    StatsHandler,
    TaskHandler,
    TasksHandler,
)

API = "nbtasklog/api"
TASK_ID = rf"(?P<task_id>{TASK_ID_PATTERN})"


def routes() -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    return [
        (rf"/{API}/plugins", PluginsHandler),
        (rf"/{API}/tasks", TasksHandler),
        (rf"/{API}/tasks/stream", TaskListStreamHandler),
        (rf"/{API}/tasks/{TASK_ID}", TaskHandler),
        (rf"/{API}/tasks/{TASK_ID}/cancel", CancelHandler),
        (rf"/{API}/tasks/{TASK_ID}/logs", LogsHandler),
        (rf"/{API}/tasks/{TASK_ID}/logs/stats", StatsHandler),
        (rf"/{API}/tasks/{TASK_ID}/logs/export", ExportHandler),
        (rf"/{API}/tasks/{TASK_ID}/logs/stream", LogStreamHandler),
        (rf"/{API}/settings", SettingsHandler),
        (rf"/{API}/sql", SQLHandler),
        (rf"/{API}/health", HealthHandler),
        (rf"/{API}/ingest", IngestHandler),
        (rf"/{API}/cleanup", CleanupHandler),
        (rf"/{API}/openapi.json", OpenAPIHandler),
        (rf"/{API}/.*", UnknownPathHandler),  # last: only what no route above matches
    ]
