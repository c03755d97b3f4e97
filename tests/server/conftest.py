"""Fixtures for the server-extension tests: a jupyter server with nbtasklog enabled, test plugins, helpers.

pytest-jupyter's fixtures are imported into this conftest rather than named in `pytest_plugins`:
pytest refuses `pytest_plugins` in a conftest below the top level (tests/server is not loaded as an
initial conftest when the whole suite runs), and an import keeps them to the tests in this folder.
The server runs in the test process, so plugins registered here are the server's plugins.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import tornado.httpclient
import tornado.websocket
from pytest_jupyter.jupyter_server import *  # noqa: F403  (fixtures and the async-test hooks)
from tornado.websocket import WebSocketClientConnection

import nbtasklog

TIMEOUT = 15.0  # bound for every wait; nothing here should come near it

# ---- test plugins (registered in the server process, which is this one) --------------------------
GATES: dict[str, threading.Event] = {}


def _gate(params: dict[str, Any]) -> threading.Event | None:
    name = params.get("gate")
    return GATES[name] if name else None


@nbtasklog.register(name="t_sources")
def t_sources(params: dict[str, Any], context: Any) -> int:
    """Logs `n` records alternating between sources plugin (odd i) and superset_api (even i), with dashboard_id=i.

    Record i is a WARNING when i is a multiple of 7, else INFO; its seq is i + 1 ("Task started" is 1).

    With `gate` and `hold`, it waits for the gate before record number `hold` + 1.
    """
    n = int(params.get("n", 10))
    hold = int(params.get("hold", 0))
    gate = _gate(params)
    api = context.logger.with_source("superset_api")
    for i in range(1, n + 1):
        if gate is not None and i == hold + 1:
            while not gate.wait(0.01):
                context.check_cancelled()
        logger = context.logger if i % 2 else api
        log = logger.warning if i % 7 == 0 else logger.info
        log("record %d of %d", i, n, dashboard_id=i, nested={"k": f"v{i % 3}"})
        if i % max(1, n // 10) == 0:
            context.progress(i / n, f"{i}/{n}")
    return n


@nbtasklog.register(name="t_wait")
def t_wait(params: dict[str, Any], context: Any) -> str:
    """Logs one record, then waits until its gate is set (or it is cancelled), then logs once more."""
    gate = _gate(params)
    context.logger.info("waiting")
    while not gate.wait(0.01):  # type: ignore[union-attr]
        context.check_cancelled()
    context.logger.info("released")
    return "released"


@nbtasklog.register(name="t_fail")
def t_fail(params: dict[str, Any], context: Any) -> None:
    """Logs a warning, then fails."""
    context.logger.warning("about to fail", code=7)
    raise RuntimeError("t_fail failed on purpose")


@nbtasklog.register(name="t_levels")
def t_levels(params: dict[str, Any], context: Any) -> None:
    """One record per level from plugin and one ERROR from db, with searchable words and metadata."""
    log = context.logger
    log.debug("debug apple", dashboard_id=1)
    log.info("info banana", dashboard_id=2, nested={"k": "x"})
    log.warning("warning cherry", dashboard_id=3)
    log.error("error durian", dashboard_id=12)
    log.with_source("db").error("db error elderberry", database_uuid="u-1")


@nbtasklog.register(name="t_steps")
def t_steps(params: dict[str, Any], context: Any) -> int:
    """For each gate in `gates`: wait for it, log "step K", report progress K/len(gates) with a message."""
    gates = [GATES[name] for name in params["gates"]]
    for k, event in enumerate(gates, 1):
        while not event.wait(0.01):
            context.check_cancelled()
        context.logger.info("step %d", k, step=k)
        context.progress(k / len(gates), f"step {k} of {len(gates)}")
    return len(gates)


class TParams(nbtasklog.Plugin):
    """A plugin with a parameter schema."""

    name = "t_schema"
    description = "Plugin with a schema"
    params_schema = {"type": "object", "properties": {"x": {"type": "integer"}}}

    def execute(self, params: dict[str, Any], context: Any) -> Any:
        context.logger.info("x is %s", params.get("x"))
        return params.get("x")


nbtasklog.register(TParams)


@pytest.fixture
def gate() -> Any:
    """A fresh Event registered by name; tasks given {"gate": name} wait on it. Always set at the end."""
    made: list[str] = []

    def make() -> tuple[str, threading.Event]:
        name = uuid.uuid4().hex
        GATES[name] = event = threading.Event()
        made.append(name)
        return name, event

    yield make
    for name in made:
        GATES.pop(name).set()


# ---- the server -----------------------------------------------------------------------------------
@pytest.fixture
def nbtasklog_config() -> dict[str, Any]:
    """Extra NbTaskLogApp options; a test overrides it with @pytest.mark.parametrize."""
    return {}


@pytest.fixture
def server_config() -> dict[str, Any]:
    """Extra ServerApp options; a test overrides it with @pytest.mark.parametrize."""
    return {}


@pytest.fixture
def jp_server_config(tmp_path: Any, nbtasklog_config: dict[str, Any], server_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {"jpserver_extensions": {"nbtasklog": True}, **server_config},
        "NbTaskLogApp": {"db_url": str(tmp_path / "logs.duckdb"), "flush_interval": 0.05, **nbtasklog_config},
    }


@pytest.fixture
def engine(jp_serverapp: Any) -> Any:
    """The server's Engine (the extension's)."""
    return jp_serverapp.web_app.settings["nbtasklog"].engine


# ---- helpers --------------------------------------------------------------------------------------
class Response:
    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.code: int = raw.code
        self.body: bytes = raw.body or b""
        self.headers = raw.headers

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def message(self) -> str:
        return self.json().get("message", "")

    def __repr__(self) -> str:
        return f"<Response {self.code} {self.body[:300]!r}>"


@pytest.fixture
def api(jp_fetch: Any) -> Callable[..., Awaitable[Response]]:
    """Call nbtasklog/api/...: never raises for an HTTP error; `body` may be a dict, str or bytes."""

    async def call(*path: str, method: str = "GET", body: Any = None, params: Any = None,
                   headers: dict[str, str] | None = None) -> Response:
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs["body"] = body if isinstance(body, (bytes, str)) else json.dumps(body)
        elif method in ("POST", "PUT"):
            kwargs["body"] = b"{}"
        raw = await jp_fetch("nbtasklog", "api", *path, method=method, params=params, headers=dict(headers or {}),
                             raise_error=False, **kwargs)
        return Response(raw)

    return call


def assert_error(response: Response, status: int, *words: str) -> str:
    """A 4xx JSON error with a message naming each of `words`, and no traceback."""
    assert response.code == status, response
    assert response.headers.get("Content-Type", "").startswith("application/json"), response
    body = response.json()
    message = body.get("message") or ""
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    text = response.body.decode()
    assert "Traceback" not in text and "traceback" not in body, text
    return message


async def until(predicate: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition", interval: float = 0.02) -> Any:
    """Poll `predicate` (sync or async) until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)


