"""Security: authentication on every route, origins, XSRF, the authorizer, and the read-only SQL endpoint."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

import pytest
import tornado.httpclient
from authorizers import NoNbtasklog, NoSettingsWrite
from tornado import web

from nbtasklog.server.routes import routes
from nbtasklog.server.sockets import _AuthorizedSocket

from .conftest import assert_error, read_until

METHODS = ("get", "post", "put", "delete", "patch")


def implemented(handler: type) -> list[str]:
    """The HTTP methods a handler class implements (not tornado's 405 default)."""
    return [m for m in METHODS if getattr(handler, m) is not getattr(web.RequestHandler, m)]


def concrete(pattern: str, task_id: str) -> list[str]:
    """A route pattern as path parts under nbtasklog/api/, with the task id filled in."""
    path = re.sub(r"\(\?P<task_id>[^)]*\)", task_id, pattern)
    return path.strip("/").split("/")[2:]


def is_socket(handler: type) -> bool:
    return issubclass(handler, _AuthorizedSocket)


# ---- authentication ---------------------------------------------------------------------------------
@pytest.mark.parametrize("auth", ["token wrong-token", ""], ids=["wrong token", "no token"])
async def test_every_rest_route_refuses_unauthenticated(api, start, finished, auth):
    """Every method of every REST route answers 403 without a valid token, and does nothing."""
    task = (await start("t_schema", {"x": 1}))["id"]
    await finished(task)
    checked = 0
    for pattern, handler, *_ in routes():
        if is_socket(handler):
            continue
        for method in implemented(handler):
            response = await api(*concrete(pattern, task), method=method.upper(), headers={"Authorization": auth},
                                 body=b"{}" if method in ("post", "put", "patch") else None)
            assert response.code == 403, (pattern, method, response)
            assert "Traceback" not in response.body.decode()
            checked += 1
    assert checked >= 16
    assert (await api("tasks", task)).code == 200  # the DELETE above did nothing


@pytest.mark.parametrize("auth", ["token wrong-token", ""], ids=["wrong token", "no token"])
async def test_both_websockets_refuse_unauthenticated(start, sockets, auth):
    """The log stream and the task-list stream refuse the upgrade with 403 without a valid token."""
    task = (await start("t_schema", {"x": 1}))["id"]
    for path in [("tasks", task, "logs", "stream"), ("tasks", "stream")]:
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await sockets(*path, headers={"Authorization": auth})
        assert refused.value.code == 403, path


def decorators(function) -> list[str]:
    """The qualified names of the wrappers around a method, outermost first (following __wrapped__)."""
    names = []
    while hasattr(function, "__wrapped__"):
        names.append(function.__code__.co_qualname.split(".<locals>")[0])
        function = function.__wrapped__
    return names


def test_every_handler_method_is_wrapped_by_an_auth_decorator():
    """Each implemented method of each route's handler is wrapped by web.authenticated then authorized (REST) or ws_authenticated (sockets)."""
    for pattern, handler, *_ in routes():
        methods = implemented(handler)
        assert methods, pattern
        for method in methods:
            wanted = ["ws_authenticated"] if is_socket(handler) else ["authenticated", "authorized"]
            assert decorators(getattr(handler, method)) == wanted, f"{handler.__name__}.{method} of {pattern}"
        if is_socket(handler):  # and the socket checks the authorizer before the upgrade
            assert handler.pre_get is _AuthorizedSocket.pre_get


async def browser_session(api) -> str:
    """The login cookie the server sets for a token-authenticated request (what a browser then sends)."""
    login = await api("health")
    cookies = SimpleCookie()
    for header in login.headers.get_list("Set-Cookie"):
        cookies.load(header)
    assert cookies, "no login cookie was set"
    return "; ".join(f"{k}={v.value}" for k, v in cookies.items())  # valid for 127.0.0.1, the host jp_fetch asks


async def test_websocket_foreign_origin_refused(api, jp_http_port, start, sockets):
    """A browser WebSocket (login cookie) from a foreign Origin is refused; from the server's own origin it opens."""
    # A token-authenticated socket skips the origin check, as everywhere in jupyter-server: a
    # cross-site page cannot send the token.
    task = (await start("t_schema", {"x": 1}))["id"]
    cookie = {"Cookie": await browser_session(api)}
    for path in [("tasks", task, "logs", "stream"), ("tasks", "stream")]:
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await sockets(*path, headers={**cookie, "Origin": "http://evil.example"}, host="127.0.0.1")
        assert refused.value.code == 403
        ws = await sockets(*path, headers={**cookie, "Origin": f"http://127.0.0.1:{jp_http_port}"}, host="127.0.0.1")
        assert ws.protocol is not None
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:  # and no cookie, no token: no socket
        await sockets("tasks", "stream", headers={"Origin": f"http://127.0.0.1:{jp_http_port}"}, host="127.0.0.1")
    assert refused.value.code == 403
    ws = await sockets("tasks", task, "logs", "stream", headers=cookie, host="127.0.0.1")  # no Origin: not a page
    assert (await read_until(ws, lambda m: m["type"] == "history_end"))[-1]["type"] == "history_end"


async def test_cookie_session_needs_xsrf_for_writes(api):
    """A browser session (login cookie, no token): reads work, a write without the XSRF token is refused."""
    session = await browser_session(api)
    browser = {"Authorization": "", "Cookie": session}
    assert (await api("tasks", headers=browser)).code == 200
    refused = await api("tasks", method="POST", body={"plugin": "t_schema"}, headers=browser)
    assert_error(refused, 403, "xsrf")
    with_xsrf = {"Authorization": "", "Cookie": f"{session}; _xsrf=abc123", "X-XSRFToken": "abc123"}
    assert (await api("tasks", method="POST", body={"plugin": "t_schema"}, headers=with_xsrf)).code == 201


# ---- authorization ----------------------------------------------------------------------------------
@pytest.mark.parametrize("server_config", [{"authorizer_class": NoSettingsWrite}])
async def test_non_admin_reads_settings_but_cannot_change_them(api, start, finished):
    """A user the authorizer does not let write nbtasklog.settings: GET shows writable false, PUT is 403, tasks still run."""
    settings = await api("settings")
    assert settings.code == 200 and settings.json()["writable"] is False
    refused = await api("settings", method="PUT", body={"task_log_level": "DEBUG"})
    assert_error(refused, 403)
    assert (await api("settings")).json()["task_log_level"] == "INFO"
    task = (await start("t_schema", {"x": 3}))["id"]
    assert (await finished(task))["status"] == "SUCCESS"


@pytest.mark.parametrize("server_config", [{"authorizer_class": NoNbtasklog}])
async def test_authorizer_refusal_applies_to_rest_and_websockets(api, sockets, jp_fetch):
    """A user refused the nbtasklog resources gets 403 on REST reads and writes and on both WebSockets."""
    assert (await jp_fetch("api", "status")).code == 200  # the rest of Jupyter still answers
    assert_error(await api("tasks"), 403)
    assert_error(await api("tasks", method="POST", body={"plugin": "t_schema"}), 403)
    assert_error(await api("settings"), 403)
    assert_error(await api("sql", method="POST", body={"query": "SELECT 1"}), 403)
    for path in [("tasks", "nosuch", "logs", "stream"), ("tasks", "stream")]:
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await sockets(*path)
        assert refused.value.code == 403


# ---- the SQL endpoint is read-only and cannot touch files -------------------------------------------
@pytest.mark.parametrize(
    "query, words",
    [
        ("INSERT INTO tasks (id, plugin, status, created_at) VALUES ('x', 'p', 'SUCCESS', now())", ["read-only", "INSERT"]),
        ("DELETE FROM task_logs", ["read-only", "DELETE"]),
        ("UPDATE tasks SET status = 'FAILED'", ["read-only", "UPDATE"]),
        ("DROP TABLE task_logs", ["read-only", "DROP"]),
        ("CREATE TABLE evil (a INT)", ["read-only", "CREATE"]),
        ("ATTACH '/tmp/evil.duckdb' AS evil", ["read-only", "ATTACH"]),
        ("COPY task_logs TO '/tmp/stolen.csv'", ["read-only", "COPY"]),
        ("COPY (SELECT * FROM task_logs) TO '/tmp/stolen.parquet' (FORMAT parquet)", ["read-only", "COPY"]),
        ("INSTALL httpfs", ["read-only"]),
        ("LOAD httpfs", ["read-only", "LOAD"]),
        ("SET enable_external_access = true", ["read-only", "SET"]),
        ("RESET enable_external_access", ["read-only"]),
        ("PRAGMA enable_profiling", ["read-only", "PRAGMA"]),
        ("CALL checkpoint()", ["read-only"]),
        ("EXPORT DATABASE '/tmp/everything'", ["read-only", "EXPORT"]),
        ("EXPLAIN ANALYZE DELETE FROM task_logs", ["read-only"]),
        ("explain (analyze) delete from task_logs", ["read-only"]),
        ("WITH gone AS (DELETE FROM task_logs RETURNING *) SELECT count(*) FROM gone", ["read-only"]),
        ("SELECT nextval('task_logs_id_seq')", ["read-only"]),
        ("SELECT 1; DELETE FROM task_logs", ["exactly one"]),
        ("SELECT * FROM read_text('/etc/passwd')", ["read_text()", "not allowed"]),
        ("SELECT * FROM read_csv('/etc/passwd')", ["read_csv()", "not allowed"]),
        ("SELECT * FROM read_blob('/etc/hostname')", ["read_blob()", "not allowed"]),
        ("SELECT * FROM read_parquet('/tmp/x.parquet')", ["read_parquet()", "not allowed"]),
        ("SELECT * FROM glob('/etc/*')", ["glob()", "not allowed"]),
        ("SELECT * FROM '/etc/passwd'", ["/etc/passwd"]),
        ("SELECT * FROM query('DELETE FROM task_logs')", ["query()", "not allowed"]),
    ],
)
async def test_sql_refuses_writes_and_file_access(api, start, finished, query, words):
    """The SQL endpoint refuses writes, attach, copy, install/load, settings and file access with a clear 400."""
    task = (await start("t_sources", {"n": 4}))["id"]
    await finished(task)
    assert_error(await api("sql", method="POST", body={"query": query}), 400, *words)
    left = await api("sql", method="POST", body={"query": "SELECT count(*) FROM task_logs"})
    assert left.json()["rows"] == [[6]]  # nothing was deleted
    assert (await api("sql", method="POST", body={"query": "SELECT count(*) FROM tasks"})).json()["rows"] == [[1]]
    setting = await api("sql", method="POST", body={"query": "SELECT current_setting('enable_external_access')"})
    assert setting.json()["rows"] == [[False]]


async def test_sql_allows_plain_explain(api):
    """EXPLAIN (without ANALYZE) of a SELECT is allowed: it runs nothing."""
    response = await api("sql", method="POST", body={"query": "EXPLAIN SELECT * FROM task_logs"})
    assert response.code == 200 and response.json()["rows"]


async def test_errors_carry_no_traceback(api, sockets):
    """Error answers never carry a traceback, even for a handler failure."""
    for response in [await api("tasks", "x", "logs", params={"level": "nope"}),
                     await api("sql", method="POST", body={"query": "SELECT * FROM nope"}),
                     await api("tasks", method="POST", body=b"\x00\x01")]:
        assert 400 <= response.code < 500
        assert "traceback" not in response.json() and "Traceback" not in response.body.decode()
    ws = await sockets("tasks", "stream")
    await ws.write_message("hello")
    await read_until(ws, lambda m: m["type"] == "error")
