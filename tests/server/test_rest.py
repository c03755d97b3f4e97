"""The REST API under {base_url}/nbtasklog/api/: every endpoint with good and bad input."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nbtasklog.filter import make_filter
from nbtasklog.record import LogRecord, datetime_to_us
from nbtasklog.remote import RemoteStore, ServerConnection
from nbtasklog.store.store import LOG_ARROW_SCHEMA, SQL_CONCURRENCY, records_to_arrow

from .conftest import assert_error, off_loop, until


# ---- helpers ----------------------------------------------------------------------------------------
async def levels_task(start, finished) -> str:
    """Run t_levels at DEBUG and return its id. Its records:
    1 system INFO 'Task started', 2 DEBUG apple, 3 INFO banana, 4 WARNING cherry, 5 ERROR durian,
    6 db ERROR elderberry, 7 system INFO 'Task succeeded'."""
    task = await start("t_levels", log_level="DEBUG")
    row = await finished(task["id"])
    assert row["status"] == "SUCCESS", row
    return task["id"]


async def seqs(api, task_id, params=None) -> list[int]:
    response = await api("tasks", task_id, "logs", params=params)
    assert response.code == 200, response
    return [r["seq"] for r in response.json()["records"]]


def ipc_stream(task_rows: list[dict], records: list[LogRecord] | None = None, table: pa.Table | None = None) -> bytes:
    """The body RemoteStore.write sends: an Arrow IPC stream, task rows as JSON in the schema metadata."""
    if table is None:
        table = records_to_arrow(records) if records else LOG_ARROW_SCHEMA.empty_table()
    table = table.replace_schema_metadata({"nbtasklog.tasks": json.dumps(task_rows)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


ARROW = {"Content-Type": "application/vnd.apache.arrow.stream"}


def kernel_records(task_id: str, count: int, first: int = 1) -> list[LogRecord]:
    now = datetime_to_us(datetime.now(timezone.utc))
    return [
        LogRecord(task_id, seq, now + seq, "INFO", "kernel" if seq % 2 else "plugin", f"kernel record {seq}",
                  json.dumps({"dashboard_id": seq}))
        for seq in range(first, first + count)
    ]


def task_row(task_id: str, status: str = "RUNNING", **extra) -> dict:
    return {"id": task_id, "plugin": "notebook_fn", "params": {"a": 1}, "status": status,
            "created_at": "2026-01-01T00:00:00+00:00", **extra}


# ---- plugins ----------------------------------------------------------------------------------------
async def test_plugins_lists_name_description_schema(api):
    """GET plugins lists every registered plugin with its description and parameter schema."""
    response = await api("plugins")
    assert response.code == 200
    plugins = {p["name"]: p for p in response.json()["plugins"]}
    assert {"dashboard_backup", "t_sources", "t_schema"} <= set(plugins)
    assert plugins["t_schema"]["description"] == "Plugin with a schema"
    assert plugins["t_schema"]["params_schema"] == {"type": "object", "properties": {"x": {"type": "integer"}}}
    assert plugins["dashboard_backup"]["params_schema"]["properties"]["dashboards"]["type"] == "integer"
    assert plugins["t_sources"]["params_schema"] is None


async def test_wrong_method_is_405_json(api):
    """A method the endpoint does not have answers 405 with a JSON body."""
    response = await api("plugins", method="DELETE")
    assert_error(response, 405)


# ---- tasks ------------------------------------------------------------------------------------------
async def test_create_task_and_read_it(api, finished):
    """POST tasks gives 201 with the task; GET tasks/{id} follows it to SUCCESS with its progress."""
    response = await api("tasks", method="POST", body={"plugin": "t_schema", "params": {"x": 5}})
    assert response.code == 201, response
    task = response.json()
    assert task["plugin"] == "t_schema" and task["params"] == {"x": 5}
    assert task["status"] in ("PENDING", "RUNNING")
    row = await finished(task["id"])
    assert row["status"] == "SUCCESS" and row["progress"] == 1.0 and row["error"] is None
    assert row["record_count"] == 3  # started, "x is 5", succeeded
    assert row["started_at"] and row["finished_at"]


async def test_failed_task_has_error(api, start, finished):
    """A plugin that raises ends FAILED with its error, and the failure is in its log."""
    task = await start("t_fail")
    row = await finished(task["id"])
    assert row["status"] == "FAILED" and "t_fail failed on purpose" in row["error"]
    records = (await api("tasks", task["id"], "logs", params={"level": "ERROR"})).json()["records"]
    assert records and records[-1]["source"] == "system" and "t_fail failed on purpose" in records[-1]["message"]


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"plugin": "no_such_plugin"}, 404, ["no_such_plugin", "known plugins", "t_sources"]),
        ({"params": {}}, 400, ["plugin"]),
        ({"plugin": ""}, 400, ["plugin"]),
        ({"plugin": 7}, 400, ["plugin"]),
        ({"plugin": "t_schema", "parms": {}}, 400, ["unknown field", "parms"]),
        ({"plugin": "t_schema", "params": [1, 2]}, 400, ["params", "dict"]),
        ({"plugin": "t_schema", "params": {"x": float("nan")}}, 400, ["json"]),
        ({"plugin": "t_schema", "log_level": "LOUD"}, 400, ["LOUD"]),
    ],
)
async def test_create_task_bad_input(api, body, status, words):
    """POST tasks with a bad body is refused with a message that names the problem."""
    raw = json.dumps(body)  # NaN passes through as the (invalid) JSON token NaN: Python's json accepts it
    assert_error(await api("tasks", method="POST", body=raw), status, *words)


@pytest.mark.parametrize(
    "raw, words",
    [(b"{not json", ["not valid JSON"]), (b"[1, 2]", ["JSON object"]), (b'"text"', ["JSON object"]),
     (b"\xff\xfe", ["not valid JSON"]), (b"null", ["JSON object"])],
)
async def test_create_task_body_not_an_object(api, raw, words):
    """A body that is not JSON, or JSON but not an object, gives 400."""
    assert_error(await api("tasks", method="POST", body=raw), 400, *words)


@pytest.mark.parametrize("nbtasklog_config", [{"max_body_bytes": 200}])
async def test_oversized_body_is_413(api):
    """A body over max_body_bytes gives 413 on JSON endpoints and on ingest."""
    big = {"plugin": "t_schema", "params": {"pad": "x" * 500}}
    assert_error(await api("tasks", method="POST", body=big), 413, "200 bytes")
    assert_error(await api("settings", method="PUT", body={"log_level": "INFO", "pad": "y" * 500}), 413)
    body = ipc_stream([task_row("k-big")], kernel_records("k-big", 20))
    assert_error(await api("ingest", method="POST", body=body, headers=ARROW), 413, "200 bytes")
    small = await api("tasks", method="POST", body={"plugin": "t_schema"})
    assert small.code == 201


async def test_list_tasks_filters_and_pages(api, start, finished):
    """GET tasks filters by status and plugin, newest first, in keyset pages (cursor, before)."""
    ids = []
    for _ in range(3):
        ids.append((await start("t_schema", {"x": 1}))["id"])
    failed = (await start("t_fail"))["id"]
    for task_id in [*ids, failed]:
        await finished(task_id)
    everything = (await api("tasks")).json()
    assert [t["id"] for t in everything["tasks"]] == sorted([*ids, failed], reverse=True)
    assert everything["cursor"] is None
    only_failed = (await api("tasks", params={"status": "failed"})).json()["tasks"]
    assert [t["id"] for t in only_failed] == [failed]
    by_plugin = (await api("tasks", params={"plugin": "t_schema", "status": "SUCCESS,FAILED"})).json()["tasks"]
    assert sorted(t["id"] for t in by_plugin) == sorted(ids)
    # keyset pages of 2
    first = (await api("tasks", params={"limit": 2})).json()
    assert len(first["tasks"]) == 2 and first["cursor"] == first["tasks"][-1]["id"]
    second = (await api("tasks", params={"limit": 2, "before": first["cursor"]})).json()
    walked = [t["id"] for t in first["tasks"] + second["tasks"]]
    assert walked == sorted([*ids, failed], reverse=True)


@pytest.mark.parametrize(
    "params, words",
    [({"limit": "0"}, ["limit"]), ({"limit": "5000"}, ["limit"]), ({"limit": "many"}, ["limit"]),
     ({"status": "SLEEPING"}, ["SLEEPING"]), ({"staus": "FAILED"}, ["unknown query parameter", "staus"])],
)
async def test_list_tasks_bad_input(api, params, words):
    """GET tasks with a bad limit, an unknown status or an unknown parameter gives 400."""
    assert_error(await api("tasks", params=params), 400, *words)


async def test_get_unknown_task_is_404(api):
    """GET, DELETE, cancel, logs, stats and export of an unknown task give 404 naming it."""
    for path, method in [((), "GET"), ((), "DELETE"), (("cancel",), "POST"), (("logs",), "GET"),
                         (("logs", "stats"), "GET"), (("logs", "export"), "GET")]:
        response = await api("tasks", "nosuchtask", *path, method=method)
        assert_error(response, 404, "nosuchtask")


async def test_delete_task_removes_its_logs(api, start, finished):
    """DELETE a finished task: 204, then the task, its logs and its rows in task_logs are gone (FR-008)."""
    keep = (await start("t_schema", {"x": 1}))["id"]
    gone = (await start("t_sources", {"n": 20}))["id"]
    await finished(keep)
    await finished(gone)
    response = await api("tasks", gone, method="DELETE")
    assert response.code == 204 and response.body == b""
    assert_error(await api("tasks", gone), 404, gone)
    assert_error(await api("tasks", gone, "logs"), 404, gone)
    count = await api("sql", method="POST", body={"query": f"SELECT count(*) AS n FROM task_logs WHERE task_id = '{gone}'"})
    assert count.json()["rows"] == [[0]]
    others = await api("sql", method="POST", body={"query": f"SELECT count(*) FROM task_logs WHERE task_id = '{keep}'"})
    assert others.json()["rows"] == [[3]]


async def test_delete_running_task_is_409(api, start, gate, finished):
    """DELETE of a running task gives 409 saying to cancel it first; after cancel it can be deleted."""
    name, _event = gate()
    task = (await start("t_wait", {"gate": name}))["id"]
    await until(lambda: _status(api, task, "RUNNING"), what="RUNNING")
    assert_error(await api("tasks", task, method="DELETE"), 409, "cancel", task)
    assert (await api("tasks", task)).code == 200
    await api("tasks", task, "cancel", method="POST")
    await finished(task)
    assert (await api("tasks", task, method="DELETE")).code == 204


async def _status(api, task_id, status):
    return (await api("tasks", task_id)).json()["status"] == status


async def test_cancel_running_then_finished(api, start, gate, finished):
    """POST cancel stops a running task (CANCELLED); cancelling a finished task answers cancelled false."""
    name, _event = gate()
    task = (await start("t_wait", {"gate": name}))["id"]
    await until(lambda: _status(api, task, "RUNNING"), what="RUNNING")
    response = await api("tasks", task, "cancel", method="POST")
    assert response.code == 200 and response.json()["cancelled"] is True
    row = await finished(task)
    assert row["status"] == "CANCELLED"
    again = await api("tasks", task, "cancel", method="POST")
    assert again.code == 200 and again.json() == {"cancelled": False, "task": again.json()["task"]}
    assert again.json()["task"]["status"] == "CANCELLED"


# ---- logs -------------------------------------------------------------------------------------------
async def test_logs_all_and_by_level(api, start, finished):
    """GET logs returns every record in seq order; level=X means X and above."""
    task = await levels_task(start, finished)
    response = await api("tasks", task, "logs")
    body = response.json()
    assert body["task_id"] == task and [r["seq"] for r in body["records"]] == [1, 2, 3, 4, 5, 6, 7]
    first = body["records"][1]
    assert first == {**first, "level": "DEBUG", "source": "plugin", "message": "debug apple", "metadata": {"dashboard_id": 1}}
    assert body["has_more"] is False and body["cursor"] == 7
    assert await seqs(api, task, {"level": "warning"}) == [4, 5, 6]
    assert await seqs(api, task, {"level": "INFO"}) == [1, 3, 4, 5, 6, 7]
    assert await seqs(api, task, {"errors_only": "true"}) == [5, 6]


async def test_logs_by_source_comma_and_repeated(api, start, finished):
    """source takes a comma list or repeated parameters, with the same meaning."""
    task = await levels_task(start, finished)
    assert await seqs(api, task, {"source": "db"}) == [6]
    assert await seqs(api, task, {"source": "db,system"}) == [1, 6, 7]
    assert await seqs(api, task, [("source", "db"), ("source", "system")]) == [1, 6, 7]
    assert await seqs(api, task, [("source", "db,plugin"), ("source", "system"), ("level", "ERROR")]) == [5, 6]


async def test_logs_search_and_meta(api, start, finished):
    """search matches text case-insensitively; meta.KEY=VALUE (the empty VALUE too) and has=KEY (exists),
    nested keys with dots."""
    task = await levels_task(start, finished)
    assert await seqs(api, task, {"search": "BANANA"}) == [3]
    assert await seqs(api, task, {"search": "error"}) == [5, 6]
    assert await seqs(api, task, {"meta.dashboard_id": "12"}) == [5]
    assert await seqs(api, task, {"meta.nested.k": "x"}) == [3]
    assert await seqs(api, task, {"has": "database_uuid"}) == [6]
    assert await seqs(api, task, {"has": "dashboard_id,nested.k"}) == [3]
    assert await seqs(api, task, {"meta.database_uuid": ""}) == []  # the empty string, as everywhere
    assert await seqs(api, task, {"meta.dashboard_id": "12", "search": "apple"}) == []


async def test_logs_range_order_and_keyset_pages(api, start, finished):
    """after/before bound seq; order=desc reverses; limit pages carry cursor and has_more (keyset)."""
    task = (await start("t_sources", {"n": 95}))["id"]
    row = await finished(task)
    total = row["record_count"]
    assert total == 97
    assert await seqs(api, task, {"after": 3, "before": 7}) == [4, 5, 6]
    assert await seqs(api, task, {"level": "WARNING"}) == [i + 1 for i in range(7, 96, 7)]
    assert await seqs(api, task, {"order": "desc", "limit": 3}) == [97, 96, 95]
    walked, params = [], {"limit": 10}
    while True:
        page = (await api("tasks", task, "logs", params=params)).json()
        walked += [r["seq"] for r in page["records"]]
        if not page["has_more"]:
            break
        assert page["cursor"] == page["records"][-1]["seq"]
        params = {"limit": 10, "after": page["cursor"]}
    assert walked == list(range(1, 98))
    backwards, params = [], {"limit": 25, "order": "desc", "source": "superset_api"}
    while True:
        page = (await api("tasks", task, "logs", params=params)).json()
        backwards += [r["seq"] for r in page["records"]]
        if not page["has_more"]:
            break
        params = {**params, "before": page["cursor"]}
    assert backwards == list(range(95, 1, -2))  # superset_api logs even i, which is seq i + 1


async def test_logs_since_until(api, start, finished):
    """since and until (ISO 8601) bound the timestamps."""
    task = await levels_task(start, finished)
    records = (await api("tasks", task, "logs")).json()["records"]
    since = records[2]["timestamp"]
    got = await seqs(api, task, {"since": since})
    assert got[0] == 3 and got[-1] == 7
    assert await seqs(api, task, {"until": since}) == [1, 2]


@pytest.mark.parametrize(
    "params, words",
    [
        ({"level": "LOUD"}, ["LOUD"]),
        ({"meta.bad key!": "1"}, ["metadata key", "bad key!"]),
        ({"meta.": "1"}, ["metadata key"]),
        ({"meta.a..b": "1"}, ["metadata key"]),
        ({"colour": "red"}, ["unknown query parameter", "colour"]),
        ({"after": "-1"}, ["after"]),
        ({"after": "x"}, ["after", "whole number"]),
        ({"before": "0"}, ["before"]),
        ({"limit": "0"}, ["limit"]),
        ({"limit": "1000000"}, ["limit"]),
        ({"order": "sideways"}, ["order", "sideways"]),
        ({"source": ","}, ["source"]),
        ({"since": "yesterday"}, ["since", "ISO 8601"]),
    ],
)
async def test_logs_bad_filters_are_400(api, start, finished, params, words):
    """Every malformed filter gives 400 with a message naming it, on logs, export and stream's twin (REST)."""
    task = (await start("t_schema", {"x": 1}))["id"]
    await finished(task)
    assert_error(await api("tasks", task, "logs", params=params), 400, *words)
    assert_error(await api("tasks", task, "logs", "export", params=params), 400, *words)


