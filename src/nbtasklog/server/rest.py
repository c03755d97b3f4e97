"""The base class of the REST handlers under {base_url}/nbtasklog/api/ (authenticated, blocking work off
the event loop, JSON bodies and answers, errors through error_status), and the API's own answers:
openapi.json, and a JSON 404 for any other path."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from ..engine import Engine
from ..filter import FilterError, LogFilter, from_params
from ..wire import dumps
from .errors import allowed_methods, error_status
from .services import Services
from .users import is_theirs, may_others, refusal, request_username

TASK_ID_PATTERN = "[A-Za-z0-9_-]{1,64}"  # openapi.json's task_id pattern is this one, anchored (a test keeps them equal)
DEFAULT_LOG_LIMIT = 1000
ALWAYS_ALLOWED = {"token", "_xsrf"}


def always_allowed(name: str) -> bool:
    """Auth parameters, and the bare timestamp JupyterLab's ServerConnection adds to GETs against caches."""
    return name in ALWAYS_ALLOWED or name.isdigit()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_json(text: str | bytes) -> Any:
    """json.loads without NaN and Infinity, which JSON does not have: PostgreSQL's JSONB refuses them, and
    written back into an answer they make it invalid JSON for every client."""
    return json.loads(text, parse_constant=_refuse_constant)


def check_level_names(body: dict[str, Any], *names: str, nullable: bool = False) -> None:
    """Levels in a JSON body are names, as openapi.json has them (parse_level also reads stdlib numbers)."""
    for name in names:
        if name in body and not isinstance(body[name], str) and not (nullable and body[name] is None):
            raise web.HTTPError(400, f"{name} must be a level name: DEBUG, INFO, WARNING or ERROR")


def filter_from_query(arguments: dict[str, list[bytes]], default_limit: int | None, extra: set[str] = frozenset()) -> LogFilter:
    """A LogFilter from a query string (filter.from_params: level, source, search, meta.KEY, has, …);
    auth parameters and the handler's own `extra` names are left out."""
    params = {name: [v.decode("utf-8", "replace") for v in raw] for name, raw in arguments.items()
              if not always_allowed(name) and name not in extra}
    return from_params(params, default_limit)


class BaseHandler(APIHandler):
    auth_resource = "nbtasklog"

    @property
    def services(self) -> Services:
        return self.settings["nbtasklog"]

    @property
    def engine(self) -> Engine:
        return self.services.engine

    async def call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run blocking engine work off the event loop; domain errors become 4xx/503 answers."""
        return await self.answer_errors(self.services.run(func, *args, **kwargs))

    async def answer_errors(self, work: Any) -> Any:
        """Await `work`; a domain error becomes its HTTP answer (logged when it is the server's fault)."""
        try:
            return await work
        except Exception as error:
            status, message = error_status(error)
            if status >= 500:
                self.log.error("nbtasklog: %s %s failed: %r", self.request.method, self.request.path, error)
            raise web.HTTPError(status, message) from None

    async def check_task(self, task_id: str, action: str = "read") -> None:
        """Refuse (403) a task another user started unless the authorizer allows `action` on other users'
        tasks; an unknown task is a 404."""
        if await may_others(self, action):
            return
        if is_theirs(await self.call(self.engine.task_info, task_id), request_username(self)):
            raise refusal(task_id, action)

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

    def check_body_size(self) -> bytes:
        body = self.request.body
        if len(body) > self.services.max_body_bytes:
            raise web.HTTPError(413, f"request body over {self.services.max_body_bytes} bytes")
        return body

    def body_json(self) -> dict[str, Any]:
        body = self.check_body_size()
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


class OpenAPIHandler(BaseHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish((Path(__file__).parent / "openapi.json").read_text())


class UnknownPathHandler(BaseHandler):
    """Any other path under the API (an id outside the task id pattern included): a JSON 404, where
    the server would answer its HTML page, which an API client cannot read."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        raise web.HTTPError(404, f"no such path in the nbtasklog API: {self.request.path[:200]}; openapi.json lists the paths")

    post = put = delete = patch = get
