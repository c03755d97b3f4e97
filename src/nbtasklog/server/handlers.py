"""REST handlers under {base_url}/nbtasklog/api/: thin, authenticated and authorized, errors mapped in one place."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from sqlalchemy.exc import DBAPIError, OperationalError
from tornado import web

from ..engine import PAGE, TaskActiveError, UnknownTaskError, parse_duration
from ..filter import FilterError, LogFilter, from_params
from ..levels import LEVEL_NAMES
from ..plugins import UnknownPluginError
from ..record import LogRecord
from ..statuses import STATUSES
from ..store.store import (
    LOG_ARROW_SCHEMA,
    SQL_CONCURRENCY,
    SQLError,
    arrow_to_records,
    records_to_arrow,
    sql_json,
    sql_rows,
)
from ..wire import dumps, task_row_from_wire
from .app import Services

API = "nbtasklog/api"
TASK_ID_PATTERN = "[A-Za-z0-9_-]{1,64}"  # openapi.json's task_id pattern is this one, anchored (a test keeps them equal)
TASK_ID = rf"(?P<task_id>{TASK_ID_PATTERN})"
# POST cleanup's older_than, as openapi.json has it: checked here, since parse_duration also reads " 30D ".
DURATION_PATTERN = r"[0-9]+(\.[0-9]+)?[smhdw]"
OLDEST_AGE = timedelta(days=365 * 1000)  # a longer older_than (or one no timedelta holds): older than anything stored
HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
DEFAULT_LOG_LIMIT = 1000
ALWAYS_ALLOWED = {"token", "_xsrf"}


def _always_allowed(name: str) -> bool:
    """Auth parameters, and the bare timestamp JupyterLab's ServerConnection adds to GETs against caches."""
    return name in ALWAYS_ALLOWED or name.isdigit()
TASK_COLUMNS = {"id", "plugin", "params", "status", "created_at", "started_at", "finished_at", "error",
                "progress", "progress_message", "log_level", "record_count"}


def allowed_methods(handler: type[web.RequestHandler]) -> list[str]:
    """The methods a handler class answers (tornado's default for the others is 405), for `Allow`."""
    return [m for m in HTTP_METHODS if getattr(handler, m.lower()) is not getattr(web.RequestHandler, m.lower())]


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(text: str | bytes) -> Any:
    """json.loads without NaN and Infinity, which JSON does not have: PostgreSQL's JSONB refuses them, and
    written back into an answer they make it invalid JSON for every client."""
    return json.loads(text, parse_constant=_refuse_constant)


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
    return 500, "internal error in nbtasklog (see the server log)"


def _check_level_names(body: dict[str, Any], *names: str, nullable: bool = False) -> None:
    """Levels in a JSON body are names, as openapi.json has them (parse_level also reads stdlib numbers)."""
    for name in names:
        if name in body and not isinstance(body[name], str) and not (nullable and body[name] is None):
            raise web.HTTPError(400, f"{name} must be a level name: DEBUG, INFO, WARNING or ERROR")


def filter_from_query(arguments: dict[str, list[bytes]], default_limit: int | None, extra: set[str] = frozenset()) -> LogFilter:
    """A LogFilter from a query string (filter.from_params: level, source, search, meta.KEY, has, …);
    auth parameters and the handler's own `extra` names are left out."""
    params = {name: [v.decode("utf-8", "replace") for v in raw] for name, raw in arguments.items()
              if not _always_allowed(name) and name not in extra}
    return from_params(params, default_limit)