@pytest.mark.parametrize("nbtasklog_config", [{"flush_interval": 3600, "flush_size": 1_000_000}])
async def test_logs_include_unflushed_records(api, start, gate):
    """Records still in the write buffer are returned (the REST view does not wait for a flush)."""
    name, event = gate()
    task = (await start("t_sources", {"n": 6, "gate": name, "hold": 4}))["id"]
    await until(lambda: _count(api, task, 5), what="5 records")  # started + 4
    assert (await api("health")).json()["pending"] == 5
    assert await seqs(api, task) == [1, 2, 3, 4, 5]
    assert await seqs(api, task, {"source": "superset_api"}) == [3, 5]
    event.set()


async def _count(api, task, n):
    return len((await api("tasks", task, "logs")).json()["records"]) >= n


# ---- stats and export -------------------------------------------------------------------------------
async def test_stats(api, start, finished):
    """GET logs/stats counts by level and by source, lists metadata keys and the total."""
    task = await levels_task(start, finished)
    stats = (await api("tasks", task, "logs", "stats")).json()
    assert stats["levels"] == {"INFO": 3, "DEBUG": 1, "WARNING": 1, "ERROR": 2}
    assert stats["sources"] == {"system": 2, "plugin": 4, "db": 1}
    assert {"dashboard_id", "nested", "database_uuid"} <= set(stats["metadata_keys"])
    assert stats["total"] == 7


