"""The REST handlers of the server itself: the logging settings, read-only analyst SQL (at most
SQL_CONCURRENCY queries at once, on threads of their own) and health."""

from __future__ import annotations

import pyarrow as pa
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import ensure_async
from tornado import web

from ..store.store import SQL_CONCURRENCY, sql_json, sql_rows
from ..wire import dumps
from .rest import BaseHandler, check_level_names


class SettingsHandler(BaseHandler):
    auth_resource = "nbtasklog.settings"

    async def _writable(self) -> bool:
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
        check_level_names(body, "log_level", "task_log_level")
        enabled = body.get("belief_scope_enabled", True)
        # The boolean, or the text the settings table holds (what a kernel's RemoteStore sends).
        if not isinstance(enabled, bool) and enabled not in ("true", "false"):
            raise web.HTTPError(400, 'belief_scope_enabled must be true or false (a JSON boolean, or the text "true" or "false")')
        settings = await self.call(self.engine.update_settings, **body)
        self.send(dict(settings.to_dict(), writable=True))


class SQLHandler(BaseHandler):
    auth_resource = "nbtasklog.sql"  # analyst SQL reads every user's tasks: a shared store may keep it to a few
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
            content, truncated = await self.answer_errors(services.run_sql(answer))
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