@pytest.fixture
def start(api: Any) -> Callable[..., Awaitable[dict[str, Any]]]:
    """POST a task and return its row."""

    async def run(plugin: str, params: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        response = await api("tasks", method="POST", body={"plugin": plugin, "params": params or {}, **extra})
        assert response.code == 201, response
        return response.json()

    return run


@pytest.fixture
def finished(api: Any) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Wait until the task is no longer PENDING/RUNNING; returns its row."""

    async def wait(task_id: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        async def done() -> Any:
            row = (await api("tasks", task_id)).json()
            return row if row["status"] not in ("PENDING", "RUNNING") else None

        return await until(done, timeout, f"task {task_id} to finish")

    return wait


async def read_json(ws: WebSocketClientConnection, timeout: float = TIMEOUT) -> dict[str, Any] | None:
    """The next message as JSON, or None when the socket closed."""
    message = await asyncio.wait_for(ws.read_message(), timeout)
    return None if message is None else json.loads(message)


async def read_until(ws: WebSocketClientConnection, stop: Callable[[dict[str, Any]], bool],
                     timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """Messages up to and including the first for which `stop` is true; fails on close or timeout."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no expected message within {timeout} s; got {[m.get('type') for m in seen]}")
        try:
            message = await read_json(ws, remaining)
        except asyncio.TimeoutError:
            continue
        if message is None:
            raise AssertionError(f"socket closed ({ws.close_code} {ws.close_reason}) after {[m.get('type') for m in seen]}")
        seen.append(message)
        if stop(message):
            return seen