class BaseHandler(APIHandler):
    auth_resource = "nbtasklog"

    @property
    def services(self) -> Services:
        return self.settings["nbtasklog"]

    @property
    def engine(self) -> Any:
        return self.services.engine

    async def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run blocking engine work off the event loop; domain errors become 4xx/503 answers."""
        try:
            return await self.services.run(func, *args, **kwargs)
        except Exception as error:
            status, message = error_status(error)
            if status >= 500:
                self.log.error("nbtasklog: %s %s failed: %r", self.request.method, self.request.path, error)
            raise web.HTTPError(status, message) from None

    def query_value(self, name: str) -> str:
        """The last value of a query parameter as sent, "" when absent: an empty value is the parameter
        left out, as openapi.json says. (get_argument would strip it and blank out control characters,
        so that a value the document refuses, such as a lone control character, would pass as empty.)"""
        values = self.request.arguments.get(name)
        return self.decode_argument(values[-1], name) if values else ""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:  # RFC 9110: a 405 names the methods the path has
            self.set_header("Allow", ", ".join(allowed_methods(type(self))))
        super().write_error(status_code, **kwargs)

    def body_json(self) -> dict[str, Any]:
        body = self.request.body
        if len(body) > self.services.max_body_bytes:
            raise web.HTTPError(413, f"request body over {self.services.max_body_bytes} bytes")
        try:
            value = strict_json(body or b"{}")
        except (ValueError, UnicodeDecodeError) as error:
            raise web.HTTPError(400, f"request body is not valid JSON: {error}") from None
        if not isinstance(value, dict):
            raise web.HTTPError(400, "request body must be a JSON object")
        return value

    def send(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(dumps(value))

    def log_filter(self, default_limit: int | None = DEFAULT_LOG_LIMIT, extra: set[str] = frozenset()) -> LogFilter:
        try:
            return filter_from_query(self.request.arguments, default_limit, extra)
        except FilterError as error:
            raise web.HTTPError(400, str(error)) from None


class PluginsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.send({"plugins": await self.call(self.engine.registry.describe)})


class TasksHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        unknown = {a for a in self.request.arguments if not _always_allowed(a)} - {"status", "plugin", "limit", "before"}
        if unknown:  # a misspelt filter must not silently list every task
            raise web.HTTPError(400, f"unknown query parameter {sorted(unknown)[0]!r}: use status, plugin, limit, before")
        status = self.query_value("status")
        statuses = status.upper().split(",") if status else None
        unknown = [s for s in statuses or () if s not in STATUSES]
        if unknown:
            raise web.HTTPError(400, f"unknown status {unknown[0][:50]!r}: give a comma list of {', '.join(sorted(STATUSES))}")
        limit_text = self.query_value("limit") or "100"
        if not (limit_text.isascii() and limit_text.isdigit() and 1 <= int(limit_text) <= 1000):
            raise web.HTTPError(400, "limit must be a whole number between 1 and 1000")
        limit = int(limit_text)
        plugin = self.query_value("plugin") or None
        before = self.query_value("before") or None
        self.send(await self.call(self.engine.task_page, statuses, plugin, limit, before))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body_json()
        plugin = body.get("plugin")
        if not isinstance(plugin, str) or not plugin:
            raise web.HTTPError(400, "give the plugin to run: {\"plugin\": NAME, \"params\": {...}}")
        unknown = set(body) - {"plugin", "params", "log_level"}
        if unknown:
            raise web.HTTPError(400, f"unknown field(s) {', '.join(sorted(unknown))}: use plugin, params, log_level")
        _check_level_names(body, "log_level", nullable=True)

        def start() -> dict[str, Any]:
            return self.engine.run_task(plugin, body.get("params"), log_level=body.get("log_level")).info()

        self.send(await self.call(start), status=201)


class TaskHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, task_id: str) -> None:
        self.send(await self.call(self.engine.task_info, task_id))

    @web.authenticated
    @authorized
    async def delete(self, task_id: str) -> None:
        await self.call(self.engine.delete_task, task_id)
        self.set_status(204)
        self.finish()


class CancelHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def post(self, task_id: str) -> None:
        cancelled = await self.call(self.engine.cancel, task_id)
        self.send({"cancelled": cancelled, "task": await self.call(self.engine.task_info, task_id)})


class LogsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, task_id: str) -> None:
        flt = self.log_filter()
        records = await self.call(self.engine.logs, task_id, flt)
        limit = flt.limit or DEFAULT_LOG_LIMIT
        self.send({
            "task_id": task_id,
            "records": [r.to_dict() for r in records],
            "cursor": records[-1].seq if records else None,
            "has_more": len(records) == limit,
        })


class StatsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, task_id: str) -> None:
        self.send(await self.call(self.engine.stats, task_id))


class ExportHandler(BaseHandler):
    """The filtered log as a download, one page at a time: never the whole log in memory."""

    FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}

    @web.authenticated
    @authorized
    async def get(self, task_id: str) -> None:
        fmt = self.query_value("format") or "jsonl"
        if fmt not in self.FORMATS:
            raise web.HTTPError(400, f"format must be one of {', '.join(self.FORMATS)}, not {fmt!r}")
        flt = self.log_filter(default_limit=None, extra={"format"})
        await self.call(self.engine.task_info, task_id)  # 404 before any byte is sent
        self.set_header("Content-Type", self.FORMATS[fmt])
        self.set_header("Content-Disposition", f'attachment; filename="task-{task_id}.{fmt}"')
        page = flt.with_limit(PAGE) if flt.limit is None or flt.limit > PAGE else flt
        remaining = flt.limit
        parquet = _ParquetChunks() if fmt == "parquet" else None
        first = True
        while True:
            records = await self.call(self.engine.logs, task_id, page)
            if remaining is not None:
                records = records[:remaining]
                remaining -= len(records)
            if fmt == "jsonl":
                chunk = "".join(dumps(r.to_dict()) + "\n" for r in records)
            elif fmt == "csv":
                chunk = _csv(records, header=first)
            else:
                chunk = parquet.add(records)  # type: ignore[union-attr]
            first = False
            if chunk:
                self.write(chunk)
                await self.flush()
            if len(records) < (page.limit or 0) or remaining == 0:
                break
            page = page.next_page(records)
        if parquet is not None:
            self.write(parquet.close())
        self.finish(set_content_type=self.FORMATS[fmt])  # APIHandler.finish would set JSON when nothing was flushed


def _csv(records: list[LogRecord], header: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(["task_id", "seq", "timestamp", "level", "source", "message", "metadata"])
    for r in records:
        writer.writerow([r.task_id, r.seq, r.timestamp.isoformat(), r.level, r.source, r.message, r.metadata_json or ""])
    return out.getvalue()


class _ParquetChunks:
    """A Parquet file written one row group per page; bytes are handed out as they are produced."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._writer: pq.ParquetWriter | None = None

    def write(self, data: bytes) -> int:  # file-like sink for ParquetWriter
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data

    def add(self, records: list[LogRecord]) -> bytes:
        if self._writer is None:
            self._writer = pq.ParquetWriter(pa.PythonFile(self, mode="w"), LOG_ARROW_SCHEMA)
        if records:
            self._writer.write_table(records_to_arrow(records))
        return self.take()

    def close(self) -> bytes:
        if self._writer is None:
            self.add([])
        self._writer.close()  # type: ignore[union-attr]
        return self.take()

    # What pa.PythonFile asks of a sink.
    closed = False

    def flush(self) -> None:
        pass

    def tell(self) -> int:
        return 0

    def close_file(self) -> None:
        pass