async def test_export_jsonl_csv_parquet_with_filters(api, start, finished):
    """logs/export gives jsonl, csv and parquet with the same records as logs, filters applied."""
    task = await levels_task(start, finished)
    response = await api("tasks", task, "logs", "export", params={"format": "jsonl"})
    assert response.code == 200 and response.headers["Content-Type"] == "application/x-ndjson"
    assert f"task-{task}.jsonl" in response.headers["Content-Disposition"]
    lines = [json.loads(line) for line in response.body.decode().splitlines()]
    assert lines == (await api("tasks", task, "logs")).json()["records"]

    filtered = await api("tasks", task, "logs", "export", params={"format": "jsonl", "level": "ERROR", "source": "db"})
    assert [json.loads(line)["message"] for line in filtered.body.decode().splitlines()] == ["db error elderberry"]

    response = await api("tasks", task, "logs", "export", params={"format": "csv", "search": "a", "level": "INFO"})
    assert response.headers["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.body.decode())))
    assert [int(r["seq"]) for r in rows] == await seqs(api, task, {"search": "a", "level": "INFO"})
    assert rows[0].keys() == {"task_id", "seq", "timestamp", "level", "source", "message", "metadata"}
    banana = next(r for r in rows if r["message"] == "info banana")
    assert json.loads(banana["metadata"]) == {"dashboard_id": 2, "nested": {"k": "x"}}

    response = await api("tasks", task, "logs", "export", params={"format": "parquet", "meta.dashboard_id": "12"})
    table = pq.read_table(pa.BufferReader(response.body))
    assert table.column_names == ["task_id", "seq", "timestamp", "level", "source", "message", "metadata"]
    assert table.column("seq").to_pylist() == [5] and table.column("message").to_pylist() == ["error durian"]
    whole = pq.read_table(pa.BufferReader((await api("tasks", task, "logs", "export", params={"format": "parquet"})).body))
    assert whole.column("seq").to_pylist() == [1, 2, 3, 4, 5, 6, 7]
    limited = await api("tasks", task, "logs", "export", params={"format": "jsonl", "limit": 2, "order": "desc"})
    assert [json.loads(x)["seq"] for x in limited.body.decode().splitlines()] == [7, 6]


async def test_export_empty_and_bad_format(api, start, finished):
    """An export that matches nothing is a valid empty file; an unknown format gives 400."""
    task = await levels_task(start, finished)
    empty = await api("tasks", task, "logs", "export", params={"format": "parquet", "search": "zzz"})
    assert pq.read_table(pa.BufferReader(empty.body)).num_rows == 0
    csv_empty = await api("tasks", task, "logs", "export", params={"format": "csv", "search": "zzz"})
    assert csv_empty.code == 200
    assert_error(await api("tasks", task, "logs", "export", params={"format": "xml"}), 400, "format", "xml")


# ---- settings ---------------------------------------------------------------------------------------
async def test_settings_get_and_put_take_effect_at_once(api, start, finished):
    """GET settings shows the three settings; PUT changes task_log_level for the next task without restart (SC-005)."""
    settings = (await api("settings")).json()
    assert settings == {"log_level": "INFO", "task_log_level": "INFO", "belief_scope_enabled": True, "writable": True}
    response = await api("settings", method="PUT", body={"task_log_level": "warning", "belief_scope_enabled": "false"})
    assert response.code == 200
    assert response.json() == {"log_level": "INFO", "task_log_level": "WARNING", "belief_scope_enabled": False, "writable": True}
    assert (await api("settings")).json()["task_log_level"] == "WARNING"
    task = (await start("t_levels"))["id"]
    await finished(task)
    levels = [r["level"] for r in (await api("tasks", task, "logs")).json()["records"]]
    assert levels == ["WARNING", "ERROR", "ERROR"]
    await api("settings", method="PUT", body={"task_log_level": "DEBUG"})
    task = (await start("t_levels"))["id"]
    await finished(task)
    assert len((await api("tasks", task, "logs")).json()["records"]) == 7


@pytest.mark.parametrize(
    "body, words",
    [({"log_level": "LOUD"}, ["log_level", "LOUD"]), ({"colour": "red"}, ["unknown setting", "colour"]),
     ({"belief_scope_enabled": "maybe"}, ["belief_scope_enabled"]), ([1], ["JSON object"]), ("{", ["JSON"])],
)
async def test_settings_bad_input(api, body, words):
    """PUT settings with a bad value, an unknown setting or a non-object gives 400 and changes nothing."""
    raw = body if isinstance(body, str) else json.dumps(body)
    assert_error(await api("settings", method="PUT", body=raw), 400, *words)
    assert (await api("settings")).json()["log_level"] == "INFO"


# ---- sql --------------------------------------------------------------------------------------------
async def test_sql_json_and_arrow(api, start, finished):
    """POST sql answers rows as JSON (columns, rows, truncated) or as an Arrow IPC stream."""
    task = await levels_task(start, finished)
    query = f"SELECT level, count(*) AS n FROM task_logs WHERE task_id = '{task}' GROUP BY level ORDER BY level"
    body = (await api("sql", method="POST", body={"query": query})).json()
    assert [c["name"] for c in body["columns"]] == ["level", "n"]
    assert body["rows"] == [["DEBUG", 1], ["ERROR", 2], ["INFO", 3], ["WARNING", 1]] and body["truncated"] is False
    response = await api("sql", method="POST", body={"query": query, "format": "arrow"})
    assert response.headers["Content-Type"] == "application/vnd.apache.arrow.stream"
    assert response.headers["X-Nbtasklog-Truncated"] == "false"
    table = pa.ipc.open_stream(response.body).read_all()
    assert table.to_pydict() == {"level": ["DEBUG", "ERROR", "INFO", "WARNING"], "n": [1, 2, 3, 1]}
    tasks = (await api("sql", method="POST", body={"query": "SELECT id, status FROM tasks"})).json()
    assert tasks["rows"] == [[task, "SUCCESS"]]


async def test_sql_row_limit(api):
    """max_rows cuts the result and says so (JSON and Arrow)."""
    body = (await api("sql", method="POST", body={"query": "SELECT * FROM range(100)", "max_rows": 10})).json()
    assert len(body["rows"]) == 10 and body["truncated"] is True
    response = await api("sql", method="POST", body={"query": "SELECT * FROM range(100)", "max_rows": 7, "format": "arrow"})
    assert pa.ipc.open_stream(response.body).read_all().num_rows == 7
    assert response.headers["X-Nbtasklog-Truncated"] == "true"


@pytest.mark.parametrize("nbtasklog_config", [{"sql_timeout": 0.2}])
async def test_sql_timeout(api):
    """A query over the time limit is stopped with 400 saying so."""
    query = "SELECT count(*) FROM range(1000000000) a, range(1000) b WHERE a.range * b.range = 7"
    assert_error(await api("sql", method="POST", body={"query": query}), 400, "time limit")


def strict_json(body: bytes) -> Any:
    """JSON as the standard has it (no NaN or Infinity), with every digit of a number kept."""
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(body, parse_float=Decimal, parse_constant=refuse)


async def test_sql_keeps_repeated_columns_special_floats_and_every_digit(api):
    """Every column in order (repeated names too); NaN and infinities as strings, so the answer is valid JSON;
    HUGEINT, UBIGINT and DECIMAL as JSON numbers with all their digits. Arrow keeps the repeated column too."""
    query = ("SELECT 1 AS a, 2 AS a, 'NaN'::DOUBLE AS n, 'inf'::DOUBLE AS i, '-inf'::FLOAT AS m, "
             "170141183460469231731687303715884105727::HUGEINT AS h, 18446744073709551615::UBIGINT AS u, "
             "12345678901234567890.123456789::DECIMAL(38, 9) AS d, [1.5, 'NaN'::DOUBLE] AS l")
    response = await api("sql", method="POST", body={"query": query})
    assert response.code == 200, response
    body = strict_json(response.body)
    assert [c["name"] for c in body["columns"]] == ["a", "a", "n", "i", "m", "h", "u", "d", "l"]
    assert body["rows"] == [[1, 2, "NaN", "Infinity", "-Infinity", 2**127 - 1, 2**64 - 1,
                             Decimal("12345678901234567890.123456789"), [Decimal("1.5"), "NaN"]]]
    response = await api("sql", method="POST", body={"query": query, "format": "arrow"})
    table = pa.ipc.open_stream(response.body).read_all()
    assert table.column_names == ["a", "a", "n", "i", "m", "h", "u", "d", "l"] and table.column(1).to_pylist() == [2]


async def test_sql_answers_every_duckdb_type_in_json_and_arrow(api):
    """test_all_types() (each DuckDB type at its extremes, and NULL): 200 and valid JSON, values exact; and Arrow."""
    query = "SELECT * EXCLUDE (medium_enum, large_enum) FROM test_all_types()"
    response = await api("sql", method="POST", body={"query": query})
    assert response.code == 200, response
    body = strict_json(response.body)
    names = [c["name"] for c in body["columns"]]
    low, high, null = (dict(zip(names, row)) for row in body["rows"])
    assert set(null.values()) == {None}
    assert (low["hugeint"], high["hugeint"], high["uhugeint"]) == (-(2**127), 2**127 - 1, str(2**128 - 1))
    assert high["timestamp_tz"] == "294247-01-10T04:00:54.775806+00:00" and high["date"] == "5881580-07-10"
    assert high["timestamptz_array"] == ["1970-01-01T00:00:00+00:00", "infinity", "-infinity", None,
                                         "2022-05-12T23:23:45+00:00"]
    assert high["time_tz"] == "24:00:00-15:59:59" and high["interval"] == {"months": 999, "days": 999,
                                                                            "nanoseconds": 999999999000}
    assert high["struct"] == {"a": 42, "b": "🦆🦆🦆🦆🦆🦆"} and high["map"] == [["key1", "🦆🦆🦆🦆🦆🦆"], ["key2", "goose"]]
    assert high["float"] == Decimal("3.4028234663852886e+38") and high["varchar"] == "goo\x00se"
    response = await api("sql", method="POST", body={"query": query, "format": "arrow"})
    assert response.code == 200 and pa.ipc.open_stream(response.body).read_all().num_rows == 3


@pytest.mark.parametrize("nbtasklog_config", [{"sql_timeout": 5.0}])
async def test_long_sql_queries_neither_stall_the_api_nor_queue_up(api, start, finished):
    """While as many long queries run as the server allows, GET logs answers at once; more queries are refused with
    429 at once, instead of waiting for a thread; the long ones end at the time limit."""
    task = await levels_task(start, finished)
    long = {"query": "SELECT count(*) FROM range(1000000000) a, range(1000000) b WHERE a.range * b.range = 7"}
    queries = [asyncio.ensure_future(api("sql", method="POST", body=long)) for _ in range(SQL_CONCURRENCY + 2)]
    await until(lambda: sum(q.done() for q in queries) >= 2, what="the queries past the limit answered")
    refused = [q.result() for q in queries if q.done()]
    running = [q for q in queries if not q.done()]
    assert len(refused) == 2 and len(running) == SQL_CONCURRENCY
    for response in refused:
        assert_error(response, 429, f"{SQL_CONCURRENCY} analyst queries are running")
    for _ in range(5):
        assert await seqs(api, task) == [1, 2, 3, 4, 5, 6, 7]
    assert not any(q.done() for q in running)  # every read above was answered while the long queries ran
    for response in await asyncio.gather(*running):
        assert_error(response, 400, "time limit")


@pytest.mark.parametrize(
    "body, words",
    [({}, ["query"]), ({"query": "  "}, ["query"]), ({"query": 5}, ["query"]),
     ({"query": "SELECT 1", "format": "xml"}, ["format", "xml"]),
     ({"query": "SELECT 1", "max_rows": "lots"}, ["max_rows"]),
     ({"query": "SELEC 1"}, ["syntax"]), ({"query": "SELECT 1; SELECT 2"}, ["exactly one"]),
     ({"query": "SELECT * FROM no_such_table"}, ["no_such_table"])],
)
async def test_sql_bad_input(api, body, words):
    """POST sql without a query, with a bad format or max_rows, bad SQL or two statements gives 400."""
    assert_error(await api("sql", method="POST", body=body), 400, *words)


# ---- health, cleanup, openapi -----------------------------------------------------------------------
async def test_health(api, start, finished):
    """GET health reports the flusher: pending, spilled, last error, last flush, database, version."""
    task = (await start("t_sources", {"n": 10}))["id"]
    await finished(task)

    async def flushed():
        health = (await api("health")).json()
        return health if health["flushed_total"] >= 12 and health["pending"] == 0 else None

    health = await until(flushed, what="a flush")
    assert health["spilled"] == 0 and health["last_error"] is None and health["database_available"] is True
    assert health["last_flush_at"] and health["database"].startswith("duckdb:///") and health["version"]


async def test_cleanup(api, start, gate, finished):
    """POST cleanup deletes finished tasks older than the age with their logs; running ones stay."""
    done = (await start("t_schema", {"x": 1}))["id"]
    await finished(done)
    name, event = gate()
    running = (await start("t_wait", {"gate": name}))["id"]
    await until(lambda: _status(api, running, "RUNNING"), what="RUNNING")
    kept = await api("cleanup", method="POST", body={"older_than": "1d"})
    assert kept.code == 200 and kept.json() == {"deleted": []}
    response = await api("cleanup", method="POST", body={"older_than": "0s"})
    assert response.json() == {"deleted": [done]}
    assert_error(await api("tasks", done), 404)
    assert (await api("tasks", running)).json()["status"] == "RUNNING"
    event.set()


@pytest.mark.parametrize("body, words", [({}, ["older_than"]), ({"older_than": 5}, ["older_than"]),
                                          ({"older_than": "soon"}, ["duration", "soon"])])
async def test_cleanup_bad_input(api, body, words):
    """POST cleanup without a valid age gives 400."""
    assert_error(await api("cleanup", method="POST", body=body), 400, *words)


async def test_openapi_document_served(api):
    """GET openapi.json serves the OpenAPI document."""
    response = await api("openapi.json")
    assert response.code == 200 and response.headers["Content-Type"].startswith("application/json")
    document = response.json()
    assert document["openapi"].startswith("3.") and "/nbtasklog/api/tasks" in document["paths"]


# ---- ingest (records of tasks run in kernels) -------------------------------------------------------
async def test_ingest_arrow_batches(api):
    """POST ingest takes an Arrow IPC stream with task rows in its metadata; task and records become readable."""
    task_id = "kernel-task-1"
    body = ipc_stream([task_row(task_id)], kernel_records(task_id, 5))
    response = await api("ingest", method="POST", body=body, headers=ARROW)
    assert response.code == 200 and response.json() == {"tasks": 1, "records": 5, "duplicates": 0, "refused": [], "cancel": []}
    row = (await api("tasks", task_id)).json()
    assert row["status"] == "RUNNING" and row["plugin"] == "notebook_fn" and row["params"] == {"a": 1}
    done = task_row(task_id, "SUCCESS", finished_at="2026-01-01T00:00:01+00:00", record_count=8)
    await api("ingest", method="POST", body=ipc_stream([done], kernel_records(task_id, 3, first=6)), headers=ARROW)
    assert await seqs(api, task_id) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert await seqs(api, task_id, {"meta.dashboard_id": "7"}) == [7]
    assert await seqs(api, task_id, {"source": "kernel"}) == [1, 3, 5, 7]
    assert (await api("tasks", task_id)).json()["status"] == "SUCCESS"
    # records alone (no task rows) for a task still running
    other = "kernel-task-1b"
    await api("ingest", method="POST", body=ipc_stream([task_row(other)], kernel_records(other, 2)), headers=ARROW)
    more = await api("ingest", method="POST", body=ipc_stream([], kernel_records(other, 1, first=3)), headers=ARROW)
    assert more.json() == {"tasks": 0, "records": 1, "duplicates": 0, "refused": [], "cancel": []}
    assert await seqs(api, other) == [1, 2, 3]


async def test_ingest_only_appends_to_the_tasks_it_leases(api, engine):
    """A retried batch adds nothing twice; a task that ended takes no new records and keeps its row; a
    task this server ran keeps its log even once the server no longer runs it (as after a restart)."""
    task_id = "kernel-task-lease"
    first = ipc_stream([task_row(task_id)], kernel_records(task_id, 5))
    await api("ingest", method="POST", body=first, headers=ARROW)
    again = await api("ingest", method="POST", body=first, headers=ARROW)  # the answer was lost: sent again
    assert again.json() == {"tasks": 1, "records": 0, "duplicates": 5, "refused": [], "cancel": []}
    done = task_row(task_id, "SUCCESS", finished_at="2026-01-01T00:00:01+00:00", record_count=7)
    last = ipc_stream([done], kernel_records(task_id, 2, first=6))
    assert (await api("ingest", method="POST", body=last, headers=ARROW)).json()["records"] == 2
    retried = await api("ingest", method="POST", body=last, headers=ARROW)
    assert retried.json() == {"tasks": 1, "records": 0, "duplicates": 2, "refused": [], "cancel": []}
    late = await api("ingest", method="POST", body=ipc_stream([], kernel_records(task_id, 1, first=8)), headers=ARROW)
    assert late.json()["refused"] == [{"task_id": task_id, "reason": f"task {task_id} has ended with 7 records; no more can be added", "records": 1}]
    failed = task_row(task_id, "FAILED", finished_at="2026-01-01T00:00:02+00:00")
    rewrite = await api("ingest", method="POST", body=ipc_stream([failed]), headers=ARROW)
    assert rewrite.json()["refused"][0]["reason"].startswith(f"task {task_id} ended SUCCESS")
    assert await seqs(api, task_id) == [1, 2, 3, 4, 5, 6, 7]
    assert (await api("tasks", task_id)).json()["status"] == "SUCCESS"

    server_task = engine.run_task("t_sources", {"n": 20})
    await off_loop(server_task.wait, 15)
    await off_loop(engine.flush)
    engine.runner.forget(server_task.id)  # what a restarted server knows of it: only its stored row
    attack = ipc_stream([dict(task_row(server_task.id, "FAILED"), record_count=3)], kernel_records(server_task.id, 3))
    answer = (await api("ingest", method="POST", body=attack, headers=ARROW)).json()
    assert answer["records"] == 0 and answer["refused"][0]["task_id"] == server_task.id
    row = (await api("tasks", server_task.id)).json()
    assert (row["status"], row["record_count"]) == ("SUCCESS", 22)
    assert await seqs(api, server_task.id) == list(range(1, 23))


def restarted(engine) -> None:
    """What the server's next life does at its start: its earlier life is a dead owner, whose tasks become INTERRUPTED."""
    new_life = {"id": "next-life", "kind": "server", "host": "h", "pid": 0, "started_at": datetime.now(timezone.utc)}
    engine.store.recover(new_life, engine.lease, dead_owners=[engine.instance_id])


async def test_ingest_takes_up_an_interrupted_task_its_kernel_still_sends(api, engine):
    """A kernel's task marked INTERRUPTED (its lease ran out, or the server restarted) goes on when the
    kernel that runs it is heard again."""
    task_id = "kernel-task-back"
    await api("ingest", method="POST", body=ipc_stream([task_row(task_id)], kernel_records(task_id, 3)), headers=ARROW)
    await off_loop(engine.flush)
    engine._leases.clear()  # a server restarted since: it holds no lease
    await off_loop(restarted, engine)
    assert (await api("tasks", task_id)).json()["status"] == "INTERRUPTED"
    back = await api("ingest", method="POST", body=ipc_stream([task_row(task_id)], kernel_records(task_id, 2, first=4)), headers=ARROW)
    assert back.json()["records"] == 2
    assert (await api("tasks", task_id)).json()["status"] == "RUNNING"
    assert await seqs(api, task_id) == [1, 2, 3, 4, 5]


async def test_ingest_through_remote_store(api, jp_serverapp, jp_http_port, jp_base_url):
    """RemoteStore (the kernel side) writes and reads through the live server's REST API."""
    connection = ServerConnection(f"http://127.0.0.1:{jp_http_port}{jp_base_url}", jp_serverapp.identity_provider.token)
    remote = RemoteStore(connection)
    loop = asyncio.get_running_loop()
    records = kernel_records("kernel-task-2", 4)
    row = dict(task_row("kernel-task-2", "SUCCESS"), created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    await loop.run_in_executor(None, lambda: remote.write([row], records_to_arrow(records)))
    got = await loop.run_in_executor(None, remote.query_logs, "kernel-task-2", make_filter(source="kernel"))
    assert [r.seq for r in got] == [1, 3]
    since = records[2].timestamp  # RemoteStore must send it as ISO 8601 (to_params gives since_us)
    got = await loop.run_in_executor(None, remote.query_logs, "kernel-task-2", make_filter(since=since))
    assert [r.seq for r in got] == [3, 4]
    stats = await loop.run_in_executor(None, remote.log_stats, "kernel-task-2")
    assert stats["sources"] == {"kernel": 2, "plugin": 2}
    assert (await loop.run_in_executor(None, remote.get_task, "kernel-task-2"))["status"] == "SUCCESS"


async def test_ingest_bad_input(api, start, gate):
    """ingest refuses a body that is not Arrow, wrong columns, bad task rows and writes to a server-run task."""
    assert_error(await api("ingest", method="POST", body=b"not arrow", headers=ARROW), 400, "Arrow IPC")
    wrong = pa.table({"task_id": ["k"], "seq": [1]})
    assert_error(await api("ingest", method="POST", body=ipc_stream([], table=wrong), headers=ARROW), 400, "columns")
    for row, words in [({"plugin": "p"}, ["id"]), (task_row("k", "NAPPING"), ["status"]),
                       (task_row("k", colour="red"), ["colour"]), (task_row("k", created_at="noon"), ["created_at"]),
                       ({k: v for k, v in task_row("k").items() if k != "created_at"}, ["created_at"]), ("row", ["id"]),
                       (task_row("k" * 65), ["task id", "64"]), (task_row("a/b"), ["task id"]),
                       (task_row("k", params="not json"), ["params"]), (task_row("k", params=[1]), ["params"]),
                       (task_row("k", error=5), ["error"]), (task_row("k", log_level="LOUD"), ["log_level"]),
                       (task_row("k", record_count="many"), ["record_count"]), (task_row("k", progress=True), ["progress"]),
                       (task_row("k", progress=2), ["progress"]), (task_row("k", progress=float("nan")), ["NaN"]),
                       (task_row("k", params={"x": float("inf")}), ["Infinity"])]:
        assert_error(await api("ingest", method="POST", body=ipc_stream([row]), headers=ARROW), 400, *words)
    bad_meta = LOG_ARROW_SCHEMA.empty_table().replace_schema_metadata({"nbtasklog.tasks": "{oops"})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, bad_meta.schema) as writer:
        writer.write_table(bad_meta)
    assert_error(await api("ingest", method="POST", body=sink.getvalue().to_pybytes(), headers=ARROW), 400)
    name, event = gate()
    own = (await start("t_wait", {"gate": name}))["id"]
    response = await api("ingest", method="POST", body=ipc_stream([], kernel_records(own, 1, first=50)), headers=ARROW)
    assert response.code == 200
    assert response.json()["refused"] == [{"task_id": own, "records": 1,
                                           "reason": f"task {own} is run by this server; its log cannot be written from outside"}]
    unknown = await api("ingest", method="POST", body=ipc_stream([], kernel_records("never-seen", 1)), headers=ARROW)
    assert unknown.json()["refused"][0]["reason"].startswith("unknown task never-seen")
    event.set()


async def test_ingest_redacts_secrets_a_kernel_did_not(api, engine):
    """Records and rows from a kernel (perhaps an older version, or one without this server's patterns)
    are redacted by the server before they are stored or streamed; they are normalized too."""
    from nbtasklog.redact import MARKER

    task_id = "kernel-secrets"
    row = task_row(task_id, params={"password": "hunter2", "n": 1}, error="login failed: password=hunter2")
    record = LogRecord(task_id, 1, datetime_to_us(datetime.now(timezone.utc)), "INFO", "kernel",
                       "using token=abc123def456", json.dumps({"api_key": "k-1", "deep": {"secret": [1, 2]}}))
    answer = await api("ingest", method="POST", body=ipc_stream([row], [record]), headers=ARROW)
    assert answer.json()["records"] == 1
    stored = (await api("tasks", task_id, "logs")).json()["records"][0]
    assert stored["message"] == f"using token={MARKER}"
    assert stored["metadata"] == {"api_key": MARKER, "deep": {"secret": MARKER}}
    info = (await api("tasks", task_id)).json()
    assert info["params"] == {"password": MARKER, "n": 1} and "hunter2" not in info["error"]


async def test_ingest_refuses_records_the_database_would_refuse_and_a_retry_still_lands(api):
    """A record without a source is a 400 (not a 500 that moved the lease), so the kernel's retry of the
    good records is taken, not answered as duplicates."""
    task_id = "kernel-null"
    good = kernel_records(task_id, 3)
    table = records_to_arrow(good).set_column(4, "source", pa.array(["kernel", None, "kernel"], pa.string()))
    refused = await api("ingest", method="POST", body=ipc_stream([task_row(task_id)], table=table), headers=ARROW)
    assert_error(refused, 400, "source")
    retried = await api("ingest", method="POST", body=ipc_stream([task_row(task_id)], good), headers=ARROW)
    assert retried.json() == {"tasks": 1, "records": 3, "duplicates": 0, "refused": [], "cancel": []}


async def test_ingest_takes_what_an_ended_task_still_lacks_and_refuses_the_rest(api):
    """The final row came first (it travels with the first part of a split batch): records up to its count
    are still taken, later ones refused."""
    task_id = "kernel-final-first"
    done = task_row(task_id, "SUCCESS", finished_at="2026-01-01T00:00:01+00:00", record_count=7)
    await api("ingest", method="POST", body=ipc_stream([done], kernel_records(task_id, 6)), headers=ARROW)
    answer = (await api("ingest", method="POST", body=ipc_stream([], kernel_records(task_id, 2, first=7)), headers=ARROW)).json()
    assert answer["records"] == 1 and answer["refused"][0]["records"] == 1
    assert await seqs(api, task_id) == [1, 2, 3, 4, 5, 6, 7]


async def test_an_interrupted_task_is_taken_up_only_by_the_same_task(api, engine):
    """A row naming another plugin or creation time does not take up an INTERRUPTED task."""
    task_id = "kernel-other"
    await api("ingest", method="POST", body=ipc_stream([task_row(task_id)], kernel_records(task_id, 2)), headers=ARROW)
    await off_loop(engine.flush)
    engine._leases.clear()
    await off_loop(restarted, engine)
    evil = dict(task_row(task_id, "SUCCESS"), plugin="evil")
    answer = (await api("ingest", method="POST", body=ipc_stream([evil]), headers=ARROW)).json()
    assert answer["refused"][0]["reason"].startswith(f"task {task_id} is another task")
    row = (await api("tasks", task_id)).json()
    assert (row["plugin"], row["status"]) == ("notebook_fn", "INTERRUPTED")
