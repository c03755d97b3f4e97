"""What one process changes in a shared PostgreSQL store, told to the others as it commits: NOTIFY inside
the writing transaction (so a change is told exactly when it is there to read, and never when it rolled
back), and `StoreListener`, the thread of each process that hears the others.

An event is a JSON object: "o" the instance that made it, and any of "l" (records written:
{task id: [first seq, last seq]}), "t" (task rows written), "d" (tasks deleted), "s" (settings
written), "c" (a cancel asked of the task's owner), "w" (tasks some process is watching live: their
owner writes them sooner). A listener hears only what happened while it listened; after any gap
(its start, a reconnect) it says so (`on_gap`), and its user reads what it needs again.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sqlalchemy import text

log = logging.getLogger("nbtasklog")

CHANNEL = "nbtasklog"
# PostgreSQL refuses a payload of 8,000 bytes or more: an event past this is sent in parts.
MAX_PAYLOAD = 7_000
_RETRY = (0.25, 30.0)  # seconds: the first reconnect's wait, doubling to this


def announce(conn: Any, origin: str, *, logs: Mapping[str, tuple[int, int]] | None = None,
             tasks: Iterable[str] = (), deleted: Iterable[str] = (), settings: Iterable[str] = (),
             cancel: Iterable[str] = (), watch: Iterable[str] = ()) -> None:
    """NOTIFY the other processes, in the transaction of `conn` (PostgreSQL): delivered on its commit."""
    parts: list[tuple[str, Any]] = [("l", item) for item in (logs or {}).items()]
    for kind, ids in (("t", tasks), ("d", deleted), ("s", settings), ("c", cancel), ("w", watch)):
        parts.extend((kind, i) for i in ids)
    for payload in _payloads(origin, parts):
        conn.execute(text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload})


def _payloads(origin: str, parts: list[tuple[str, Any]]) -> Iterable[str]:
    """The parts of one event packed into payloads each below MAX_PAYLOAD."""
    event: dict[str, Any] = {}
    size = 0
    for kind, item in parts:
        cost = len(json.dumps(item, ensure_ascii=False).encode()) + 4
        if event and size + cost > MAX_PAYLOAD:
            yield _payload(origin, event)
            event, size = {}, 0
        if kind == "l":
            event.setdefault("l", {})[item[0]] = list(item[1])
        else:
            event.setdefault(kind, []).append(item)
        size += cost
    if event:
        yield _payload(origin, event)


def _payload(origin: str, event: dict[str, Any]) -> str:
    return json.dumps({"o": origin, **event}, ensure_ascii=False, separators=(",", ":"))


class StoreListener:
    """A daemon thread on its own connection, LISTENing: `on_event(event)` for every event another instance
    made, `on_gap()` whenever events may have been missed (after it connects, each time). It reconnects
    with backoff while the database is away and never ends before close()."""

    def __init__(self, conninfo: str, origin: str, on_event: Callable[[dict[str, Any]], None],
                 on_gap: Callable[[], None]) -> None:
        self._conninfo = conninfo
        self._origin = origin
        self._on_event = on_event
        self._on_gap = on_gap
        self._stop = threading.Event()
        self.listening = threading.Event()  # set while connected and listening
        self._thread = threading.Thread(target=self._run, name="nbtasklog-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psycopg

        delay = _RETRY[0]
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10,
                                     application_name=f"nbtasklog listener {self._origin}") as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    delay = _RETRY[0]
                    self._call(self._on_gap)
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=0.5):
                            self._heard(notice.payload)
            except Exception as error:  # the database away: listen again when it is back
                log.debug("nbtasklog: not listening to the store (%s); retrying in %.2f s", error, delay)
            self.listening.clear()
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, _RETRY[1])

    def _heard(self, payload: str) -> None:
        try:
            event = json.loads(payload)
        except ValueError:
            return  # not ours: another program on the channel
        if isinstance(event, dict) and event.get("o") != self._origin:
            self._call(self._on_event, event)

    @staticmethod
    def _call(callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:  # one event's handling failing must not end the listening
            log.exception("nbtasklog: handling a store event failed")

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
