"""LogStore: what an engine and its write buffer ask of a store, which Store (a database this process
owns) and RemoteStore (the Jupyter server that owns one) both answer; tests/server/test_store_parity.py
runs the same calls on both."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa
from sqlalchemy.engine import URL

from ..filter import LogFilter
from ..record import LogRecord


@runtime_checkable
class LogStore(Protocol):
    url: URL  # where the records live (for people and for the spill directory's name)
    gil_bound_writes: bool  # the client takes the GIL between a write's steps: write in short GIL turns
    shared: bool  # other processes write and read it at the same time (PostgreSQL): they list tasks too

    def write(self, task_rows: Iterable[Mapping[str, Any]] = (), batch: pa.Table | None = None,
              settings: Mapping[str, str] | None = None, *, only_new: bool = False,
              row_modes: Mapping[str, str] | None = None) -> list[str]:
        """Task rows, settings and one batch of records, all or nothing; `only_new` leaves out records
        already stored (a batch that may have been written before). Returns the ids of task rows the
        store refused (Store.write: the task is no longer the writer's)."""

    def query_logs(self, task_id: str, flt: LogFilter) -> list[LogRecord]: ...
    def log_stats(self, task_id: str) -> dict[str, Any]: ...
    def get_task(self, task_id: str) -> dict[str, Any] | None: ...
    def list_tasks(self, status: Iterable[str] | None = None, plugin: str | None = None,
                   before_id: str | None = None, limit: int = 100, user: str | None = None) -> list[dict[str, Any]]: ...
    def delete_tasks(self, task_ids: list[str]) -> int:
        """Delete these tasks with their records; returns how many of them there were."""

    def load_settings(self) -> dict[str, str]:
        """The stored settings by name, as text (a server's answer names every setting, its defaults
        included: SettingsManager.load reads both alike)."""

    def sql(self, query: str, max_rows: int, timeout: float) -> tuple[pa.Table, bool]: ...

    def reset(self) -> None:
        """Drop what a failure may have broken (connections), so that the next call starts afresh."""

    def close(self) -> None: ...
