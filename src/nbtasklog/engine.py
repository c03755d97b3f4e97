"""Engine: the store, the write buffer, the runner and the settings of one process, behind one API.

`connection.connect()` chooses and opens one (its own database, or the Jupyter server that owns one)
and makes it the default the module-level functions of nbtasklog use.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from . import at_exit, belief, capture
from .errors import TaskActiveError, UnknownTaskError
from .filter import LogFilter, make_filter
from .follow import Follow
from .levels import parse_level
from .control import LEASE, Control, LocalControl, ServerControl
from .live import LiveReaders, Subscription
from .logger import DEFAULT_MAX_MESSAGE_BYTES, TaskEmitter, repair_record
from .plugins import Registry, as_callable, plugin_name
from .plugins import registry as default_registry
from .record import LogRecord, valid_text
from .redact import Redactor
from .remote import RemoteStore
from .runner import Runner, TaskState, new_task_id, utcnow
from .settings import Settings, SettingsManager
from .statuses import ACTIVE, ENDED, STATUSES
from .store.buffer import ROW_GROUP, Health, WriteBuffer
from .store.interface import LogStore
from .store.store import Store, sql_to_pandas
from .task import LogRecords, Task

log = logging.getLogger("nbtasklog")

MAX_PLUGIN_NAME = 255  # the tasks.plugin column's width
MAX_USERNAME = 255  # the tasks.username column's width


@dataclass
class _Lease:
    """An ingested task's lease: when its kernel was last heard, and the last seq it sent."""

    last_seq: int = 0
    seen: float = 0.0
    status: str | None = None  # the final status, once the task ended
    final: int | None = None  # then: its record count, the last seq it may still receive
    mode: str | None = None  # how its next row is written: "new" (a new task), "claim" (taken up again)
    final_row: dict[str, Any] | None = None  # the final row, written once the records it counts are in
    cancel_asked: bool = False  # someone cancelled it: its kernel is told in the answers to its ingest


def _seq_of(record: LogRecord) -> int:
    return record.seq


def _valid_row(row: dict[str, Any]) -> dict[str, Any]:
    """A task row from outside with valid text, within the columns' widths."""
    out = dict(row)
    for key in ("plugin", "params", "error", "progress_message"):
        if isinstance(out.get(key), str):
            out[key] = valid_text(out[key])
    if isinstance(out.get("plugin"), str):
        out["plugin"] = out["plugin"][:MAX_PLUGIN_NAME]
    if isinstance(out.get("username"), str):
        out["username"] = valid_text(out["username"])[:MAX_USERNAME]
    return out


def default_database() -> str:
    """NBTASKLOG_DB if set, else nbtasklog/nbtasklog.duckdb under the Jupyter data directory."""
    if os.environ.get("NBTASKLOG_DB"):
        return os.environ["NBTASKLOG_DB"]
    from jupyter_core.paths import jupyter_data_dir

    return str(Path(jupyter_data_dir()) / "nbtasklog" / "nbtasklog.duckdb")


