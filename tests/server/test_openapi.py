"""openapi.json is kept true: every route documented, every documented path and method implemented, answers match."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from tornado import web

import nbtasklog.server
from nbtasklog.filter import QUERY_PARAMS
from nbtasklog.server.rest import TASK_ID_PATTERN, UnknownPathHandler
from nbtasklog.server.routes import routes
from nbtasklog.server.task_handlers import DURATION_PATTERN
from nbtasklog.statuses import STATUSES

from .conftest import assert_error, read_until, until
from .test_rest import ARROW, ipc_stream, kernel_records, task_row

DOCUMENT = json.loads((Path(nbtasklog.server.__file__).parent / "openapi.json").read_text())
METHODS = ("get", "post", "put", "delete", "patch")


def documented_path(pattern: str) -> str:
    """A tornado route pattern in OpenAPI form: (?P<task_id>...) -> {task_id}."""
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)


# The catch-all route for paths no other route has answers only 404: there is nothing to document.
ROUTES = {documented_path(pattern): handler for pattern, handler, *_ in routes() if handler is not UnknownPathHandler}


def implemented(handler: type) -> set[str]:
    return {m for m in METHODS if getattr(handler, m) is not getattr(web.RequestHandler, m)}


def operations(path: str) -> dict[str, Any]:
    return {m: op for m, op in DOCUMENT["paths"][path].items() if m in METHODS}


def test_every_route_is_documented_and_every_documented_path_has_a_route():
    """The set of route patterns equals the set of documented paths."""
    undocumented = set(ROUTES) - set(DOCUMENT["paths"])
    unrouted = set(DOCUMENT["paths"]) - set(ROUTES)
    assert not undocumented, f"routes missing from openapi.json: {sorted(undocumented)}"
    assert not unrouted, f"documented paths with no route: {sorted(unrouted)}"
    assert all(path.startswith("/nbtasklog/api/") for path in DOCUMENT["paths"])


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_documented_methods_are_the_implemented_ones(path):
    """Each documented method is implemented by the route's handler, and each implemented method is documented."""
    documented = set(operations(path))
    assert documented, path
    handler = ROUTES[path]
    assert documented <= implemented(handler), f"{path}: documented but not implemented: {documented - implemented(handler)}"
    assert implemented(handler) <= documented, f"{path}: implemented but not documented: {implemented(handler) - documented}"


@pytest.mark.parametrize("path", sorted(ROUTES))
def test_path_parameters_declared_and_responses_given(path):
    """Every {name} in a path is declared as a path parameter; every operation documents its responses."""
    item = DOCUMENT["paths"][path]
    for method, op in operations(path).items():
        declared = {p["name"] for p in item.get("parameters", []) + op.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), (path, method)
        assert op.get("summary"), (path, method)
        assert op["responses"], (path, method)


def test_every_reference_resolves():
    """Every $ref in the document points at an existing component."""
    text = json.dumps(DOCUMENT)
    for ref in set(re.findall(r'"\$ref": "#/([^"]+)"', text)):
        node: Any = DOCUMENT
        for part in ref.split("/"):
            assert part in node, f"dangling $ref #/{ref}"
            node = node[part]


@pytest.mark.parametrize("path", ["/nbtasklog/api/tasks/{task_id}/logs", "/nbtasklog/api/tasks/{task_id}/logs/export",
                                  "/nbtasklog/api/tasks/{task_id}/logs/stream"])
def test_log_filter_parameters_documented(path):
    """The logs, export and stream endpoints document exactly the filter parameters the server accepts."""
    names = {p["name"] for p in DOCUMENT["paths"][path]["get"].get("parameters", []) if p["in"] == "query"}
    extra = {"format"} if path.endswith("export") else set()
    assert names == set(QUERY_PARAMS) | {"meta.KEY"} | extra


def test_task_list_parameters_documented():
    """GET tasks documents the query parameters it accepts."""
    names = {p["name"] for p in DOCUMENT["paths"]["/nbtasklog/api/tasks"]["get"]["parameters"] if p["in"] == "query"}
    assert names == {"status", "plugin", "user", "limit", "before"}


