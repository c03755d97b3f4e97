"""WriteBuffer: holds what is not yet in the database and writes it in batches, losing nothing.

Records arrive one by one from emitters (a deque append, no lock). A flusher thread turns them into
Arrow batches every `flush_interval` or when `flush_size` records wait, and writes each batch in one
transaction together with changed task rows and settings. When a write fails (file locked by another
process, disk full, server down) the batch stays, in order, and is retried with backoff; batches past
`memory_cap` records go to Arrow files in `spill_dir` and are replayed in order, also after a restart.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import count
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..record import LogRecord
from .store import ACTIVE_STATUSES, LOG_ARROW_SCHEMA, Store, arrow_to_records, records_to_arrow

log = logging.getLogger("nbtasklog.buffer")

# One DuckDB row group: smaller transactions go through the WAL and a checkpoint again, which cost
# 1.6 s of CPU per million rows in 20k-row batches against 0.7 s in row-group-sized ones (bench/).
ROW_GROUP = 122_880
BATCH_ROWS = ROW_GROUP  # largest batch written in one transaction (and one spill file)
MAX_BACKOFF = 30.0
WATCH = 0.05  # seconds between looks at the queue length
# DuckDB's Python client takes the GIL between the steps of a query (to check for Ctrl-C). With a
# task's thread busy logging, each take waited out CPython's 5 ms switch interval: a batch's write
# took 0.22 s instead of 0.09 s. Shorter turns while writing: end to end 530k → 700k records/s (bench/).
WRITE_SWITCH_INTERVAL = 0.0005


class _ShortGilTurns:
    """While any flusher of the process writes, threads waiting for the GIL get it after `interval` s.

    Shared by every engine of the process: the interval found is put back when the last write ends,
    unless someone set another one meanwhile; a shorter one found is left alone.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._writers = 0
        self._before = 0.0
        self._ours: float | None = None  # the value we set, or None when we set nothing

    def __enter__(self) -> None:
        with self._lock:
            if self._writers == 0:
                self._before = sys.getswitchinterval()
                self._ours = None
                if self._before > self.interval:
                    sys.setswitchinterval(self.interval)
                    self._ours = sys.getswitchinterval()
            self._writers += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._writers -= 1
            if self._writers == 0 and self._ours is not None and sys.getswitchinterval() == self._ours:
                sys.setswitchinterval(self._before)


_write_turns = _ShortGilTurns(WRITE_SWITCH_INTERVAL)


