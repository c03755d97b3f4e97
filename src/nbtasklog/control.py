"""How an engine reaches the tasks and settings its own process does not run: through its own database
(LocalControl), or through the Jupyter server that owns the database (ServerControl)."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from .errors import TaskActiveError, UnknownTaskError
from .live import Subscription
from .plugins import UnknownPluginError
from .remote import RemoteStore, ServerError
from .runner import os_username, utcnow
from .statuses import ACTIVE
from .store.buffer import Health
from .store.events import StoreListener
from .store.store import Store
from .task import wait_until

LEASE = 60.0  # seconds an ingested task may stay silent before it is marked INTERRUPTED
# Seconds an owner writes a task's records sooner after hearing that another process follows it live;
# the follower says so every second.
WATCHED = 3.0


class EngineSide(Protocol):
    """What a control uses of its engine (nbtasklog.Engine)."""

    buffer: Any
    store: Any
    instance_id: str
    instance_kind: str
    lease: float
    runner: Any
    registry: Any
    settings_manager: Any

    def is_finished(self, task_id: str) -> bool: ...
    def on_task_change(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], Any]: ...
    def delete_tasks(self, task_ids: list[str]) -> None: ...
    def notify(self, row: dict[str, Any]) -> None: ...
    def lost_tasks(self, task_ids: list[str]) -> None: ...
    def deleted_elsewhere(self, task_ids: list[str]) -> None: ...
    def load_settings(self, read: Callable[[], Mapping[str, str]]) -> None: ...
    def owns(self, task_id: str) -> bool: ...
    def makes_records_of(self, task_id: str) -> bool: ...
    def cancel_here(self, task_id: str) -> bool: ...
    def followed_elsewhere(self) -> list[str]: ...
    def store_has_records(self, task_id: str) -> None: ...


class Watch(Protocol):
    """A running watch of the task list; close() ends it, `failed` says why it gave up (or None)."""

    failed: str | None

    def close(self) -> None: ...


class Control(Protocol):
    """What differs between an engine that owns its database and one in a kernel or the CLI whose
    database a Jupyter server owns."""

    owner: str | None  # the owner this process writes its task rows as (None: a server owns them)

    def persist_settings(self, values: dict[str, str]) -> None: ...
    def on_connect(self) -> list[str]: ...
    def plugins(self) -> list[dict[str, Any]]: ...
    def submit(self, plugin: Any, params: Any, log_level: str | None) -> str | None: ...
    def wait(self, task_id: str, timeout: float | None) -> None: ...
    def cancel(self, task_id: str) -> bool: ...
    def cleanup(self, older_than: timedelta, user: str | None) -> list[str]: ...
    def whoami(self) -> dict[str, Any]: ...
    def maintain(self, now: float) -> None: ...
    def stream(self, task_id: str, subscription: Subscription) -> Any: ...
    def watch_tasks(self, on_change: Callable[[dict[str, Any]], None],
                    on_connect: Callable[[], None] | None = None) -> Watch: ...
    def health(self, own: Health) -> Health: ...
    def settings_writable(self) -> bool: ...
    def where(self) -> str: ...
    def close(self) -> None: ...


class LocalControl:
    """This process owns the database: tasks run here or ran in a process that is gone."""

    def __init__(self, engine: EngineSide, store: Store) -> None:
        self.engine = engine
        self.store = store
        self.owner = engine.instance_id
        store.origin = engine.instance_id  # what this process changes is told to the others as this instance
        self.listener: StoreListener | None = None
        self._listening = threading.Lock()  # on_connect (the flusher) and close() decide about the listener
        self._closed = False
        self._next_beat = 0.0
        self._username = os_username()
        self.instance = {"id": engine.instance_id, "kind": engine.instance_kind, "host": socket.gethostname()[:255],
                         "pid": os.getpid(), "started_at": utcnow()}

    def persist_settings(self, values: dict[str, str]) -> None:
        self.engine.buffer.put_settings(values)

    def on_connect(self) -> list[str]:
        """This process joins the store's instances; tasks of dead processes become INTERRUPTED: those of
        the earlier lives whose spill folders it took over, those whose owner's lease ran out, and those
        left active in tasks.json, counted with their spilled records."""
        buffer = self.engine.buffer
        spilled_rows, spilled_last_seqs, ended = buffer.left_active()
        ids = self.store.recover(self.instance, self.engine.lease, buffer.home.dead_owners,
                                 spilled_last_seqs, spilled_rows, ended)
        buffer.home.forget_dead_owners()
        with self._listening:
            if self.listener is None and not self._closed:  # the first connect may be close()'s last flush
                self.listener = self.store.listen(self._heard, self._missed)
        return ids

    def _heard(self, event: dict[str, Any]) -> None:
        """What another process changed in the store (store/events.py), applied here."""
        engine = self.engine
        for task_id in event.get("l", ()):
            engine.store_has_records(task_id)
        rows = self.store.get_tasks(event.get("t", ()))
        for task_id in event.get("t", ()):
            row = rows.get(task_id)
            state = engine.runner.get(task_id)
            if row is None or state is None:
                if row is not None:
                    engine.notify(row)
            elif state.status in ACTIVE and row["status"] not in ACTIVE:
                engine.lost_tasks([task_id])  # marked INTERRUPTED by another process while it runs here
        if event.get("d"):
            engine.deleted_elsewhere(event["d"])
        if event.get("s"):
            engine.load_settings(self.store.load_settings)
        for task_id in event.get("c", ()):
            engine.cancel_here(task_id)
        if any(engine.makes_records_of(task_id) for task_id in event.get("w", ())):
            engine.buffer.hurry(WATCHED)

    def _missed(self) -> None:
        """Events may have been missed (the listener connected again): read again what they would have said:
        the settings, the records of the tasks followed here, and which of the tasks this process holds
        were deleted meanwhile."""
        engine = self.engine
        engine.load_settings(self.store.load_settings)
        for task_id in self._followed_elsewhere():
            engine.store_has_records(task_id)
        held = [state.id for state in engine.runner.states() if state.status not in ACTIVE]
        if held:
            unwritten = engine.buffer.unwritten_tasks()
            stored = self.store.existing_tasks(held)
            gone = [task_id for task_id in held if task_id not in stored and task_id not in unwritten]
            if gone:
                engine.deleted_elsewhere(gone)

    def _followed_elsewhere(self) -> list[str]:
        """The active tasks another process runs that are read live here: the store says which are active."""
        rows = self.store.get_tasks(self.engine.followed_elsewhere())
        return [task_id for task_id, row in rows.items() if row["status"] in ACTIVE]

    def close(self) -> None:
        with self._listening:
            self._closed = True
            listener = self.listener
        if listener is not None:
            listener.close()


    def plugins(self) -> list[dict[str, Any]]:
        return [dict(p, runs_in="local") for p in self.engine.registry.describe()]

    def submit(self, plugin: Any, params: Any, log_level: str | None) -> str | None:
        return None  # every plugin runs in this process

    def wait(self, task_id: str, timeout: float | None) -> None:
        wait_until(lambda: self.engine.is_finished(task_id), timeout, f"task {task_id}")

    def cancel(self, task_id: str) -> bool:
        """A task another process runs on a shared store: its owner is asked (and stops it within a beat of
        its heartbeat, at once when it hears the request). A kernel's task, which this process only
        ingests, is cancelled in that kernel."""
        if not self.store.shared or self.engine.owns(task_id):
            raise TaskActiveError(f"task {task_id} runs in another process; cancel it there")
        return self.store.request_cancel(task_id)

    def cleanup(self, older_than: timedelta, user: str | None) -> list[str]:
        engine = self.engine
        engine.buffer.flush()
        cutoff = datetime.now(timezone.utc) - older_than
        ids = [i for i in self.store.finished_before(cutoff, user)
               if not ((state := engine.runner.get(i)) and state.status in ACTIVE)]
        if ids:
            engine.delete_tasks(ids)
        return ids

    def whoami(self) -> dict[str, Any]:
        return {"user": self._username, "others_visible": True}  # the store is this process's to read

    def maintain(self, now: float) -> None:
        """Every second: tell the owners of the tasks followed live here. Four times a lease: renew this
        process's lease on its tasks, cancel those another process asked it to, and mark INTERRUPTED the
        tasks of any process on the store whose lease ran out (any live process does it: no one waits
        for a start)."""
        engine = self.engine
        if not engine.buffer.connected:
            return
        if self.listener is not None:
            self.store.announce_watch(self._followed_elsewhere())
        if now < self._next_beat:
            return
        self._next_beat = now + max(1.0, engine.lease / 4)
        # A RUNNING task's row was queued when it was made; once written, the heartbeat renews it while
        # it is this process's. One neither waiting to be written nor renewed was taken from it.
        running = [state.id for state in engine.runner.active() if state.status == "RUNNING"]
        unwritten = engine.buffer.unwritten_tasks()
        renewed = self.store.heartbeat(self.owner)
        lost = [task_id for task_id in running if task_id not in unwritten and task_id not in renewed]
        if lost:
            engine.lost_tasks(lost)
        for task_id in [task_id for task_id, asked in renewed.items() if asked]:
            engine.cancel_here(task_id)
        for task_id in self.store.recover(self.instance, self.engine.lease):
            row = self.store.get_task(task_id)
            if row is not None:
                self.engine.notify(row)

    def stream(self, task_id: str, subscription: Subscription) -> Any:
        return None  # records of the tasks of this store are emitted or ingested here

    def watch_tasks(self, on_change: Callable[[dict[str, Any]], None],
                    on_connect: Callable[[], None] | None = None) -> Watch:
        return _Listening(self.engine.on_task_change(on_change))

    def health(self, own: Health) -> Health:
        return own

    def settings_writable(self) -> bool:
        return True  # an embedded store belongs to this process

    def where(self) -> str:
        url = self.store.url
        if url.get_backend_name() == "duckdb" and url.database:
            return url.database
        return url.render_as_string(hide_password=True)


class _Listening:
    """A watch of this process's own task changes (an engine listener), closable like a socket's."""

    failed: str | None = None

    def __init__(self, unsubscribe: Callable[[], Any]) -> None:
        self.close = unsubscribe  # type: ignore[method-assign]


class ServerControl:
    """A Jupyter server owns the database (this is a kernel it started, or the CLI): registered plugins
    run there, its task-list and log WebSockets say what happens, its settings are the settings."""

    owner = None  # the server owns what this process sends it

    def __init__(self, engine: EngineSide, store: RemoteStore) -> None:
        self.engine = engine
        self.server = store
        store.on_cancel = engine.cancel_here
        self._next_lease = 0.0

    def persist_settings(self, values: dict[str, str]) -> None:
        self.server.write_settings(values)  # an admin's change must not wait for a flush

    def on_connect(self) -> list[str]:
        return []  # the server marks its own tasks at its start

    def plugins(self) -> list[dict[str, Any]]:
        """The server's plugins (they run there), and those registered in this process with register()
        (they run here, also when the server has one of that name: run_task picks it)."""
        registry = self.engine.registry
        mine = {p["name"]: dict(p, runs_in="local") for p in registry.describe() if registry.is_runtime(p["name"])}
        served = [dict(p, runs_in="server") for p in self.server.plugins() if p["name"] not in mine]
        return sorted([*served, *mine.values()], key=lambda p: p["name"])

    def submit(self, plugin: Any, params: Any, log_level: str | None) -> str | None:
        """A registered plugin runs in the server process, which owns the store: the new task's id."""
        if not isinstance(plugin, str) or self.engine.registry.is_runtime(plugin):
            return None
        try:
            return self.server.submit(plugin, params if params is not None else {}, log_level)["id"]
        except ServerError as error:
            if error.status == 404:
                raise UnknownPluginError(plugin, [p["name"] for p in self.server.plugins()]) from None
            if error.status == 400:
                raise ValueError(str(error)) from None
            raise

    def wait(self, task_id: str, timeout: float | None) -> None:
        """A server's task ends when its task-list WebSocket says so (no polling); the task is read once
        each time the socket opens, in case it ended meanwhile. If the socket gives up (refused, or
        no server for a minute), the task's row is polled instead, which says what is wrong."""
        engine = self.engine
        ended = threading.Event()

        def on_change(row: dict[str, Any]) -> None:
            if row["id"] == task_id and (row.get("deleted") or row["status"] not in ACTIVE):
                ended.set()

        def on_connect() -> None:
            try:
                if engine.is_finished(task_id):
                    ended.set()
            except UnknownTaskError:  # deleted meanwhile: the caller's next read says so
                ended.set()

        if engine.is_finished(task_id):  # a finished task answers at once; an unknown one raises
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        watch = self.watch_tasks(on_change, on_connect)
        try:
            while not ended.wait(0.25):
                left = None if deadline is None else deadline - time.monotonic()
                if watch.failed:
                    wait_until(lambda: engine.is_finished(task_id), left, f"task {task_id}")
                    return
                if left is not None and left <= 0:
                    raise TimeoutError(f"task {task_id} did not finish within {timeout} s")
        finally:
            watch.close()

    def cancel(self, task_id: str) -> bool:
        return self.server.cancel(task_id)

    def cleanup(self, older_than: timedelta, user: str | None) -> list[str]:
        return self.server.cleanup(f"{older_than.total_seconds()}s", user)

    def whoami(self) -> dict[str, Any]:
        """As the server records this process (tasks run here are recorded by the server as it identifies
        their requests); the user this process runs as while the server cannot be asked."""
        try:
            return self.server.whoami()
        except (ServerError, ConnectionError):
            return {"user": os_username(), "others_visible": True}

    def maintain(self, now: float) -> None:
        """Follow the server's settings; renew the leases of the tasks this process runs (the server
        marks one silent for a minute INTERRUPTED)."""
        engine = self.engine
        engine.load_settings(self.server.load_settings)
        if now >= self._next_lease:
            self._next_lease = now + LEASE / 4
            for state in engine.runner.active():
                engine.buffer.put_task(state.row())

    def stream(self, task_id: str, subscription: Subscription) -> Any:
        """A task the server runs: its log WebSocket feeds the subscription (history past its filter's
        `after`, then live records), and the task's status changes reach the engine's listeners."""
        if self.engine.runner.get(task_id) is not None:
            return None
        return self.server.stream(task_id, subscription, on_status=self.engine.notify)

    def watch_tasks(self, on_change: Callable[[dict[str, Any]], None],
                    on_connect: Callable[[], None] | None = None) -> Watch:
        """The server hears every task (its own, and this process's through ingest): its task-list
        WebSocket says what changes; each (re)connection calls `on_connect` first (re-read the list)."""
        return self.server.watch_tasks(on_change, on_connect)

    def health(self, own: Health) -> Health:
        """This process's records on their way, and the server's way to its database: that being down
        makes the whole way unavailable, whatever this process's buffer says."""
        try:
            server = self.server.connection.get_json("health")
        except Exception as error:  # unreachable, or an error answer
            return replace(own, database_available=False,
                           last_error="; ".join(e for e in (own.last_error, f"server: {error}") if e))
        errors = [own.last_error, server.get("last_error") and f"server: {server['last_error']}"]
        return replace(
            own,
            pending=own.pending + int(server.get("pending") or 0),
            spilled=own.spilled + int(server.get("spilled") or 0),
            last_error="; ".join(e for e in errors if e) or None,
            database_available=own.database_available and bool(server.get("database_available")),
            server=server,
        )

    def settings_writable(self) -> bool:
        """The server decides for its users (jupyter-server's authorizer)."""
        try:
            return bool(self.server.connection.get_json("settings").get("writable"))
        except Exception:
            return False

    def where(self) -> str:
        return "the Jupyter server at " + self.server.connection.url.rstrip("/")

    def close(self) -> None:
        pass  # its sockets are the engine's readers', each closed by its reader