# ---- live answers match the documented schemas ------------------------------------------------------
def as_json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema: `nullable` becomes a null type; objects admit no undocumented field."""
    if isinstance(node, list):
        return [as_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: as_json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    elif out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


COMPONENTS = as_json_schema(DOCUMENT["components"])


def check(path: str, method: str, status: int, body: Any) -> None:
    response = DOCUMENT["paths"][path][method]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**as_json_schema(schema), "components": COMPONENTS})


async def test_answers_match_documented_schemas(api, start, finished):
    """The JSON answers of every endpoint validate against the schema documented for them (no undocumented field)."""
    task = (await start("t_levels", log_level="DEBUG"))
    check("/nbtasklog/api/tasks", "post", 201, task)
    await finished(task["id"])
    failed = (await start("t_fail"))["id"]
    await finished(failed)
    t = "/nbtasklog/api/tasks/{task_id}"
    check("/nbtasklog/api/plugins", "get", 200, (await api("plugins")).json())
    check("/nbtasklog/api/tasks", "get", 200, (await api("tasks")).json())
    check(t, "get", 200, (await api("tasks", task["id"])).json())
    check(t, "get", 200, (await api("tasks", failed)).json())
    check(t + "/cancel", "post", 200, (await api("tasks", task["id"], "cancel", method="POST")).json())
    check(t + "/logs", "get", 200, (await api("tasks", task["id"], "logs", params={"limit": 3})).json())
    check(t + "/logs/stats", "get", 200, (await api("tasks", task["id"], "logs", "stats")).json())
    check("/nbtasklog/api/settings", "get", 200, (await api("settings")).json())
    check("/nbtasklog/api/settings", "put", 200, (await api("settings", method="PUT", body={"log_level": "DEBUG"})).json())
    check("/nbtasklog/api/sql", "post", 200, (await api("sql", method="POST", body={"query": "SELECT * FROM tasks"})).json())
    check("/nbtasklog/api/health", "get", 200, (await until(lambda: _flushed(api))))
    check("/nbtasklog/api/openapi.json", "get", 200, (await api("openapi.json")).json())
    ingest = await api("ingest", method="POST", body=ipc_stream([task_row("k-doc")], kernel_records("k-doc", 2)), headers=ARROW)
    check("/nbtasklog/api/ingest", "post", 200, ingest.json())
    check(t, "get", 200, (await api("tasks", "k-doc")).json())
    check("/nbtasklog/api/cleanup", "post", 200, (await api("cleanup", method="POST", body={"older_than": "0s"})).json())
    for path, method, response in [
        ("/nbtasklog/api/tasks", "post", await api("tasks", method="POST", body={"plugin": "nope"})),
        ("/nbtasklog/api/tasks", "get", await api("tasks", params={"limit": "x"})),
        (t + "/logs", "get", await api("tasks", "nope", "logs")),
        (t + "/logs", "get", await api("tasks", failed, "logs", params={"level": "x"})),
        ("/nbtasklog/api/sql", "post", await api("sql", method="POST", body={"query": "DROP TABLE tasks"})),
        ("/nbtasklog/api/settings", "put", await api("settings", method="PUT", body={"log_level": "x"})),
    ]:
        assert str(response.code) in DOCUMENT["paths"][path][method]["responses"], (path, method, response)
        check(path, method, response.code, response.json())


async def _flushed(api):
    health = (await api("health")).json()
    return health if health["last_flush_at"] else None


# ---- the answers keep to the document where a fuzzer found they did not -----------------------------
TASK_PATHS = sorted(path for path in DOCUMENT["paths"] if "{task_id}" in path)
SOCKET_PATHS = ["/nbtasklog/api/tasks/stream", "/nbtasklog/api/tasks/{task_id}/logs/stream"]


def query_parameter(path: str, name: str) -> dict[str, Any]:
    return next(p for p in DOCUMENT["paths"][path]["get"]["parameters"] if p["name"] == name)


def body_schema(path: str, method: str) -> dict[str, Any]:
    schema = DOCUMENT["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        return DOCUMENT["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


@pytest.mark.parametrize("path", TASK_PATHS)
def test_task_id_pattern_is_the_routes(path):
    """The document's task id is exactly what the routes match, so an id it allows reaches the handler."""
    (parameter,) = [p for p in DOCUMENT["paths"][path]["parameters"] if p["name"] == "task_id"]
    assert parameter["schema"]["pattern"] == f"^{TASK_ID_PATTERN}$"


