"""The REST handlers of plugins, tasks and their logs: list and start tasks, read, cancel, delete and
clean them up, and a task's log as a page of records, its stats, or a streamed export."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..engine import parse_duration
from ..statuses import STATUSES
from .export import EXPORT_WRITERS, MEDIA_TYPES, log_pages
from .rest import DEFAULT_LOG_LIMIT, BaseHandler, always_allowed, check_level_names
from .users import OTHERS, may_others, request_username

# POST cleanup's older_than, as openapi.json has it: checked here, since parse_duration also reads " 30D ".
DURATION_PATTERN = r"[0-9]+(\.[0-9]+)?[smhdw]"
OLDEST_AGE = timedelta(days=365 * 1000)  # a longer older_than (or one no timedelta holds): older than anything stored


class PluginsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.send({"plugins": await self.call(self.engine.registry.describe)})


class TasksHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        unknown = {a for a in self.request.arguments if not always_allowed(a)} - {"status", "plugin", "user", "limit", "before"}
        if unknown:  # a misspelt filter must not silently list every task
            raise web.HTTPError(400, f"unknown query parameter {sorted(unknown)[0]!r}: use status, plugin, user, limit, before")
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
        me = request_username(self)
        user = self.query_value("user") or None
        others_visible = await may_others(self, "read")
        if not others_visible:
            if user is not None and user != me:
                raise web.HTTPError(403, f"listing other users' tasks needs read permission on {OTHERS}")
            user = me
        page = await self.call(self.engine.task_page, statuses, plugin, limit, before, user)
        self.send(dict(page, user=me, others_visible=others_visible))

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
        check_level_names(body, "log_level", nullable=True)

        username = request_username(self)

        def start() -> dict[str, Any]:
            return self.engine.run_task(plugin, body.get("params"), log_level=body.get("log_level"),
                                        username=username).info()

        self.send(await self.call(start), status=201)


class TaskHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, task_id: str) -> None:
        await self.check_task(task_id)
        self.send(await self.call(self.engine.task_info, task_id))

    @web.authenticated
    @authorized
    async def delete(self, task_id: str) -> None:
        await self.check_task(task_id, "write")
        await self.call(self.engine.delete_task, task_id)
        self.set_status(204)
        self.finish()


class CancelHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def post(self, task_id: str) -> None:
        await self.check_task(task_id, "write")
        cancelled = await self.call(self.engine.cancel, task_id)
        self.send({"cancelled": cancelled, "task": await self.call(self.engine.task_info, task_id)})


class CleanupHandler(BaseHandler):
    @web.authenticated
    @authorized("write")
    async def post(self) -> None:
        body = self.body_json()
        unknown = set(body) - {"older_than", "user"}
        if unknown:
            raise web.HTTPError(400, f"unknown field(s) {', '.join(sorted(unknown))}: use older_than, user")
        older_than = body.get("older_than")
        user = body.get("user")
        if "user" in body and (not isinstance(user, str) or not user):
            raise web.HTTPError(400, "user must be a user's name (text), or left out for every user's")
        if not await may_others(self, "write"):
            me = request_username(self)
            if user is not None and user != me:
                raise web.HTTPError(403, f"cleaning up other users' tasks needs write permission on {OTHERS}")
            user = me
        if not isinstance(older_than, str) or not re.fullmatch(DURATION_PATTERN, older_than):
            raise web.HTTPError(400, f'give older_than as a duration, a number and a unit of s, m, h, d or w: {{"older_than": "30d"}}, not {older_than!r}'[:300])
        try:
            age = min(parse_duration(older_than), OLDEST_AGE)
        except OverflowError:  # more than a timedelta holds: older than anything stored
            age = OLDEST_AGE
        self.send({"deleted": await self.call(self.engine.cleanup, age, user)})


class LogsHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self, task_id: str) -> None:
        flt = self.log_filter()
        await self.check_task(task_id)
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
        await self.check_task(task_id)
        self.send(await self.call(self.engine.stats, task_id))


class ExportHandler(BaseHandler):
    """The filtered log as a download, one page at a time: never the whole log in memory."""

    @web.authenticated
    @authorized
    async def get(self, task_id: str) -> None:
        fmt = self.query_value("format") or "jsonl"
        if fmt not in MEDIA_TYPES:
            raise web.HTTPError(400, f"format must be one of {', '.join(MEDIA_TYPES)}, not {fmt!r}")
        flt = self.log_filter(default_limit=None, extra={"format"})
        await self.check_task(task_id)
        await self.call(self.engine.task_info, task_id)  # 404 before any byte is sent
        self.set_header("Content-Type", MEDIA_TYPES[fmt])
        self.set_header("Content-Disposition", f'attachment; filename="task-{task_id}.{fmt}"')
        writer = EXPORT_WRITERS[fmt]()
        pages = log_pages(lambda page: self.engine.logs(task_id, page), flt)
        # Each page is read off the event loop, and its bytes go out before the next one is read.
        while (records := await self.call(next, pages, None)) is not None:
            chunk = writer.page(records)
            if chunk:
                self.write(chunk)
                await self.flush()
        end = writer.close()
        if end:
            self.write(end)
        self.finish(set_content_type=MEDIA_TYPES[fmt])  # APIHandler.finish would set JSON when nothing was flushed
