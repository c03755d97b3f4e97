"""POST ingest: the records of a task that runs in a kernel, as an Arrow IPC stream with its task rows in
the schema's metadata, each row checked field by field before the store sees it."""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa
from jupyter_server.auth.decorator import authorized
from tornado import web

from ..levels import LEVEL_NAMES
from ..statuses import STATUSES
from ..store.store import LOG_ARROW_SCHEMA, arrow_to_records
from ..wire import task_row_from_wire
from .rest import TASK_ID_PATTERN, BaseHandler, strict_json
from .users import request_username

TASK_COLUMNS = {"id", "plugin", "params", "status", "created_at", "started_at", "finished_at", "error",
                "progress", "progress_message", "log_level", "record_count", "username"}


class IngestHandler(BaseHandler):
    """Records of a task that runs in a kernel: an Arrow IPC stream, task rows in its schema metadata."""

    @web.authenticated
    @authorized("write")
    async def post(self) -> None:
        body = self.check_body_size()
        try:
            reader = pa.ipc.open_stream(body)
            table = reader.read_all()
            meta = reader.schema.metadata or {}
            rows = strict_json(meta.get(b"nbtasklog.tasks", b"[]"))
        except (pa.ArrowInvalid, ValueError) as error:
            raise web.HTTPError(400, f"body must be an Arrow IPC stream of log records: {error}") from None
        if not isinstance(rows, list):
            raise web.HTTPError(400, "the task rows must be a JSON list")
        # Who started a kernel's task is whom the server knows its requests as, not what the kernel says.
        username = request_username(self)
        task_rows = [dict(_task_row(row), username=username) for row in rows]
        try:
            table = table.select(list(LOG_ARROW_SCHEMA.names)).cast(LOG_ARROW_SCHEMA)
        except (KeyError, pa.ArrowInvalid, pa.ArrowNotImplementedError, IndexError) as error:
            raise web.HTTPError(400, f"record batch has the wrong columns: {error}") from None
        empty = [name for name in LOG_ARROW_SCHEMA.names if name != "metadata" and table.column(name).null_count]
        if empty:  # the database refuses a record without one of these
            raise web.HTTPError(400, f"records need a value in every column but metadata: {', '.join(empty)} has nulls")
        records = arrow_to_records(table)
        self.send(await self.call(self.engine.ingest, task_rows, records))


def _task_row(row: Any) -> dict[str, Any]:
    """A task row of an ingest batch, checked field by field: one the database refuses (an id wider
    than its column, params that are not JSON) would hold up every later write of the server."""
    if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not isinstance(row.get("plugin"), str):
        raise web.HTTPError(400, "each task row needs an id and a plugin")
    if not re.fullmatch(TASK_ID_PATTERN, row["id"]):
        raise web.HTTPError(400, f"task id {row['id'][:80]!r} must be 1 to 64 letters, digits, '_' or '-'")
    unknown = set(row) - TASK_COLUMNS
    if unknown:
        raise web.HTTPError(400, f"unknown task field(s): {', '.join(sorted(unknown))}")
    if row.get("status") not in STATUSES:
        raise web.HTTPError(400, f"task status must be one of {', '.join(sorted(STATUSES))}")
    for key in ("error", "progress_message", "username"):
        if not isinstance(row.get(key), (str, type(None))):
            raise web.HTTPError(400, f"{key} must be text or null")
    if row.get("log_level") not in (None, *LEVEL_NAMES):
        raise web.HTTPError(400, f"log_level must be one of {', '.join(LEVEL_NAMES)} or null")
    for key, kinds in (("progress", (int, float)), ("record_count", (int,))):
        value = row.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds) or not 0 <= value < 2**63):
            raise web.HTTPError(400, f"{key} must be a number (at least 0) or null")
    if row.get("progress") is not None and row["progress"] > 1:
        raise web.HTTPError(400, "progress must be between 0 and 1")
    try:
        out = task_row_from_wire(row)
    except ValueError as error:
        raise web.HTTPError(400, str(error)) from None
    if out.get("created_at") is None:
        raise web.HTTPError(400, "each task row needs created_at")
    params = out.get("params")
    if isinstance(params, str):
        try:
            params = strict_json(params)
        except ValueError:
            raise web.HTTPError(400, "params must be a JSON object") from None
    if params is not None:
        if not isinstance(params, dict):
            raise web.HTTPError(400, "params must be a JSON object")
        out["params"] = json.dumps(params, ensure_ascii=False)
    return out