@pytest.mark.parametrize("parts", [("tasks", "a" * 70), ("tasks", "a.b"), ("tasks", "a.b", "logs"),
                                   ("tasks", "x", "nope"), ("nope",), ("tasks", "x", "logs", "stats", "more")])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
async def test_unknown_api_paths_answer_json_404(api, parts, method):
    """A path under the API that no route has (an id outside the pattern included) answers a JSON 404, not HTML."""
    assert_error(await api(*parts, method=method), 404, "no such", "openapi.json")


def test_only_the_unknown_path_route_is_undocumented():
    """Every route but the catch-all for unknown paths is documented (the catch-all is last, so it matches only those)."""
    last_pattern, last_handler, *_ = routes()[-1]
    assert last_handler is UnknownPathHandler and last_pattern.endswith("/.*")
    assert sum(handler is UnknownPathHandler for _, handler, *_ in routes()) == 1


@pytest.mark.parametrize("path", SOCKET_PATHS)
async def test_plain_get_on_a_websocket_route_is_a_documented_json_400(api, start, finished, path):
    """A GET without the WebSocket upgrade answers 400 JSON saying to open a WebSocket; 400 is documented there."""
    task = (await start("t_schema", {"x": 1}))["id"]
    await finished(task)
    parts = path.removeprefix("/nbtasklog/api/").replace("{task_id}", task).split("/")
    assert_error(await api(*parts), 400, "WebSocket")
    assert "400" in DOCUMENT["paths"][path]["get"]["responses"]


@pytest.mark.parametrize("headers, status, words", [
    ({"Upgrade": "websocket"}, 400, ["Connection: Upgrade"]),
    ({"Upgrade": "websocket", "Connection": "Upgrade"}, 400, ["Sec-WebSocket-Key"]),
    ({"Upgrade": "websocket", "Connection": "keep-alive, Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version": "99"}, 426, ["version 13"]),
])
async def test_a_broken_websocket_handshake_is_a_json_error(api, headers, status, words):
    """A handshake that lacks a header, or asks for another WebSocket version, answers a JSON error (426 names version 13)."""
    response = await api("tasks", "stream", headers=headers)
    assert_error(response, status, *words)
    assert str(status) in DOCUMENT["paths"]["/nbtasklog/api/tasks/stream"]["get"]["responses"]
    if status == 426:
        assert response.headers["Sec-WebSocket-Version"] == "13"


def allowed(path: str) -> set[str]:
    """The methods documented for a path, and OPTIONS where the handler answers it (REST: CORS preflight)."""
    methods = {m.upper() for m in operations(path)}
    return methods if path in SOCKET_PATHS else methods | {"OPTIONS"}


@pytest.mark.parametrize("path", sorted(ROUTES))
async def test_unsupported_methods_answer_405_json_with_allow(jp_fetch, path, caplog):
    """TRACE, and a standard method a route lacks, answer 405 JSON with `Allow` naming the route's methods; nothing is logged as uncaught."""
    parts = path.removeprefix("/nbtasklog/api/").replace("{task_id}", "sometask").split("/")
    lacking = sorted({"GET", "POST", "PUT", "DELETE", "PATCH"} - allowed(path))[0]
    for method in ("TRACE", lacking):
        raw = await jp_fetch("nbtasklog", "api", *parts, method=method, raise_error=False, allow_nonstandard_methods=True,
                             body=b"{}" if method in ("POST", "PUT", "PATCH") else None)
        assert raw.code == 405, (method, path, raw.body)
        assert raw.headers.get("Content-Type", "").startswith("application/json"), (method, path)
        assert json.loads(raw.body)["message"], (method, path)
        assert {m.strip() for m in raw.headers["Allow"].split(",")} == allowed(path), (method, path)
    assert not [r for r in caplog.records if "Uncaught exception" in r.getMessage()]


async def test_put_settings_without_a_body_is_400(api):
    """PUT settings needs a JSON object: no body is 400 saying what to send; {} changes nothing (200), as the schema allows."""
    before = (await api("settings")).json()
    assert_error(await api("settings", method="PUT", body=b""), 400, "JSON object", "task_log_level")
    assert DOCUMENT["paths"]["/nbtasklog/api/settings"]["put"]["requestBody"]["required"] is True
    same = await api("settings", method="PUT", body={})
    assert same.code == 200 and same.json() == before