def records_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for m in messages if m["type"] == "records" for r in m["records"]]


@pytest.fixture
def sockets(jp_ws_fetch: Any, jp_http_port: int, jp_base_url: str) -> Any:
    """Open a WebSocket under nbtasklog/api/; every socket opened is closed at the end of the test.

    jp_ws_fetch always asks for localhost; `host="127.0.0.1"` asks for the host jp_fetch uses
    (login cookies are per host, as in a browser) and sends only the headers given.
    """
    opened: list[WebSocketClientConnection] = []

    async def open_socket(*path: str, params: Any = None, headers: dict[str, str] | None = None,
                          host: str | None = None) -> WebSocketClientConnection:
        if host is None:
            ws = await jp_ws_fetch("nbtasklog", "api", *path, params=params, headers=dict(headers or {}))
        else:
            url = f"ws://{host}:{jp_http_port}{jp_base_url}nbtasklog/api/{'/'.join(path)}"
            if params:
                url += "?" + urllib.parse.urlencode(params)
            ws = await tornado.websocket.websocket_connect(tornado.httpclient.HTTPRequest(url, headers=dict(headers or {})))
        opened.append(ws)
        return ws

    yield open_socket
    for ws in opened:
        ws.close()


def seqs_of(records: list[dict[str, Any]]) -> list[int]:
    return [r["seq"] for r in records]


# ---- a kernel-side Engine on this server ------------------------------------------------------------
@pytest.fixture
def requests_seen(jp_serverapp: Any) -> list[tuple[str, str]]:
    """(method, path) of every HTTP request the server answers during the test, as it logs them."""
    seen: list[tuple[str, str]] = []
    settings = jp_serverapp.web_app.settings
    original = settings["log_function"]

    def log_function(handler: Any) -> None:
        seen.append((handler.request.method, handler.request.path))
        original(handler)

    settings["log_function"] = log_function
    yield seen
    settings["log_function"] = original


def off_loop(function: Callable[..., Any], *args: Any) -> Awaitable[Any]:
    """Run blocking client code in a thread: the server under test answers on this test's loop."""
    return asyncio.get_running_loop().run_in_executor(None, function, *args)


@pytest.fixture
def kernel_engine(jp_serverapp: Any, jp_fetch: Any, jp_http_port: int, jp_base_url: str) -> Any:
    """`await kernel_engine()`: an Engine whose store is a RemoteStore on this server, as in a kernel; closed at the end.

    (jp_fetch: the server accepts connections only once its HTTP client fixture has started it.)
    """
    from nbtasklog.remote import RemoteStore, ServerConnection

    made: list[nbtasklog.Engine] = []

    async def make() -> nbtasklog.Engine:
        connection = ServerConnection(f"http://127.0.0.1:{jp_http_port}{jp_base_url}", jp_serverapp.identity_provider.token)
        engine = await off_loop(lambda: nbtasklog.Engine(store=RemoteStore(connection), flush_interval=0.05, handle_signals=False))
        made.append(engine)
        return engine

    yield make
    for engine in made:  # nothing left to send by then: close needs no answer from the (stopped) server
        engine.close(timeout=2)