class SettingsHandler(BaseHandler):
    auth_resource = "nbtasklog.settings"

    async def _writable(self) -> bool:
        from jupyter_server.utils import ensure_async

        return bool(await ensure_async(self.authorizer.is_authorized(self, self.current_user, "write", "nbtasklog.settings")))

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.send(dict(self.engine.settings.to_dict(), writable=await self._writable()))

    @web.authenticated
    @authorized
    async def put(self) -> None:
        if not self.request.body.strip():  # the body is required: no body is not "change nothing"
            raise web.HTTPError(400, 'send the settings to change as a JSON object, e.g. {"task_log_level": "WARNING"}')
        body = self.body_json()
        _check_level_names(body, "log_level", "task_log_level")
        enabled = body.get("belief_scope_enabled", True)
        # The boolean, or the text the settings table holds (what a kernel's RemoteStore sends).
        if not isinstance(enabled, bool) and enabled not in ("true", "false"):
            raise web.HTTPError(400, 'belief_scope_enabled must be true or false (a JSON boolean, or the text "true" or "false")')
        settings = await self.call(self.engine.update_settings, **body)
        self.send(dict(settings.to_dict(), writable=True))


class SQLHandler(BaseHandler):
    @web.authenticated
    @authorized("read")
    async def post(self) -> None:
        body = self.body_json()
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise web.HTTPError(400, 'give a query: {"query": "SELECT ..."}')
        fmt = body.get("format", "json")
        if fmt not in ("json", "arrow"):
            raise web.HTTPError(400, f"format must be json or arrow, not {fmt!r}")
        max_rows = body.get("max_rows", self.services.sql_max_rows)
        if not isinstance(max_rows, int) or isinstance(max_rows, bool):  # int() would also read true, 1.5 and "5"
            raise web.HTTPError(400, "max_rows must be a whole number")
        max_rows = max(1, min(max_rows, self.services.sql_max_rows))
        services = self.services
        # Refused at once rather than queued: a queued query would wait for others' time limits on top of its own.
        if services.sql_running >= SQL_CONCURRENCY:
            raise web.HTTPError(429, f"{SQL_CONCURRENCY} analyst queries are running already; try again when one has ended")

        def answer() -> tuple[bytes | str, bool]:
            """The query's answer, encoded off the event loop: an Arrow IPC stream or the JSON text."""
            table = self.engine.sql(query, arrow=True, max_rows=max_rows + 1, timeout=services.sql_timeout)
            truncated = table.num_rows > max_rows
            table = table.slice(0, max_rows)
            if fmt == "arrow":
                sink = pa.BufferOutputStream()
                with pa.ipc.new_stream(sink, table.schema) as writer:
                    writer.write_table(table)
                return sink.getvalue().to_pybytes(), truncated
            # Built by sql_json, not json.dumps: rows stay lists (repeated column names keep their columns), NaN
            # and the infinities become strings (valid JSON), numbers keep every digit.
            columns = dumps([{"name": f.name, "type": str(f.type)} for f in table.schema])
            rows = ", ".join("[" + ", ".join(sql_json(value) for value in row) + "]" for row in sql_rows(table))
            return f'{{"columns": {columns}, "rows": [{rows}], "truncated": {"true" if truncated else "false"}}}', truncated

        services.sql_running += 1
        try:
            content, truncated = await services.run_sql(answer)
        except Exception as error:
            status, message = error_status(error)
            if status >= 500:
                self.log.error("nbtasklog: %s %s failed: %r", self.request.method, self.request.path, error)
            raise web.HTTPError(status, message) from None
        finally:
            services.sql_running -= 1
        if fmt == "arrow":
            self.set_header("X-Nbtasklog-Truncated", "true" if truncated else "false")
            # APIHandler.finish sets Content-Type itself (JSON unless told otherwise).
            self.finish(content, set_content_type="application/vnd.apache.arrow.stream")
        else:
            self.set_header("Content-Type", "application/json")
            self.finish(content)


class HealthHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        from .. import __version__

        health = self.engine.health().to_dict()
        health["database"] = self.engine.store.url.render_as_string(hide_password=True)
        health["version"] = __version__
        self.send(health)


class IngestHandler(BaseHandler):
    """Records of a task that runs in a kernel: an Arrow IPC stream, task rows in its schema metadata."""

    @web.authenticated
    @authorized("write")
    async def post(self) -> None:
        body = self.request.body
        if len(body) > self.services.max_body_bytes:
            raise web.HTTPError(413, f"request body over {self.services.max_body_bytes} bytes")
        try:
            reader = pa.ipc.open_stream(body)
            table = reader.read_all()
            meta = reader.schema.metadata or {}
            rows = strict_json(meta.get(b"nbtasklog.tasks", b"[]"))
        except (pa.ArrowInvalid, ValueError) as error:
            raise web.HTTPError(400, f"body must be an Arrow IPC stream of log records: {error}") from None
        if not isinstance(rows, list):
            raise web.HTTPError(400, "the task rows must be a JSON list")
        task_rows = [_task_row(row) for row in rows]
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
    for key in ("error", "progress_message"):
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


class CleanupHandler(BaseHandler):
    @web.authenticated
    @authorized("write")
    async def post(self) -> None:
        older_than = self.body_json().get("older_than")
        if not isinstance(older_than, str) or not re.fullmatch(DURATION_PATTERN, older_than):
            raise web.HTTPError(400, f'give older_than as a duration, a number and a unit of s, m, h, d or w: {{"older_than": "30d"}}, not {older_than!r}'[:300])
        try:
            age = min(parse_duration(older_than), OLDEST_AGE)
        except OverflowError:  # more than a timedelta holds: older than anything stored
            age = OLDEST_AGE
        self.send({"deleted": await self.call(self.engine.cleanup, age)})


class UnknownPathHandler(BaseHandler):
    """Any other path under the API (an id outside the task id pattern included): a JSON 404, where
    the server would answer its HTML page, which an API client cannot read."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        raise web.HTTPError(404, f"no such path in the nbtasklog API: {self.request.path[:200]}; openapi.json lists the paths")

    post = put = delete = patch = get


class OpenAPIHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish((Path(__file__).parent / "openapi.json").read_text())


def routes() -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    from .stream import LogStreamHandler, TaskListStreamHandler

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