@pytest.mark.parametrize("body, words", [({"log_level": 20}, ["log_level", "DEBUG"]),
                                         ({"task_log_level": None}, ["task_log_level"]),
                                         ({"belief_scope_enabled": "yes"}, ["belief_scope_enabled", "true or false"]),
                                         ({"belief_scope_enabled": 1}, ["belief_scope_enabled"])])
async def test_put_settings_takes_only_the_documented_types(api, body, words):
    """Levels are names (text) and belief_scope_enabled a boolean or the text true/false, as documented."""
    assert_error(await api("settings", method="PUT", body=body), 400, *words)
    schema = body_schema("/nbtasklog/api/settings", "put")["properties"]
    assert schema["belief_scope_enabled"]["anyOf"] == [{"type": "boolean"}, {"type": "string", "enum": ["true", "false"]}]
    ok = await api("settings", method="PUT", body={"belief_scope_enabled": "true", "log_level": "info"})
    assert ok.code == 200 and ok.json()["belief_scope_enabled"] is True


@pytest.mark.parametrize("path", ["/nbtasklog/api/tasks", "/nbtasklog/api/tasks/{task_id}/logs",
                                  "/nbtasklog/api/tasks/{task_id}/logs/export", "/nbtasklog/api/tasks/{task_id}/logs/stream"])
def test_every_query_parameter_documents_empty_as_absent(path):
    """An empty query value means the parameter is absent, for every parameter (as make_filter reads level="")."""
    for parameter in DOCUMENT["paths"][path]["get"]["parameters"]:
        if parameter["name"] != "meta.KEY":  # there an empty value has its own meaning: the key exists
            assert parameter.get("allowEmptyValue") is True, (path, parameter["name"])
            assert "empty" in parameter["description"], (path, parameter["name"])


async def test_empty_query_values_mean_absent(api, start, finished):
    """limit=, level=, source=, order=, after=, format= … answer as if they were not given."""
    task = (await start("t_sources", {"n": 30}))["id"]
    await finished(task)
    empty = {name: "" for name in QUERY_PARAMS}
    plain = (await api("tasks", task, "logs")).json()
    assert (await api("tasks", task, "logs", params=empty)).json() == plain
    export = await api("tasks", task, "logs", "export", params={**empty, "format": ""})
    assert export.code == 200 and export.headers["Content-Type"] == "application/x-ndjson"
    assert len(export.body.splitlines()) == len(plain["records"])
    listed = await api("tasks", params={"status": "", "plugin": "", "before": "", "limit": ""})
    assert listed.code == 200 and listed.json() == (await api("tasks")).json()
    assert_error(await api("tasks", task, "logs", params={"source": ","}), 400, "source")  # names no source at all


async def test_empty_query_values_mean_absent_on_the_log_socket(start, finished, sockets):
    """The log WebSocket reads its URL's filter the same way: empty values are left out."""
    task = (await start("t_sources", {"n": 5}))["id"]
    await finished(task)
    ws = await sockets("tasks", task, "logs", "stream", params={name: "" for name in QUERY_PARAMS})
    messages = await read_until(ws, lambda m: m["type"] == "end")
    assert [r["seq"] for m in messages if m["type"] == "records" for r in m["records"]] == list(range(1, 8))


@pytest.mark.parametrize("params, words", [({"level": "/x", "errors_only": "true"}, ["/x", "DEBUG"]),
                                           ({"errors_only": "-58800"}, ["errors_only", "true or false"]),
                                           ({"after": str(2**63)}, ["after", "9223372036854775807"]),
                                           ({"since": "0001-01-01T00:00:00+01:00"}, ["since", "0001-01-01 and 9999-12-31"])])
async def test_filter_values_outside_the_document_are_400(api, start, finished, params, words):
    """A level outside the names is refused even beside errors_only=true; errors_only is a boolean, not any text;
    a seq past the BIGINT the document allows, and a time a datetime cannot hold, are refused, not a 500."""
    task = (await start("t_schema", {"x": 1}))["id"]
    await finished(task)
    assert_error(await api("tasks", task, "logs", params=params), 400, *words)
    assert_error(await api("tasks", task, "logs", "export", params=params), 400, *words)


