"""The jupyter-server extension: owns the Engine (one process writes the DuckDB file) and serves its API."""

from __future__ import annotations

import asyncio
import gc
import importlib
from concurrent.futures import ThreadPoolExecutor

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Integer, List, Unicode, default

from ..engine import Engine, default_database, parse_duration
from ..store.store import SQL_CONCURRENCY
from .routes import routes
from .services import Services


class NbTaskLogApp(ExtensionApp):
    name = "nbtasklog"
    description = "Per-task logs: a runner, a log store, REST and WebSocket APIs"

    db_url = Unicode(
        help="The log store: a SQLAlchemy URL or a DuckDB file path. "
        "Default: NBTASKLOG_DB, else nbtasklog/nbtasklog.duckdb under the Jupyter data directory."
    ).tag(config=True)
    flush_interval = Float(2.0, help="Seconds between batch writes of buffered records.").tag(config=True)
    flush_size = Integer(122_880, help="Buffered records that trigger a write before the interval.").tag(config=True)
    buffer_cap = Integer(
        500_000, help="Records kept in memory while the database is unavailable; more spill to files."
    ).tag(config=True)
    max_workers = Integer(8, help="Tasks that run at the same time; more wait in a queue.").tag(config=True)
    max_message_bytes = Integer(1024 * 1024, help="A longer message, or metadata, is cut with a marker.").tag(config=True)
    retention = Unicode("", help="Delete finished tasks and their logs after this long (e.g. 30d); empty keeps them.").tag(config=True)
    cleanup_period = Unicode("1h", help="How often retention runs (e.g. 1h).").tag(config=True)
    plugin_modules = List(Unicode(), help="Modules to import at start so that their plugins register.").tag(config=True)
    sql_max_rows = Integer(10_000, help="Most rows an analyst query returns.").tag(config=True)
    sql_timeout = Float(10.0, help="Seconds an analyst query may run.").tag(config=True)
    max_body_bytes = Integer(64 * 1024 * 1024, help="Largest request body accepted (ingest batches included).").tag(config=True)
    stream_interval = Float(0.05, help="Seconds between WebSocket messages to one client (batching).").tag(config=True)
    stream_queue = Integer(50_000, help="Live records of a task held for its WebSocket clients; a client further behind is told it fell behind.").tag(config=True)
    redact_patterns = List(Unicode(), help="Regular expressions of more secrets, replaced by [REDACTED] in messages, "
                           "metadata and params (a group named secret: only that part).").tag(config=True)
    redact_keys = List(Unicode(), help="More key names whose values are secrets (a key ending with one, in any case).").tag(config=True)
    lease = Float(60.0, help="Seconds a task's owner may stay silent before any server on the store marks the task "
                  "INTERRUPTED (its heartbeat renews the lease four times as often).").tag(config=True)
    redact_defaults = Bool(True, help="Also redact the default secrets (passwords, tokens, keys, …); off: only the patterns and keys given.").tag(config=True)

    @default("db_url")
    def _default_db_url(self) -> str:
        return default_database()

    def initialize_settings(self) -> None:
        for module in self.plugin_modules:
            try:
                importlib.import_module(module)
            except Exception as error:  # one broken module must not stop the server
                self.log.error("nbtasklog: cannot import plugin module %r: %s", module, error)
        engine = Engine(
            self.db_url,
            flush_interval=self.flush_interval,
            flush_size=self.flush_size,
            buffer_cap=self.buffer_cap,
            max_workers=self.max_workers,
            max_message_bytes=self.max_message_bytes,
            retention=self.retention or None,
            cleanup_interval=parse_duration(self.cleanup_period),
            handle_signals=False,  # the server handles its signals and stops us through stop_extension
            redact_patterns=self.redact_patterns,
            redact_keys=self.redact_keys,
            redact_defaults=self.redact_defaults,
            instance_kind="server",
            lease=self.lease,
        )
        self.services = Services(
            engine=engine,
            executor=ThreadPoolExecutor(max_workers=4, thread_name_prefix="nbtasklog-api"),
            sql_executor=ThreadPoolExecutor(max_workers=SQL_CONCURRENCY, thread_name_prefix="nbtasklog-sql"),
            sql_max_rows=self.sql_max_rows,
            sql_timeout=self.sql_timeout,
            max_body_bytes=self.max_body_bytes,
            stream_interval=self.stream_interval,
            stream_queue=self.stream_queue,
        )
        self.settings["nbtasklog"] = self.services
        self.log.info("nbtasklog: log store %s", engine.store.url.render_as_string(hide_password=True))
        # Everything alive now (the server's modules, classes, settings) lives as long as the process:
        # moved out of the collector's reach, a full collection walks only what came later. Otherwise
        # each took 150–800 ms with the GIL held (bench_server fan-out), stalling tasks and streams.
        gc.collect()
        gc.freeze()

    def initialize_handlers(self) -> None:
        self.handlers.extend(routes())

    async def stop_extension(self) -> None:
        """Cancel running tasks, then write every buffered record (the server is stopping)."""
        services = getattr(self, "services", None)
        if services is None:
            return
        await asyncio.get_running_loop().run_in_executor(None, services.engine.close)
        services.executor.shutdown(wait=False)
        services.sql_executor.shutdown(wait=False)
