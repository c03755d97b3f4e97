"""Talking to a Jupyter server that runs the nbtasklog extension: finding it, and RemoteStore.

RemoteStore has the Store's methods, spoken over the server's REST API, so the same Engine,
WriteBuffer (batching, retry, spill) and Task handle work in a kernel or the CLI: records of
tasks run in the kernel are shipped to the server's ingest endpoint in Arrow batches.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import make_url

from .filter import LogFilter
from .record import LogRecord, datetime_to_us, us_to_datetime
from .store.store import SQLError

API = "nbtasklog/api"


class ServerError(RuntimeError):
    """The server answered with an error; `status` is the HTTP status, the message its explanation."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class ServerConnection:
    """Base URL (with the server's base_url) and token of a Jupyter server."""

    url: str
    token: str = ""
    timeout: float = 30.0

    def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                body: bytes | None = None, content_type: str = "application/json") -> tuple[bytes, dict[str, str]]:
        """One HTTP request; returns (body, headers). Raises ServerError for an error answer and
        ConnectionError when the server cannot be reached."""
        url = self.url.rstrip("/") + "/" + API + "/" + path
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        request = urllib.request.Request(url, data=body, method=method)
        if self.token:
            request.add_header("Authorization", f"token {self.token}")
        if body is not None:
            request.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.read(), dict(response.headers)
        except urllib.error.HTTPError as error:
            text = error.read().decode("utf-8", "replace")
            try:
                message = json.loads(text).get("message") or text
            except ValueError:
                message = text or error.reason
            raise ServerError(error.code, str(message)) from None
        except (urllib.error.URLError, OSError) as error:
            raise ConnectionError(f"cannot reach the nbtasklog server at {self.url}: {getattr(error, 'reason', error)}") from None

    def get_json(self, path: str, **params: Any) -> Any:
        return json.loads(self.request("GET", path, params=params or None)[0])

    def send_json(self, method: str, path: str, value: Any) -> Any:
        data, _ = self.request(method, path, body=json.dumps(value).encode())
        return json.loads(data) if data else None

    def alive(self) -> dict[str, Any] | None:
        """The server's nbtasklog health, or None when it does not answer as an nbtasklog server."""
        try:
            return self.get_json("health")
        except (ServerError, ConnectionError, ValueError):
            return None


def discover_server(database: str | None = None) -> ServerConnection | None:
    """The nbtasklog server this process should talk to, if there is one.

    1. NBTASKLOG_SERVER_URL (and NBTASKLOG_SERVER_TOKEN);
    2. the Jupyter server that started this process (a kernel's parent);
    3. with `database`: any running Jupyter server whose nbtasklog store is that database (the CLI).
    """
    if os.environ.get("NBTASKLOG_SERVER_URL"):
        return ServerConnection(os.environ["NBTASKLOG_SERVER_URL"], os.environ.get("NBTASKLOG_SERVER_TOKEN", ""))
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    servers = list(list_running_servers())
    parent = os.getppid()
    for info in servers:
        if info.get("pid") == parent:
            connection = ServerConnection(info["url"], info.get("token", ""))
            if connection.alive() is not None:
                return connection
    if database is not None:
        wanted = str(make_url(_as_url(database)))
        for info in servers:
            connection = ServerConnection(info["url"], info.get("token", ""), timeout=5.0)
            health = connection.alive()
            if health is not None and health.get("database") == wanted:
                return connection
    return None


def _as_url(database: str) -> str:
    from .store.store import database_url

    return database_url(database).render_as_string(hide_password=True)


def _record(item: Mapping[str, Any]) -> LogRecord:
    metadata = item.get("metadata")
    return LogRecord(
        item["task_id"], item["seq"], datetime_to_us(datetime.fromisoformat(item["timestamp"])),
        item["level"], item["source"], item["message"],
        None if metadata is None else json.dumps(metadata, ensure_ascii=False, separators=(",", ":")),
    )