def test_log_level_parameters_and_fields_are_the_level_names():
    """Every level the document takes is one of the four names (any case is read too)."""
    names = ["DEBUG", "INFO", "WARNING", "ERROR"]
    assert DOCUMENT["components"]["schemas"]["LevelName"]["enum"] == names
    for path in ("/nbtasklog/api/tasks/{task_id}/logs", "/nbtasklog/api/tasks/{task_id}/logs/export"):
        assert query_parameter(path, "level")["schema"] == {"$ref": "#/components/schemas/LevelName"}
    assert body_schema("/nbtasklog/api/tasks", "post")["properties"]["log_level"]["allOf"] == [{"$ref": "#/components/schemas/LevelName"}]
    for name in ("log_level", "task_log_level"):
        assert body_schema("/nbtasklog/api/settings", "put")["properties"][name] == {"$ref": "#/components/schemas/LevelName"}


async def test_task_list_status_is_documented_as_the_statuses(api):
    """status is a comma list of the six statuses: the schema enumerates them, and anything else is 400."""
    schema = query_parameter("/nbtasklog/api/tasks", "status")
    assert schema["style"] == "form" and schema["explode"] is False
    assert set(schema["schema"]["items"]["enum"]) == set(STATUSES)
    assert_error(await api("tasks", params={"status": "iI(l"}), 400, "II(L")
    assert (await api("tasks", params={"status": "failed,RUNNING"})).code == 200


@pytest.mark.parametrize("path, method, field, body, words", [
    ("/nbtasklog/api/sql", "post", "query", {"query": ""}, ["query"]),
    ("/nbtasklog/api/tasks", "post", "plugin", {"plugin": ""}, ["plugin"]),
])
async def test_empty_required_text_is_refused_and_documented_so(api, path, method, field, body, words):
    """A required text field that must not be empty says minLength 1, and the handler refuses "" with 400."""
    assert body_schema(path, method)["properties"][field]["minLength"] == 1
    assert_error(await api(path.removeprefix("/nbtasklog/api/"), method=method.upper(), body=body), 400, *words)


@pytest.mark.parametrize("older_than, status", [("", 400), (" 30d", 400), ("30 days", 400), ("1.5h", 200), ("0s", 200),
                                                ("99999999999999999999d", 200), ("1" * 400 + "w", 200)])
async def test_cleanup_age_is_the_documented_pattern(api, older_than, status):
    """older_than matches the document's pattern or is 400; an age past what a date can hold deletes nothing, no 500."""
    schema = body_schema("/nbtasklog/api/cleanup", "post")["properties"]["older_than"]
    assert schema["pattern"] == f"^{DURATION_PATTERN}$"
    assert (re.fullmatch(DURATION_PATTERN, older_than) is not None) == (status == 200)
    response = await api("cleanup", method="POST", body={"older_than": older_than})
    if status == 200:
        assert response.code == 200 and isinstance(response.json()["deleted"], list), response
    else:
        assert_error(response, 400, "older_than", "30d")


@pytest.mark.parametrize("body", [{"query": "SELECT 1", "max_rows": True}, {"query": "SELECT 1", "max_rows": 1.5},
                                  {"query": "SELECT 1", "max_rows": "5"}])
async def test_sql_max_rows_must_be_an_integer(api, body):
    """max_rows is documented as an integer: true, 1.5 or "5" are refused rather than read as a number."""
    assert_error(await api("sql", method="POST", body=body), 400, "max_rows")


@pytest.mark.parametrize("body, words", [({"plugin": "t_schema", "log_level": 20}, ["log_level", "DEBUG"]),
                                         ({"plugin": "t_schema", "params": "x"}, ["params"])])
async def test_new_task_fields_take_only_the_documented_types(api, body, words):
    """POST tasks: log_level is a level name and params an object (null for either means the default)."""
    assert_error(await api("tasks", method="POST", body=body), 400, *words)
    ok = await api("tasks", method="POST", body={"plugin": "t_schema", "params": None, "log_level": None})
    assert ok.code == 201


def test_document_is_valid_openapi():
    """openapi.json is a valid OpenAPI 3.0 document (schemathesis checks it against the specification's schema)."""
    import schemathesis

    schemathesis.openapi.from_dict(DOCUMENT).validate()
