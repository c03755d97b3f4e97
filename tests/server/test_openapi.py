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
from nbtasklog.server.handlers import FILTER_PARAMS, routes

from .conftest import until
from .test_rest import ARROW, ipc_stream, kernel_records, task_row

DOCUMENT = json.loads((Path(nbtasklog.server.__file__).parent / "openapi.json").read_text())
METHODS = ("get", "post", "put", "delete", "patch")


def documented_path(pattern: str) -> str:
    """A tornado route pattern in OpenAPI form: (?P<task_id>...) -> {task_id}."""
    return re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", pattern)


ROUTES = {documented_path(pattern): handler for pattern, handler, *_ in routes()}


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
    assert names == FILTER_PARAMS | {"meta.KEY"} | extra


def test_task_list_parameters_documented():
    """GET tasks documents the query parameters it accepts."""
    names = {p["name"] for p in DOCUMENT["paths"]["/nbtasklog/api/tasks"]["get"]["parameters"] if p["in"] == "query"}
    assert names == {"status", "plugin", "limit", "before"}


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