def _task(item: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(item)
    for key in ("created_at", "started_at", "finished_at"):
        if row.get(key):
            row[key] = datetime.fromisoformat(row[key])
    return row


class RemoteStore:
    """The Store interface over a server's REST API (see store/store.py for what each method means)."""

    is_duckdb = False

    def __init__(self, connection: ServerConnection) -> None:
        self.connection = connection
        self.url = make_url("nbtasklog+" + connection.url.rstrip("/"))

    def reset(self) -> None:
        """Nothing to drop: every call is its own HTTP request."""

    close = reset

    def write_settings(self, values: Mapping[str, str]) -> None:
        """Change the server's settings now (an admin's change must not wait for a flush)."""
        try:
            self.connection.send_json("PUT", "settings", dict(values))
        except ServerError as error:
            if error.status == 403:
                raise PermissionError(f"the server does not allow you to change settings: {error}") from None
            raise ValueError(str(error)) from None

    def write(self, task_rows: Iterable[Mapping[str, Any]] = (), batch: pa.Table | None = None,
              settings: Mapping[str, str] | None = None) -> None:
        if settings:
            self.connection.send_json("PUT", "settings", dict(settings))
        rows = [{k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()} for row in task_rows]
        if not rows and (batch is None or batch.num_rows == 0):
            return
        from .store.store import LOG_ARROW_SCHEMA

        table = batch if batch is not None else LOG_ARROW_SCHEMA.empty_table()
        table = table.replace_schema_metadata({"nbtasklog.tasks": json.dumps(rows)})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        self.connection.request("POST", "ingest", body=sink.getvalue().to_pybytes(),
                                content_type="application/vnd.apache.arrow.stream")

    def query_logs(self, task_id: str, flt: LogFilter) -> list[LogRecord]:
        params = flt.to_params()
        for name in ("since", "until"):  # to_params gives microseconds; the REST API takes ISO 8601
            if f"{name}_us" in params:
                params[name] = us_to_datetime(int(params.pop(f"{name}_us"))).isoformat()
        params.setdefault("limit", str(flt.limit or 100_000))
        records: list[LogRecord] = []
        while True:  # the server caps a page; walk the pages up to the limit
            try:
                page = self.connection.get_json(f"tasks/{task_id}/logs", **params)
            except ServerError as error:
                if error.status == 404:  # a task run here whose first batch has not arrived yet
                    return records
                raise
            records.extend(_record(item) for item in page["records"])
            if not page["has_more"] or (flt.limit is not None and len(records) >= flt.limit) or not page["records"]:
                return records[: flt.limit] if flt.limit is not None else records
            key = "before" if flt.order == "desc" else "after"
            params[key] = str(page["cursor"])

    def log_stats(self, task_id: str) -> dict[str, Any]:
        try:
            stats = self.connection.get_json(f"tasks/{task_id}/logs/stats")
        except ServerError as error:
            if error.status == 404:  # a task run here whose first batch has not arrived yet
                return {"levels": {}, "sources": {}, "metadata_keys": []}
            raise
        stats.pop("total", None)
        return stats

    def get_task(self, task_id: str) -> dict[str, Any] | None:
        try:
            return _task(self.connection.get_json(f"tasks/{task_id}"))
        except ServerError as error:
            if error.status == 404:
                return None
            raise

    def list_tasks(self, status: Iterable[str] | None = None, plugin: str | None = None,
                   before_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": min(limit, 1000)}
        if status:
            params["status"] = ",".join(status)
        if plugin:
            params["plugin"] = plugin
        if before_id:
            params["before"] = before_id
        return [_task(t) for t in self.connection.get_json("tasks", **params)["tasks"]]

    def delete_tasks(self, task_ids: list[str]) -> int:
        for task_id in task_ids:
            self.connection.request("DELETE", f"tasks/{task_id}")
        return len(task_ids)

    def cleanup(self, older_than: str) -> list[str]:
        return self.connection.send_json("POST", "cleanup", {"older_than": older_than})["deleted"]

    def mark_interrupted(self, now: datetime) -> list[str]:
        """The server marks its own tasks at its start; a client has nothing to mark."""
        return []

    def load_settings(self) -> dict[str, str]:
        values = self.connection.get_json("settings")
        values.pop("writable", None)
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}

    def sql(self, query: str, max_rows: int, timeout: float) -> tuple[pa.Table, bool]:
        try:
            data, headers = self.connection.request(
                "POST", "sql", body=json.dumps({"query": query, "format": "arrow", "max_rows": max_rows}).encode())
        except ServerError as error:
            if error.status == 400:
                raise SQLError(str(error)) from None
            raise
        table = pa.ipc.open_stream(data).read_all()
        truncated = {k.lower(): v for k, v in headers.items()}.get("x-nbtasklog-truncated") == "true"
        return table, truncated

    # Server-side task control (tasks run by the server, not by this process).
    def submit(self, plugin: str, params: dict[str, Any], log_level: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"plugin": plugin, "params": params}
        if log_level is not None:
            body["log_level"] = log_level
        return _task(self.connection.send_json("POST", "tasks", body))

    def cancel(self, task_id: str) -> bool:
        return bool(self.connection.send_json("POST", f"tasks/{task_id}/cancel", {})["cancelled"])

    def plugins(self) -> list[dict[str, Any]]:
        return self.connection.get_json("plugins")["plugins"]
