"""What every handler of the extension shares: the engine, the executors of blocking work, the limits
and the live windows of tasks' sockets."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..engine import Engine


@dataclass
class Services:
    """What the handlers use, put into the web app's settings under "nbtasklog"."""

    engine: Engine
    executor: ThreadPoolExecutor  # blocking database work never runs on the event loop
    # Analyst SQL has threads of its own, one per query that may run (SQL_CONCURRENCY): long queries
    # never take the threads that answer logs, tasks and ingest.
    sql_executor: ThreadPoolExecutor
    sql_max_rows: int
    sql_timeout: float
    max_body_bytes: int
    stream_interval: float
    stream_queue: int
    windows: dict[str, Any] = field(default_factory=dict)  # task id -> live_window.LiveWindow, shared by its sockets
    sql_running: int = 0  # analyst queries on sql_executor now (counted on the event loop)

    async def run(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: func(*args, **kwargs))

    async def run_sql(self, func: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.sql_executor, func)