@dataclass
class _Batch:
    """Log records waiting to be written: an Arrow table in memory, or an Arrow file after a spill."""

    rows: int
    table: pa.Table | None = None
    path: Path | None = None

    def load(self) -> pa.Table:
        if self.table is not None:
            return self.table
        assert self.path is not None
        with pa.memory_map(str(self.path)) as source:
            return pa.ipc.open_file(source).read_all()

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@dataclass
class Health:
    """What the flusher knows about the way to the database."""

    pending: int
    spilled: int
    last_error: str | None
    last_error_at: datetime | None
    last_flush_at: datetime | None
    flushed_total: int
    database_available: bool

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("last_error_at", "last_flush_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


class WriteBuffer:
    def __init__(
        self,
        store: Store,
        spill_dir: Path,
        flush_interval: float = 2.0,
        flush_size: int = ROW_GROUP,
        memory_cap: int = 500_000,
        on_connect: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.spill_dir = spill_dir
        self.flush_interval = flush_interval
        self.flush_size = flush_size
        self.memory_cap = memory_cap
        self._on_connect = on_connect  # run once, before the first write, when the database answers
        self._connected = False

        self._records: deque[tuple] = deque()  # LogRecord fields as plain tuples (see append)
        self._batches: deque[_Batch] = deque()  # oldest first
        self._tasks: dict[str, dict[str, Any]] = {}  # latest unwritten row per task
        self._settings: dict[str, str] = {}
        self._lock = threading.Lock()  # guards _batches, _tasks, _settings
        self._write_lock = threading.RLock()  # one writer at a time; readers hold it for a consistent view
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._spill_names = count()
        self._delay = flush_interval
        self._last_error: str | None = None
        self._last_error_at: datetime | None = None
        self._last_flush_at: datetime | None = None
        self._flushed_total = 0
        # pyarrow imports pandas lazily the first time it builds an array; at interpreter exit that
        # import fails ("can't register atexit after shutdown"), so make it happen now.
        _to_arrow([LogRecord("", 0, 0, "INFO", "", "", None)])
        self._load_spill()

    # ---- producers ----------------------------------------------------------------------------
    @property
    def append(self) -> Callable[[tuple], None]:
        """Queue one record, a plain tuple of its fields: the hot path is the deque's own append (the
        flusher watches the length). Emitters hand in plain tuples; a LogRecord is copied first
        (`tuple(record)`, as Engine.ingest does).
        A tuple subclass such as LogRecord stays tracked by the garbage collector for good, so a
        queue of them made every full collection walk all of them (a third of the time of a
        10^6-record task went there); a plain tuple of str/int/None is untracked at its first
        collection. unwritten() gives LogRecords back.
        """
        return self._records.append

    def put_task(self, row: Mapping[str, Any]) -> None:
        """Queue the latest state of a task row; it is written with the next batch."""
        with self._lock:
            self._tasks[row["id"]] = dict(row)

    def put_settings(self, values: Mapping[str, str]) -> None:
        with self._lock:
            self._settings.update(values)
        self._wake.set()

    # ---- the flusher --------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="nbtasklog-flusher", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            # Wake every WATCH s to see whether flush_size records are waiting, else after the delay.
            deadline = time.monotonic() + self._delay
            full = False
            while not self._stopping:
                if len(self._records) >= self.flush_size:
                    full = True
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._wake.wait(min(WATCH, remaining)):
                    break
            self._wake.clear()
            if not self._stopping:
                self._flush(whole_batches=full)

    def flush(self) -> bool:
        """Write everything queued so far; True when nothing is left waiting."""
        return self._flush(whole_batches=False)

    def _flush(self, whole_batches: bool) -> bool:
        """Write what is queued; with `whole_batches`, a rest short of a full batch waits for the next flush.

        True when nothing that was taken from the queue is left waiting.
        """
        with self._write_lock:
            self._drain(whole_batches)
            while True:
                with self._lock:
                    tasks = dict(self._tasks)
                    settings = dict(self._settings)
                    batch = self._batches[0] if self._batches else None
                try:
                    # Connect even with nothing to write: a new process must mark the tasks its
                    # dead predecessor left RUNNING as INTERRUPTED before anyone reads them.
                    if not self._connected:
                        if self._on_connect is not None:
                            self._on_connect()
                        self._connected = True
                except Exception as error:
                    self._failed(error)
                    return False
                if not tasks and not settings and batch is None:
                    self._delay = self.flush_interval
                    return True
                try:
                    table = batch.load() if batch is not None else None
                    with _write_turns if self.store.is_duckdb else nullcontext():
                        self.store.write(tasks.values(), table, settings)
                except Exception as error:  # any failure: keep everything, retry later
                    self._failed(error)
                    return False
                with self._lock:
                    for task_id, row in tasks.items():
                        if self._tasks.get(task_id) == row:
                            del self._tasks[task_id]
                    for key, value in settings.items():
                        if self._settings.get(key) == value:
                            del self._settings[key]
                    if batch is not None:
                        self._batches.popleft()
                if batch is not None:
                    batch.discard()
                    self._flushed_total += batch.rows
                self._last_flush_at = datetime.now(timezone.utc)
                if self._last_error is not None and not self._batches:
                    log.warning("nbtasklog: database available again; every waiting record was written")
                    self._last_error = None

    def _failed(self, error: Exception) -> None:
        first = self._last_error is None
        self._last_error = f"{type(error).__name__}: {error}".splitlines()[0][:500]
        self._last_error_at = datetime.now(timezone.utc)
        self._delay = min(MAX_BACKOFF, self._delay * 2 if not first else 0.25)
        # _connected stays True after a lost connection: on_connect (marking tasks INTERRUPTED)
        # must run once per process, or a reconnect would mark this process's running tasks.
        self.store.reset()
        if first:
            log.warning("nbtasklog: cannot write to the database, keeping records and retrying: %s", self._last_error)

    def _drain(self, whole_batches: bool = False) -> None:
        """Move the records queued now into Arrow batches, spilling to disk past the memory cap.

        Only those queued when it starts: chasing the records a running task adds meanwhile made a
        tail of small batches, each its own transaction (14 of 21 writes for 10^6 records, bench 2).
        """
        records = self._records
        popleft = records.popleft
        waiting = len(records)
        if whole_batches:  # a flush for size: full batches only, the rest joins the next one
            waiting -= waiting % max(1, min(self.flush_size, BATCH_ROWS))
        while waiting:
            size = min(waiting, BATCH_ROWS)
            waiting -= size
            chunk = [popleft() for _ in range(size)]
            table = _to_arrow(chunk)
            with self._lock:
                in_memory = sum(b.rows for b in self._batches if b.table is not None)
                if in_memory + size > self.memory_cap:
                    self._batches.append(self._spill(table))
                else:
                    self._batches.append(_Batch(size, table=table))

    def _spill(self, table: pa.Table) -> _Batch:
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        # Names sort in write order: time, then a counter for batches within one nanosecond.
        path = self.spill_dir / f"{time.time_ns():020d}-{next(self._spill_names):08d}.arrow"
        tmp = path.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, LOG_ARROW_SCHEMA) as writer:
            writer.write_table(table)
        os.replace(tmp, path)
        return _Batch(table.num_rows, path=path)

    def _load_spill(self) -> None:
        """Batches and task rows spilled by an earlier process go first, in their order."""
        if not self.spill_dir.is_dir():
            return
        for path in sorted(self.spill_dir.glob("*.arrow")):
            try:
                with pa.memory_map(str(path)) as source:
                    rows = pa.ipc.open_file(source).read_all().num_rows
            except (OSError, pa.ArrowInvalid) as error:
                log.error("nbtasklog: unreadable spill file %s left in place: %s", path, error)
                continue
            self._batches.append(_Batch(rows, path=path))
        tasks_file = self.spill_dir / "tasks.json"
        if tasks_file.exists():
            for row in json.loads(tasks_file.read_text()):
                for key in ("created_at", "started_at", "finished_at"):
                    if row.get(key):
                        row[key] = datetime.fromisoformat(row[key])
                if row["status"] in ACTIVE_STATUSES:  # its process is gone
                    row["status"] = "INTERRUPTED"
                    row["finished_at"] = row.get("finished_at") or datetime.now(timezone.utc)
                self._tasks[row["id"]] = row
            tasks_file.unlink()
        settings_file = self.spill_dir / "settings.json"
        if settings_file.exists():
            self._settings.update(json.loads(settings_file.read_text()))
            settings_file.unlink()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the flusher and write everything; what cannot be written by `timeout` is spilled."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        deadline = time.monotonic() + timeout
        delay = 0.1
        while not self.flush():
            if time.monotonic() + delay > deadline:
                self._spill_everything()
                return False
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        return True

    def _spill_everything(self) -> None:
        with self._write_lock:
            self._drain()
            with self._lock:
                batches = [self._spill(b.table) if b.table is not None else b for b in self._batches]
                self._batches = deque(batches)
                if self._tasks:
                    rows = [
                        {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
                        for row in self._tasks.values()
                    ]
                    (self.spill_dir / "tasks.json").write_text(json.dumps(rows))
                if self._settings:
                    (self.spill_dir / "settings.json").write_text(json.dumps(self._settings))
        log.error(
            "nbtasklog: database unavailable at exit (%s); %d records kept in %s for the next start",
            self._last_error, sum(b.rows for b in batches), self.spill_dir,
        )

    # ---- readers --------------------------------------------------------------------------------
    def unwritten(self, task_id: str) -> list[LogRecord]:
        """Records of one task that are not in the database yet, in seq order.

        Call with `reading()` held, so that a batch cannot move from here to the database in between.
        """
        # list() of a deque is atomic; the queue holds plain tuples (see append)
        queued = [LogRecord._make(r) for r in list(self._records) if r[0] == task_id]
        with self._lock:
            batches = list(self._batches)
        found: list[LogRecord] = []
        for batch in batches:
            table = batch.load()
            found.extend(arrow_to_records(table.filter(pc.equal(table.column("task_id"), task_id))))
        found.extend(queued)
        return found

    def unwritten_tasks(self) -> dict[str, dict[str, Any]]:
        """Task rows queued but not yet in the database, by id."""
        with self._lock:
            return {task_id: dict(row) for task_id, row in self._tasks.items()}

    def reading(self) -> threading.RLock:
        """A lock that keeps writes out while a reader combines the database and the buffer."""
        return self._write_lock

    def health(self) -> Health:
        with self._lock:
            in_memory = sum(b.rows for b in self._batches if b.table is not None)
            spilled = sum(b.rows for b in self._batches if b.path is not None)
        return Health(
            pending=len(self._records) + in_memory + spilled,
            spilled=spilled,
            last_error=self._last_error,
            last_error_at=self._last_error_at,
            last_flush_at=self._last_flush_at,
            flushed_total=self._flushed_total,
            database_available=self._last_error is None,
        )


def _to_arrow(records: list[LogRecord]) -> pa.Table:
    try:
        return records_to_arrow(records)
    except (pa.ArrowException, UnicodeError):
        # Text Arrow cannot hold (lone surrogates, say): replace the bad characters, keep the record.
        return records_to_arrow([_clean(r) for r in records])


def _clean(record: LogRecord) -> LogRecord:
    def fix(text: str | None) -> str | None:
        return None if text is None else text.encode("utf-8", "replace").decode("utf-8")

    record = LogRecord._make(record)  # queued records are plain tuples (see WriteBuffer.append)
    return record._replace(source=fix(record.source), message=fix(record.message), metadata_json=fix(record.metadata_json))