def parse_duration(value: timedelta | str | float | int) -> timedelta:
    """A timedelta from one, from seconds, or from text like '30d', '12h', '15m', '45s', '1w'."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", str(value).lower())
    if not match:
        raise ValueError(f"bad duration {value!r}: use a number and a unit, e.g. 30d, 12h, 15m, 45s")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[match.group(2)]
    return timedelta(**{unit: float(match.group(1))})


def _spill_dir_for(url: Any) -> Path:
    if url.get_backend_name() == "duckdb" and url.database:
        return Path(url.database + ".spill")
    from jupyter_core.paths import jupyter_data_dir

    digest = hashlib.sha256(url.render_as_string(hide_password=True).encode()).hexdigest()[:16]
    return Path(jupyter_data_dir()) / "nbtasklog" / f"spill-{digest}"


class Engine:
    """Runs tasks and keeps their logs in one database, in this process.

    `redact_patterns` (regular expressions of more secrets in text), `redact_keys` (more key names
    whose values are secrets) and `redact_defaults` (False: only those, not redact.py's defaults)
    make `engine.redactor`, which takes secrets out of messages, metadata and params before they are
    stored or streamed. A pattern that does not compile is refused here, before the store is opened.
    """

    def __init__(
        self,
        url: str | os.PathLike[str] | None = None,
        *,
        store: LogStore | None = None,
        flush_interval: float = 2.0,
        flush_size: int = ROW_GROUP,
        buffer_cap: int = 500_000,
        max_workers: int = 8,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        spill_dir: str | os.PathLike[str] | None = None,
        retention: timedelta | str | None = None,
        cleanup_interval: timedelta | str | float = 3600,
        registry: Registry | None = None,
        handle_signals: bool = True,
        redact_patterns: list[str] | tuple[str, ...] = (),
        redact_keys: list[str] | tuple[str, ...] = (),
        redact_defaults: bool = True,
        instance_kind: str = "engine",
        lease: float = LEASE,
    ) -> None:
        # First: a broken pattern raises before anything is opened or started.
        self.redactor = Redactor(redact_patterns, redact_keys, defaults=redact_defaults)
        if store is None:
            store = Store(url if url is not None else default_database())
        self.store: LogStore = store
        self.registry = registry or default_registry
        self.max_message_bytes = max_message_bytes
        # Who this process is to the other processes on the same store: the owner of the tasks it runs
        # (and of those it ingests), alive while its heartbeat renews their lease of `lease` seconds.
        self.instance_id = new_task_id()
        self.instance_kind = instance_kind
        self.lease = lease
        # What differs when a Jupyter server owns the database (this process then runs only the tasks
        # defined in it) from owning it: one place, so that no method here asks which it is.
        self.control: Control
        if isinstance(store, RemoteStore):
            self.control = ServerControl(self, store)
        elif isinstance(store, Store):
            self.control = LocalControl(self, store)
        else:
            raise TypeError(f"store must be a Store or a RemoteStore, not {type(store).__name__}")
        self.settings_manager = SettingsManager(persist=self.control.persist_settings)
        self.buffer = WriteBuffer(
            self.store,
            Path(spill_dir) if spill_dir else _spill_dir_for(self.store.url),
            self.instance_id,
            flush_interval=flush_interval,
            flush_size=flush_size,
            memory_cap=buffer_cap,
            on_connect=self._on_first_connect,
            on_refused=self.lost_tasks,
        )
        self.runner = Runner(max_workers, on_change=self._task_changed, redact=self.redactor.text)
        self._task_listeners: list[Any] = []
        # Live readers per task id, for tasks run here and tasks whose records arrive by ingest().
        self._live = LiveReaders()
        self.settings_manager.subscribe(self._apply_settings)
        self._closed = False
        self.retention = parse_duration(retention) if retention is not None else None
        self._cleanup_interval = parse_duration(cleanup_interval).total_seconds()
        self._maintenance_stop = threading.Event()
        self._leases: dict[str, _Lease] = {}  # ingested tasks still active -> their kernel's lease
        self._lost: set[str] = set()  # tasks whose rows the store refused (see lost_tasks)
        self._ingest_locks = [threading.Lock() for _ in range(64)]  # by task id: one ingest of a task at a time
        self._row_lock = threading.Lock()  # a task's rows reach the buffer in the order they were taken
        self.buffer.flush()  # connect now if the database answers: settings, INTERRUPTED marks
        self.buffer.start()
        self._maintenance = threading.Thread(target=self._maintain, name="nbtasklog-maintenance", daemon=True)
        self._maintenance.start()
        at_exit.register(self, handle_signals)

    # ---- start-up ---------------------------------------------------------------------------
    def _on_first_connect(self) -> None:
        interrupted = self.control.on_connect()
        if interrupted:
            log.warning("nbtasklog: %d task(s) were running when their process ended; marked INTERRUPTED", len(interrupted))
        self.load_settings(self.store.load_settings)

    def load_settings(self, read: Callable[[], Mapping[str, str]]) -> None:
        """Apply settings as `read()` gives them (the database, or the server), but those changed here and not yet written."""
        self.settings_manager.load(read, self.buffer.unwritten_settings)

    def _apply_settings(self, settings: Settings) -> None:
        belief.app_enabled = settings.belief_scope_enabled
        for state in self.runner.active():
            state.emitter.min_level = int(state.log_level or settings.task_log_level)
            state.emitter.belief_scope_enabled = settings.belief_scope_enabled
        capture.install(int(settings.task_log_level))

    # ---- tasks ------------------------------------------------------------------------------
    def run_task(
        self,
        plugin: Any,
        params: dict[str, Any] | None = None,
        *,
        config: dict[str, Any] | None = None,
        log_level: object = None,
        username: str | None = None,
    ) -> Task:
        """Start a task: `plugin` is a registered name, a Plugin (class or instance) or a function.

        `params` must be a JSON object; `config` becomes `context.config`; `log_level` overrides
        the task_log_level setting for this task; `username` is who started it (by default the user
        this process runs as; a Jupyter server passes the user of the request).
        """
        self._check_open()
        submitted = self.control.submit(plugin, params, parse_level(log_level).name if log_level is not None else None)
        if submitted is not None:  # a Jupyter server runs it
            return Task(self, submitted)
        if isinstance(plugin, str):
            name, target = plugin, self.registry.get(plugin)
        else:
            name, target = plugin_name(plugin), plugin
        call = as_callable(target)
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict (a JSON object), not {type(params).__name__}")
        try:
            params_text = json.dumps(params, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as error:
            raise ValueError(f"params must be JSON-serializable: {error}") from None
        # The store and every reader get valid text (a lone surrogate from os.fsdecode becomes U+FFFD);
        # the plugin gets its params as they were given.
        params_json = self.redactor.metadata_json(valid_text(params_text))
        override = parse_level(log_level) if log_level is not None else None
        settings = self.settings_manager.current
        task_id = new_task_id()
        emitter = TaskEmitter(
            task_id,
            self.buffer.append,
            min_level=override or settings.task_log_level,
            max_message_bytes=self.max_message_bytes,
            belief_scope_enabled=settings.belief_scope_enabled,
            redactor=self.redactor,
        )
        self._live.attach(task_id, emitter)
        username = self.username if username is None else valid_text(str(username))[:MAX_USERNAME]
        state = TaskState(task_id, valid_text(name)[:MAX_PLUGIN_NAME], json.loads(params_json), params_json,
                          json.loads(params_text), emitter, override, username)
        self.runner.submit(state, call, dict(config or {}))
        return Task(self, task_id)

    def plugins(self) -> list[dict[str, Any]]:
        """What a task can be started with here: name, description, params_schema and `runs_in`
        ("local": this process; "server": the Jupyter server that owns the database)."""
        return self.control.plugins()

    def put_row(self, row: dict[str, Any], mode: str | None = None) -> None:
        """Queue a task row this process writes, as its owner (see Store.write for `mode`)."""
        if self.control.owner is not None:
            row = dict(row, owner=self.control.owner)
        self.buffer.put_task(row, mode)

    def lost_tasks(self, task_ids: list[str]) -> None:
        """These tasks are no longer this process's: the store refused their rows, or its heartbeat no longer
        renews them (another process deleted them, or marked them INTERRUPTED when this one's lease ran
        out). A task still running here is stopped, and its rows are refused from now on."""
        for task_id in task_ids:
            if task_id in self._lost:
                continue
            self._lost.add(task_id)
            self._leases.pop(task_id, None)
            state = self.runner.get(task_id)
            if state is not None and state.status in ACTIVE:
                log.warning("nbtasklog: task %s was deleted or marked INTERRUPTED by another process; stopping it", task_id)
                self.runner.cancel(state)

    def _task_changed(self, state: TaskState) -> None:
        with self._row_lock:  # two threads' changes (a cancel, the end) must not put an older row last
            row = state.row()
            if state.id not in self._lost:  # the store refuses a lost task's rows: they are not sent
                self.put_row(row, "new" if state.status == "PENDING" else None)
        if state.status not in ACTIVE:
            self._live.detach(state.id)
            if state.id in self._lost:
                self._forget_lost(state.id)
                return
        self.notify(dict(row, params=state.params))

    def _forget_lost(self, task_id: str) -> None:
        """A task taken from this process ended here: from now on it is what the store says (INTERRUPTED by
        another process, or gone), as every other process shows it, not what its end here was."""
        self.runner.forget(task_id)
        try:
            self.notify(self.task_info(task_id))
        except UnknownTaskError:
            self.notify({"id": task_id, "deleted": True})
        except Exception as error:  # the database away: the next read of the task asks it again
            log.debug("nbtasklog: could not read task %s again: %s", task_id, error)

    def notify(self, row: dict[str, Any]) -> None:
        """Tell the task listeners (on_task_change) that a task was created, changed or deleted."""
        for listener in list(self._task_listeners):
            try:
                listener(row)
            except Exception:
                log.exception("nbtasklog: task listener failed")

    def ingest(self, task_rows: list[dict[str, Any]], records: list[LogRecord]) -> dict[str, Any]:
        """Take task rows and records made elsewhere (a kernel running a notebook-defined plugin).

        They are buffered and written like this process's own, and offered to live readers. Ingest
        only appends to tasks it leases: a new task, or one whose kernel already sends it. Records at
        or below a task's last seq are duplicates of a retried batch and are dropped; a task that
        ended takes no record past its final count and no other row; a task run by this process is
        refused; the answer says what was refused and why. An INTERRUPTED task (its kernel went
        silent, or this server restarted) is taken up again by the kernel that still sends it, with
        the same plugin and creation time.
        Returns {"tasks", "records", "duplicates", "refused": [{"task_id", "reason", "records"}], "cancel": [ids]},
        "cancel" naming the tasks of the batch someone cancelled meanwhile (the kernel stops them).
        """
        by_task: dict[str, list[LogRecord]] = {}
        for record in records:
            by_task.setdefault(record.task_id, []).append(record)
        rows = {row["id"]: self._redacted_row(_valid_row(row)) for row in task_rows}
        answer: dict[str, Any] = {"tasks": len(rows), "records": 0, "duplicates": 0, "refused": [], "cancel": []}
        for task_id in dict.fromkeys([*rows, *by_task]):
            # One task at a time, each under its own lock: a retried batch overlapping the first try
            # waits for it; other tasks' ingest (and the reads a new lease needs) go on meanwhile.
            with self._ingest_locks[hash(task_id) % len(self._ingest_locks)]:
                self._ingest_task(task_id, rows.get(task_id), sorted(by_task.get(task_id, ()), key=_seq_of), answer)
        return answer

    def cancel_here(self, task_id: str) -> bool:
        """Cancel an active task whose records this process makes: one it runs, or a kernel's it ingests,
        whose kernel is asked in the answer to its next ingest (its records, or its lease renewed a
        quarter lease after the last). False for any other task."""
        state = self.runner.get(task_id)
        if state is not None:
            if state.status not in ACTIVE:
                return False
            self.runner.cancel(state)
            return True
        lease = self._leases.get(task_id)
        if lease is None or lease.final is not None:
            return False
        lease.cancel_asked = True
        return True

    def _ingest_task(self, task_id: str, row: dict[str, Any] | None, mine: list[LogRecord],
                     answer: dict[str, Any]) -> None:
        lease = self._leases.get(task_id)
        if lease is None:
            lease, reason = self._take_lease(task_id, row)
            if lease is None:
                answer["refused"].append({"task_id": task_id, "reason": reason, "records": len(mine)})
                return
        fresh = [r for r in mine if r.seq > lease.last_seq]
        answer["duplicates"] += len(mine) - len(fresh)
        if lease.final is not None:
            late = [r for r in fresh if r.seq > lease.final]
            if late:
                answer["refused"].append({"task_id": task_id, "records": len(late),
                                          "reason": f"task {task_id} has ended with {lease.final} records; no more can be added"})
                fresh = [r for r in fresh if r.seq <= lease.final]
            if row is not None and row.get("status") != lease.status:
                answer["refused"].append({"task_id": task_id, "records": 0,
                                          "reason": f"task {task_id} ended {lease.status}; its row cannot be changed"})
            row = None  # the final row came: anything else is the same row again (a retried batch)
        self._leases[task_id] = lease
        lease.seen = time.monotonic()
        if lease.cancel_asked:
            answer["cancel"].append(task_id)
        if fresh:
            repaired = [self._repaired(r) for r in fresh]  # before the lease moves: a failure here loses nothing
            append = self.buffer.append
            for record in repaired:
                append(tuple(record))  # plain tuples in the queue (see WriteBuffer.append)
            lease.last_seq = fresh[-1].seq
            readers = self._live.get(task_id)
            for record in repaired:
                for subscriber in readers:
                    subscriber.offer(record)
            answer["records"] += len(repaired)
        if row is not None:
            if row.get("status") not in ACTIVE:
                lease.status = row["status"]
                lease.final = max(int(row.get("record_count") or 0), lease.last_seq)
                lease.final_row = row
            if lease.final is None or lease.last_seq >= lease.final:
                self._put_ingested(row, lease)
            else:  # the final row came before the last records (a batch sent in halves): it waits for them
                self._put_ingested(dict(row, status="RUNNING", finished_at=None, error=None), lease)
        if lease.final is not None and lease.last_seq >= lease.final:
            if lease.final_row is not None and row is not lease.final_row:
                self._put_ingested(lease.final_row, lease)
            self._leases.pop(task_id, None)  # ended, and every record is in

    def _put_ingested(self, row: dict[str, Any], lease: _Lease) -> None:
        self.put_row(row, lease.mode)
        lease.mode = None
        params = row.get("params")
        self.notify(dict(row, params=json.loads(params) if isinstance(params, str) else params))

    def _repaired(self, record: LogRecord) -> LogRecord:
        """A record made elsewhere as this process makes its own: valid, within the limits, its secrets
        redacted here too (the kernel may be another version, and this server's patterns never reach it)."""
        record = repair_record(record, self.max_message_bytes)
        message = self.redactor.text(record.message)
        meta = record.metadata_json if record.metadata_json is None else self.redactor.metadata_json(record.metadata_json)
        return record if message is record.message and meta is record.metadata_json else \
            record._replace(message=message, metadata_json=meta)

    def _redacted_row(self, row: dict[str, Any]) -> dict[str, Any]:
        for key in ("error", "progress_message"):
            if isinstance(row.get(key), str):
                row[key] = self.redactor.text(row[key])
        params = row.get("params")
        if isinstance(params, str):
            row["params"] = self.redactor.metadata_json(params)
        elif isinstance(params, dict):
            row["params"] = self.redactor.params(params)
        return row

    def _take_lease(self, task_id: str, row: dict[str, Any] | None) -> tuple[_Lease | None, str | None]:
        """A lease for ingesting into `task_id`, with the seq its records continue after; or why not."""
        if self.runner.get(task_id) is not None:
            return None, f"task {task_id} is run by this server; its log cannot be written from outside"
        if task_id in self._lost:
            return None, f"task {task_id} was deleted or marked INTERRUPTED by another process; it takes no more records"
        try:
            info = self.task_info(task_id)
        except UnknownTaskError:
            if row is None:
                return None, f"unknown task {task_id}: send its row first, or with its records"
            return _Lease(mode="new"), None
        if row is not None and (row.get("plugin") != info["plugin"] or row.get("created_at") != info["created_at"]):
            return None, f"task {task_id} is another task (plugin {info['plugin']!r}, created {info['created_at']})"
        if row is not None and info.get("username") is not None and row.get("username") != info["username"]:
            return None, f"task {task_id} was started by another user"
        last = self.logs(task_id, make_filter(order="desc", limit=1))
        lease = _Lease(last_seq=last[0].seq if last else 0, mode="claim")
        if info["status"] in ENDED:
            lease.status = info["status"]
            lease.final = max(int(info.get("record_count") or 0), lease.last_seq)
        return lease, None

    def on_task_change(self, listener: Any) -> Any:
        """Call `listener(row)` with the task's row when a task is created or changes; returns an unsubscribe function."""
        self._task_listeners.append(listener)
        return lambda: self._task_listeners.remove(listener) if listener in self._task_listeners else None

    def task(self, task_id: str) -> Task:
        self.task_info(task_id)  # raises UnknownTaskError
        return Task(self, task_id)

    def task_info(self, task_id: str) -> dict[str, Any]:
        state = self.runner.get(task_id)
        if state is not None:
            row = state.row()
            row["params"] = state.params
            return row
        with self.buffer.reading():
            row = self.buffer.unwritten_tasks().get(task_id) or self.store.get_task(task_id)
        if row is None:
            raise UnknownTaskError(task_id)
        if isinstance(row.get("params"), str):
            row["params"] = json.loads(row["params"])
        return row

    def task_result(self, task_id: str) -> Any:
        state = self.runner.get(task_id)
        return None if state is None else state.result

    def tasks(self, status: str | list[str] | None = None, plugin: str | None = None,
              limit: int = 100, before: str | None = None, user: str | None = None) -> list[Task]:
        """Tasks, newest first (this process's and stored ones), optionally by status, plugin and the
        user who started them."""
        return [Task(self, row["id"]) for row in self._task_rows(status, plugin, limit, before, user)]

    def task_page(self, status: str | list[str] | None = None, plugin: str | None = None,
                  limit: int = 100, before: str | None = None, user: str | None = None) -> dict[str, Any]:
        """A page of tasks' rows as `GET tasks` answers it: {"tasks", "cursor", "user", "others_visible"},
        the cursor being the `before` of the next page (None on the last), "user" the name this
        process's tasks are recorded under and "others_visible" whether other users' tasks are listed."""
        rows = self._task_rows(status, plugin, limit, before, user)
        return {"tasks": rows, "cursor": rows[-1]["id"] if len(rows) == limit else None, **self.control.whoami()}

    @property
    def username(self) -> str | None:
        """Who the tasks started here are recorded as started by (unless run_task is told otherwise)."""
        return self.control.whoami()["user"]

    def _task_rows(self, status: str | list[str] | None, plugin: str | None, limit: int,
                   before: str | None, user: str | None = None) -> list[dict[str, Any]]:
        """Rows of one listing, newest first, each as it is now: a row this process holds newer than the
        database's (its own tasks, rows not yet written) replaces it, and drops out when it no longer
        matches (a task that ended is not RUNNING any more)."""
        statuses = [status] if isinstance(status, str) else status
        if statuses:
            unknown = set(statuses) - set(STATUSES)
            if unknown:
                raise ValueError(f"unknown status {', '.join(sorted(unknown))}")
        with self.buffer.reading():
            newer = self.buffer.unwritten_tasks()
            newer.update((state.id, dict(state.row(), params=state.params)) for state in self.runner.states())
            # Newer rows may take listed ones out of the page: ask for that many more.
            stored = self.store.list_tasks(statuses, plugin, before, limit + len(newer), user)
        rows = {row["id"]: row for row in stored}
        for task_id, row in newer.items():
            if (not statuses or row["status"] in statuses) and (not plugin or row["plugin"] == plugin) \
                    and (before is None or task_id < before) and (user is None or row.get("username") == user):
                rows[task_id] = row
            else:
                rows.pop(task_id, None)
        page = [rows[task_id] for task_id in sorted(rows, reverse=True)[:limit]]
        for row in page:
            if isinstance(row.get("params"), str):
                row["params"] = json.loads(row["params"])
        return page

    def wait(self, task_id: str, timeout: float | None = None) -> None:
        state = self.runner.get(task_id)
        if state is not None:
            if not state.done.wait(timeout):
                raise TimeoutError(f"task {task_id} did not finish within {timeout} s")
            return
        self.control.wait(task_id, timeout)

    def cancel(self, task_id: str) -> bool:
        if self.owns(task_id):
            return self.cancel_here(task_id)
        if self.task_info(task_id)["status"] not in ACTIVE:
            return False
        return self.control.cancel(task_id)

    def delete_task(self, task_id: str) -> None:
        """Delete a finished task and all its logs (buffered ones included), in one transaction."""
        info = self.task_info(task_id)
        if info["status"] in ACTIVE:
            raise TaskActiveError(f"task {task_id} is {info['status']}; cancel it and wait before deleting it")
        self.delete_tasks([task_id])

    def delete_tasks(self, task_ids: list[str]) -> None:
        """Delete tasks (finished ones: the callers check) and all their logs, buffered ones included."""
        with self.buffer.reading():
            if not self.buffer.flush():
                raise RuntimeError(f"cannot delete while the database is unavailable: {self.buffer.health().last_error}")
            self.store.delete_tasks(task_ids)
            for task_id in task_ids:
                self.runner.forget(task_id)
        for task_id in task_ids:
            self.notify({"id": task_id, "deleted": True})

    def deleted_elsewhere(self, task_ids: list[str]) -> None:
        """Another process deleted these tasks from the store: this one forgets them too (a task running
        here is stopped: deleted, it is no longer this process's)."""
        for task_id in task_ids:
            state = self.runner.get(task_id)
            if state is not None and state.status in ACTIVE:
                self.lost_tasks([task_id])
            else:
                self.runner.forget(task_id)
            self.notify({"id": task_id, "deleted": True})

    def cleanup(self, older_than: timedelta | str, user: str | None = None) -> list[str]:
        """Delete finished tasks (and their logs) that ended more than `older_than` ago, only `user`'s if
        given; returns their ids."""
        ids = self.control.cleanup(parse_duration(older_than), user)
        if ids:
            log.info("nbtasklog: retention removed %d task(s) older than %s", len(ids), older_than)
        return ids

    def _maintain(self) -> None:
        """Once a second: what the control keeps up (a server's settings, the leases of this process's
        tasks on it), expire ingested tasks whose process went silent, run retention when due."""
        next_cleanup = time.monotonic() + self._cleanup_interval
        while not self._maintenance_stop.wait(1.0):
            now = time.monotonic()
            try:
                self.control.maintain(now)
                self._expire_external(now)
                if self.retention is not None and now >= next_cleanup:
                    next_cleanup = now + self._cleanup_interval
                    self.cleanup(self.retention)
            except Exception as error:
                log.debug("nbtasklog: maintenance step failed, will retry: %s", error)

    def _expire_external(self, now: float) -> None:
        for task_id, lease in list(self._leases.items()):
            if now - lease.seen < LEASE:
                continue
            with self._ingest_locks[hash(task_id) % len(self._ingest_locks)]:
                if self._leases.get(task_id) is not lease or now - lease.seen < LEASE:
                    continue
                row = self.task_info(task_id)  # may raise (database down): the lease stays for the next look
                self._leases.pop(task_id, None)
                if row["status"] in ACTIVE:
                    row.update(status="INTERRUPTED", finished_at=utcnow(),
                               record_count=max(int(row.get("record_count") or 0), lease.last_seq),
                               error=f"the process running this task stopped answering for {LEASE:.0f} s")
                    row["params"] = json.dumps(row["params"], ensure_ascii=False)
                    self.put_row(row)
                    self.notify(dict(row, params=json.loads(row["params"])))

    # ---- logs -------------------------------------------------------------------------------
    def logs(self, task_id: str, flt: LogFilter | None = None, **filter: Any) -> LogRecords:
        """Records of one task matching the filter: the database and the not yet written ones, merged by seq."""
        flt = flt or make_filter(**filter)
        record_count = self.task_info(task_id).get("record_count") or 0
        with self.buffer.reading():
            unwritten = self.buffer.unwritten(task_id)
            try:
                stored = self.store.query_logs(task_id, flt)
            except Exception:
                # Database unavailable: the buffer alone answers when it holds the task's whole log,
                # seq 1 to the task's record count without a gap. An unwritten seq 1 is not enough:
                # a later batch may be stored already (1..80 here, 81..131 stored, 80 came back).
                whole = all(r.seq == i for i, r in enumerate(unwritten, 1)) and len(unwritten) >= record_count
                if not (unwritten and whole):
                    raise
                stored = []
        if not unwritten:
            return LogRecords(stored)
        merged = {r.seq: r for r in stored}
        merged.update((r.seq, r) for r in flt.apply(unwritten))
        return LogRecords(flt.apply(merged.values()))

    def stats(self, task_id: str) -> dict[str, Any]:
        self.task_info(task_id)
        with self.buffer.reading():
            stats = self.store.log_stats(task_id)
            unwritten = self.buffer.unwritten(task_id)
        keys = set(stats["metadata_keys"])
        for record in unwritten:
            stats["levels"][record.level] = stats["levels"].get(record.level, 0) + 1
            stats["sources"][record.source] = stats["sources"].get(record.source, 0) + 1
            if record.metadata_json:
                keys.update(json.loads(record.metadata_json))
        stats["metadata_keys"] = sorted(keys)
        stats["total"] = sum(stats["levels"].values())
        return stats

    def follow(self, task_id: str, flt: LogFilter | None = None, poll: float = 0.25, **filter: Any) -> Iterator[LogRecord]:
        """Matching records in seq order: history, then live records as they are emitted, until the task ends.

        The live queue is subscribed before history is read, and only records past the last seq
        handed out pass: no gap and no duplicate at the seam. On a remote engine, a task not run
        here comes over the server's log WebSocket, history included; REST is read only when this
        reader fell behind or the socket gave up.
        """
        feed = self.live_feed(task_id, (flt or make_filter(**filter)).with_limit(None))
        follow = feed.follow
        try:
            while not follow.ended:
                if follow.reading:
                    yield from follow.page(self.logs(task_id, follow.next_page()))
                    continue
                finished, _ = feed.observe()
                # An ended task emits nothing more: take what is queued without waiting a poll.
                batch = feed.take(0 if finished else poll)
                if batch is None:
                    follow.lagged()
                else:
                    yield from follow.live(batch, finished=finished)
        finally:
            feed.close()

    def live_feed(self, task_id: str, flt: LogFilter) -> LiveFeed:
        """A reader thread's live records of one task matching `flt`, subscribed now, and its Follow."""
        return LiveFeed(self, task_id, flt)

    def subscribe(self, task_id: str, subscription: Subscription) -> Subscription:
        """Offer `subscription` every record of the task emitted or ingested from now on."""
        self._live.add(task_id, subscription)
        return subscription

    def unsubscribe(self, task_id: str, subscription: Subscription) -> None:
        self._live.remove(task_id, subscription)

    def owns(self, task_id: str) -> bool:
        """This process makes the task's records: it runs the task, or ingests what a kernel running it sends."""
        return self.runner.get(task_id) is not None or task_id in self._leases

    def followed_elsewhere(self) -> list[str]:
        """Tasks read live here whose records another process makes (they reach this one by the store)."""
        return [task_id for task_id in self._live.task_ids() if not self.owns(task_id)]

    def makes_records_of(self, task_id: str) -> bool:
        """This process is making the records of an active task: it runs it, or ingests a kernel's."""
        state = self.runner.get(task_id)
        return (state is not None and state.status in ACTIVE) or task_id in self._leases

    def store_has_records(self, task_id: str) -> None:
        """Another process stored records of this task: its live readers here read the store now."""
        for subscription in self._live.get(task_id):
            subscription.wake()

    def is_finished(self, task_id: str) -> bool:
        state = self.runner.get(task_id)
        return state.done.is_set() if state is not None else self.task_info(task_id)["status"] not in ACTIVE

    def history(self, task_id: str, flt: LogFilter, after: int) -> Iterator[LogRecord]:
        """Every stored or buffered record matching `flt` past seq `after`, in pages, in seq order."""
        reading = Follow(replace(flt, after_seq=after))
        while reading.reading:
            yield from reading.page(self.logs(task_id, reading.next_page()))

    # ---- settings, SQL, health ----------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self.settings_manager.current

    def update_settings(self, **changes: object) -> Settings:
        """Change log_level, task_log_level, belief_scope_enabled; effective at once, persisted."""
        return self.settings_manager.update(**changes)

    def on_settings_change(self, listener: Any) -> Any:
        return self.settings_manager.subscribe(listener)

    def sql(self, query: str, *, arrow: bool = False, max_rows: int = 100_000, timeout: float = 30.0) -> Any:
        """A read-only query over tasks and task_logs; a pandas DataFrame (or a pyarrow Table).

        `timeout` bounds the whole call. The query holds no lock of the write buffer: it reads the
        database alone, in a read-only transaction of its own, so logging, flushes and reads go on.
        """
        deadline = time.monotonic() + timeout
        # Write what was just logged first, so that it is there to query. A flush under way (or a
        # reader holding the buffer) is waited for at most half the time limit, so that the query keeps
        # the other half; past that it runs on what the database has.
        lock = self.buffer.reading()
        if lock.acquire(timeout=timeout / 2):
            try:
                self.buffer.flush()
            finally:
                lock.release()
        remaining = max(0.0, deadline - time.monotonic())
        table, truncated = self.store.sql(query, max_rows=max_rows, timeout=remaining)
        if truncated:
            import warnings

            warnings.warn(f"nbtasklog.sql: result cut to the first {max_rows} rows", stacklevel=2)
        return table if arrow else sql_to_pandas(table)

    def health(self) -> Health:
        """The way to the database: this process's buffer, and in a kernel or the CLI the server's too."""
        return self.control.health(self.buffer.health())

    def flush(self) -> bool:
        """Write everything buffered now; True when nothing is left waiting."""
        return self.buffer.flush()

    # ---- shutdown -------------------------------------------------------------------------------
    def close(self, timeout: float = 10.0) -> None:
        """Cancel running tasks (waiting up to `timeout` s), then write everything; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._maintenance_stop.set()
        # Its heartbeat may be in the database: a connection left open after close() keeps the file
        # from another process and from this one's next open with other options.
        self._maintenance.join(timeout)
        self.control.close()
        self.runner.close(timeout)
        self.buffer.stop(timeout)
        self.store.close()
        at_exit.forget(self)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this nbtasklog engine is closed")

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<nbtasklog Engine {self.store.url.render_as_string(hide_password=True)}>"


class LiveFeed:
    """One reader thread's live records of one task (Engine.live_feed) and the Follow they go through.

    A Subscription is offered what the task's emitter or ingest in this process makes; for a task a
    server runs, the server's log socket feeds it instead, the history included. Neither (a task run
    by another process on the same database, or a socket that gave up): the store is read as well.
    """

    def __init__(self, engine: Engine, task_id: str, flt: LogFilter) -> None:
        self.engine, self.task_id = engine, task_id
        self._state = engine.runner.get(task_id)
        self.subscription = engine.subscribe(task_id, Subscription(flt))
        self.socket = engine.control.stream(task_id, self.subscription)  # a remote.RemoteStream, or None
        self.follow = Follow(flt, history_on_feed=self.socket is not None,
                             store_fed=self._state is None and self.socket is None)

    def observe(self) -> tuple[bool, bool]:
        """(the task ended, the feed brought the whole history), as they are before a take(): every record
        they cover is queued by then. A socket that gave up is dropped: the follow reads the store instead."""
        socket = self.socket
        if socket is not None and socket.failed:
            log.debug("nbtasklog: reading %s over REST: %s", self.task_id, socket.failed)
            socket.close()
            self.socket = socket = None
            self.follow.feed_lost()
        if self._state is not None:
            return self._state.done.is_set(), False
        if socket is not None:
            return socket.ended is not None, socket.history_end.is_set()  # ended: set after the last offer
        return self.engine.is_finished(self.task_id), False

    def take(self, timeout: float | None) -> list[LogRecord] | None:
        """Everything queued, waiting up to `timeout` for a record; None when the subscription fell behind
        (it queues again from now on: the follow reads from its cursor)."""
        return self.subscription.take_live(timeout)

    def close(self) -> None:
        if self.socket is not None:
            self.socket.close()
        self.engine.unsubscribe(self.task_id, self.subscription)
