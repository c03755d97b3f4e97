"""WriteBuffer: holds what is not yet in the database and writes it in batches, losing nothing.

Records arrive one by one from emitters (a deque append, no lock). A flusher thread turns them into
Arrow batches every `flush_interval` or when `flush_size` records wait, and writes each batch in one
transaction together with changed task rows and settings. When a write fails (file locked by another
process, disk full, server down) the batch stays, in order, and is retried with backoff; batches past
`memory_cap` records go to Arrow files in `spill_dir` and are replayed in order, also after a restart.

Each batch is named when it is made, and that name (a stamp that only grows, across processes too)
names its spill file: batches replay in the order their records were made, however late they were
spilled. A batch that may have been written already (a spill file left by an earlier process, a
retry after a failed write) is written with `only_new`, so replay never duplicates. While records
wait on disk, tasks.json holds the task rows not yet in the database. A spill that fails keeps the
batch in memory; a spill file that cannot be read is reported and skipped.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..record import LogRecord
from ..statuses import ACTIVE
from ..wire import task_row_from_wire, task_row_to_wire
from .interface import LogStore
from .spill_home import SpillHome
from .store import LOG_ARROW_SCHEMA, arrow_to_records, records_to_arrow

log = logging.getLogger("nbtasklog.buffer")

# One DuckDB row group: smaller transactions go through the WAL and a checkpoint again, which cost
# 1.6 s of CPU per million rows in 20k-row batches against 0.7 s in row-group-sized ones (bench/).
ROW_GROUP = 122_880
BATCH_ROWS = ROW_GROUP  # largest batch written in one transaction (and one spill file)
MAX_BACKOFF = 30.0
WATCH = 0.05  # seconds between looks at the queue length
HURRIED_INTERVAL = 0.1  # seconds between flushes while another process follows a task live (hurry)
DATABASE, SPILL, LOST = "database", "spill", "lost"  # the kinds of error health() reports
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
    """Log records waiting to be written: an Arrow table in memory, or an Arrow file after a spill.

    `name` is given when the batch is made and names its spill file: names sort in the order batches
    were made. `maybe_written`: the batch may be in the database already (a spill file an earlier
    process left, which it may have committed before it died; or a write that failed, whose commit
    may have gone through before the error), so it is written without the records already stored.
    """

    name: str
    rows: int
    table: pa.Table | None = None
    path: Path | None = None
    maybe_written: bool = False

    def load(self) -> pa.Table:
        if self.table is not None:
            return self.table
        assert self.path is not None
        return _read_arrow_file(self.path)


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
    # In a kernel or the CLI talking to a Jupyter server: the server's own health, as it answered (the
    # fields above then cover both: this process's records on their way and the server's to its database).
    server: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("last_error_at", "last_flush_at"):
            out[key] = out[key].isoformat() if out[key] else None
        if out["server"] is None:
            del out["server"]
        return out


class WriteBuffer:
    """What is on its way to the store: records and task rows queued, batched, written, retried, spilled."""

    append: Callable[[tuple[Any, ...]], None]
    """Queue one record, a plain tuple of its fields: the record queue's own `deque.append`, bound once
    in __init__, so a record's way in is one C call with no Python frame and no lock (only the flusher
    takes records out, from the other end, watching the queue's length). Emitters hand in plain tuples;
    a LogRecord is copied first (`tuple(record)`, as Engine.ingest does).
    A tuple subclass such as LogRecord stays tracked by the garbage collector for good, so a queue of
    them made every full collection walk all of them (a third of the time of a 10^6-record task went
    there); a plain tuple of str/int/None is untracked at its first collection. unwritten() gives
    LogRecords back.
    """

    def __init__(
        self,
        store: LogStore,
        spill_root: Path,
        instance_id: str,
        flush_interval: float = 2.0,
        flush_size: int = ROW_GROUP,
        memory_cap: int = 500_000,
        on_connect: Callable[[], None] | None = None,
        on_refused: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.store = store
        self.home = SpillHome(spill_root, instance_id)
        self.spill_dir = self.home.dir
        self._on_refused = on_refused  # task rows the store refused: their task is no longer this process's
        self.flush_interval = flush_interval
        self.flush_size = flush_size
        self.memory_cap = memory_cap
        self._on_connect = on_connect  # run once, before the first write, when the database answers
        self._connected = False

        self._records: deque[tuple[Any, ...]] = deque()  # LogRecord fields as plain tuples (see append)
        self.append = self._records.append
        self._batches: deque[_Batch] = deque()  # oldest first
        self._tasks: dict[str, dict[str, Any]] = {}  # latest unwritten row per task
        self._row_modes: dict[str, str] = {}  # "new" / "claim" until that row is written (Store.write)
        self._settings: dict[str, str] = {}
        self._lock = threading.Lock()  # guards _batches, _tasks, _settings
        self._write_lock = threading.RLock()  # one writer at a time; readers hold it for a consistent view
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._last_stamp = 0  # of the newest batch name; see _next_name
        self._delay = flush_interval
        self._hurried_until = 0.0  # monotonic: flushes come every HURRIED_INTERVAL until then (hurry)
        # What health() reports, by kind: DATABASE (the way there; cleared once everything is
        # written), SPILL (spilling failed; cleared when a spill works again or nothing waits),
        # LOST (spill files that could not be replayed; kept for the life of the process).
        self._errors: dict[str, str] = {}
        self._lost_files = 0
        self._last_error_at: datetime | None = None
        # Left by an earlier process: rows of tasks still active in its tasks.json, for on_connect to
        # mark INTERRUPTED, and the highest seq of each task in its spill files.
        self._left_active: dict[str, dict[str, Any]] = {}
        self._left_active_taken = False
        self._spilled_last_seqs: dict[str, int] = {}
        self._left_ended: set[str] = set()  # and the tasks whose final row its tasks.json holds
        self._state_files: set[str] = set()  # tasks.json / settings.json on disk, to update after writes
        self._last_flush_at: datetime | None = None
        self._flushed_total = 0
        # pyarrow imports pandas lazily the first time it builds an array; at interpreter exit that
        # import fails ("can't register atexit after shutdown"), so make it happen now.
        _to_arrow([LogRecord("", 0, 0, "INFO", "", "", None)])
        self._load_spill()

    # ---- producers (append: see above) --------------------------------------------------------
    def put_task(self, row: Mapping[str, Any], mode: str | None = None) -> None:
        """Queue the latest state of a task row; it is written with the next batch. `mode` ("new": the
        task's first row; "claim": a task taken over) lasts until a row of that task is written."""
        with self._lock:
            self._tasks[row["id"]] = dict(row)
            if mode is not None and self._row_modes.get(row["id"]) != "claim":
                self._row_modes[row["id"]] = mode
        if self.store.shared and (mode == "new" or row.get("status") not in ACTIVE) and not self._backing_off:
            self._wake.set()  # a task's start and end are written at once: other processes list tasks too

    @property
    def connected(self) -> bool:
        """The store answered once and on_connect ran."""
        return self._connected

    def put_settings(self, values: Mapping[str, str]) -> None:
        with self._lock:
            self._settings.update(values)
        self._wake.set()

    @property
    def _backing_off(self) -> bool:
        """A write failed and not everything is written since: the next waits out its retry delay."""
        return DATABASE in self._errors

    def unwritten_settings(self) -> set[str]:
        """The settings queued but not yet in the database: what the database says of them is older."""
        with self._lock:
            return set(self._settings)

    def hurry(self, seconds: float) -> None:
        """Flush every HURRIED_INTERVAL for the next `seconds` (someone elsewhere follows a task live), unless
        the store is failing: its retry backoff stands."""
        now = time.monotonic()
        if now >= self._hurried_until and not self._backing_off:
            self._wake.set()  # a wait of a whole flush_interval under way ends now
        self._hurried_until = now + seconds

    # ---- the flusher --------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="nbtasklog-flusher", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stopping:
            try:
                # Wake every WATCH s to see whether flush_size records are waiting, else after the delay.
                now = time.monotonic()
                hurried = now < self._hurried_until and not self._backing_off
                deadline = now + (min(self._delay, HURRIED_INTERVAL) if hurried else self._delay)
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
            except Exception as error:  # the thread that writes must never end: report, back off, retry
                self._unexpected(error)

    def flush(self) -> bool:
        """Write everything queued so far; True when nothing is left waiting."""
        return self._flush(whole_batches=False)

    def _flush(self, whole_batches: bool) -> bool:
        """Write what is queued; with `whole_batches`, a rest short of a full batch waits for the next flush.

        True when nothing that was taken from the queue is left waiting. Never raises: what fails
        is kept, reported in health() and retried.
        """
        with self._write_lock:
            try:
                return self._write_waiting(whole_batches)
            except Exception as error:
                self._unexpected(error)
                return False

    def _write_waiting(self, whole_batches: bool) -> bool:
        with self._lock:
            settled = dict(self._tasks)  # put before the drain: every record of their tasks is drained below
        rest = self._drain(whole_batches)
        if rest and any(row.get("status") not in ACTIVE for row in settled.values()):
            # A rest short of a whole batch stays queued: the tasks with records in it are not settled.
            # copy(): one C call, so the tasks appending meanwhile cannot break the walk over it
            waiting = {record[0] for record in itertools.islice(self._records.copy(), rest)}
            settled = {task_id: row for task_id, row in settled.items() if task_id not in waiting}
        while True:
            with self._lock:
                tasks = dict(self._tasks)
                modes = {task_id: self._row_modes[task_id] for task_id in tasks if task_id in self._row_modes}
                settings = dict(self._settings)
                batch = self._batches[0] if self._batches else None
                later = len(self._batches) > 1
            written = _final_rows_last(tasks, settled, modes, later)
            try:
                # Connect even with nothing to write: a new process must mark the tasks its
                # dead predecessor left RUNNING as INTERRUPTED before anyone reads them.
                if not self._connected:
                    if self._on_connect is not None:
                        self._on_connect()
                    self._connected = True
                    self._settle_left_active()
            except Exception as error:
                self._failed(error)
                return False
            if batch is None and len(written) < len(tasks) and not whole_batches:
                # Final rows put after the drain: their tasks' last records are queued by now.
                with self._lock:
                    settled = dict(self._tasks)
                self._drain()
                continue
            if not written and not settings and batch is None:
                self._delay = self.flush_interval
                self._errors.pop(SPILL, None)  # nothing waits any more, in memory or on disk
                return True
            table = None
            if batch is not None:
                try:
                    table = batch.load()
                except (OSError, pa.ArrowException) as error:
                    self._skip_unreadable(batch, error)
                    continue
            try:
                with _write_turns if self.store.gil_bound_writes else nullcontext():
                    refused = self.store.write(written.values(), table, settings, row_modes=modes,
                                               only_new=batch is not None and batch.maybe_written)
            except Exception as error:  # any failure: keep everything, retry later
                if batch is not None:
                    batch.maybe_written = True  # the error may have come after the commit
                self._failed(error)
                return False
            with self._lock:
                for task_id, row in written.items():
                    self._row_modes.pop(task_id, None)
                    if self._tasks.get(task_id) == row:
                        del self._tasks[task_id]
                for key, value in settings.items():
                    if self._settings.get(key) == value:
                        del self._settings[key]
                if batch is not None:
                    self._batches.popleft()
            if batch is not None:
                self._flushed_total += batch.rows
                if batch.path is not None:
                    _remove(batch.path)  # if it stays (read-only disk), the next start skips its stored records
            if refused and self._on_refused is not None:
                self._on_refused(refused)
            self._update_state_files()
            self._last_flush_at = datetime.now(timezone.utc)
            if DATABASE in self._errors and not self._batches:
                log.warning("nbtasklog: database available again; every waiting record was written")
                del self._errors[DATABASE]

    def _report(self, kind: str, text: str) -> bool:
        """Set one of the errors health() reports; True when that kind was not reported before."""
        first = kind not in self._errors
        self._errors[kind] = text
        self._last_error_at = datetime.now(timezone.utc)
        return first

    def _failed(self, error: Exception) -> None:
        first = self._report(DATABASE, _describe(error))
        self._delay = min(MAX_BACKOFF, self._delay * 2 if not first else 0.25)
        # _connected stays True after a lost connection: on_connect (marking tasks INTERRUPTED)
        # must run once per process, or a reconnect would mark this process's running tasks.
        self.store.reset()
        if first:
            log.warning("nbtasklog: cannot write to the database, keeping records and retrying: %s",
                        self._errors[DATABASE])

    def _unexpected(self, error: Exception) -> None:
        """A failure nothing above expected (a bug, say): everything stays queued and is retried with backoff."""
        if self._errors.get(DATABASE) != _describe(error):
            log.exception("nbtasklog: unexpected error in the write buffer; keeping every record and retrying")
        self._failed(error)

    def _skip_unreadable(self, batch: _Batch, error: Exception) -> None:
        """A spill file that vanished (another process replayed it) or cannot be read: the rest goes on."""
        with self._lock:
            self._batches.popleft()
        self._lost(batch.path, error, batch.rows)

    def _lost(self, path: Path | None, error: Exception, rows: int | None = None) -> None:
        what = "vanished" if isinstance(error, FileNotFoundError) else "cannot be read"
        records = f"its {rows} records" if rows is not None else "its records"
        text = f"spill file {path} {what}, {records} not written ({_describe(error)})"
        log.error("nbtasklog: %s", text)
        self._lost_files += 1
        if self._lost_files > 1:
            text = f"{self._lost_files} spill files not replayed, the last: {text}"
        self._report(LOST, text)

    def _drain(self, whole_batches: bool = False) -> int:
        """Move the records queued now into Arrow batches, spilling to disk past the memory cap; returns
        how many of them it left queued (the rest short of a whole batch, with `whole_batches`).

        Only those queued when it starts: chasing the records a running task adds meanwhile made a
        tail of small batches, each its own transaction (14 of the 21 writes of a 10^6-record task).
        """
        records = self._records
        popleft = records.popleft
        waiting = rest = len(records)
        if whole_batches:  # a flush for size: full batches only, the rest joins the next one
            waiting -= waiting % max(1, min(self.flush_size, BATCH_ROWS))
        rest -= waiting
        with self._lock:
            in_memory = sum(b.rows for b in self._batches if b.table is not None)
        if waiting and in_memory + waiting > self.memory_cap:
            # Task rows before their records: a process killed between the two files must not
            # leave records whose task has no row anywhere.
            self._save_task_rows()
        while waiting:
            size = min(waiting, BATCH_ROWS)
            waiting -= size
            chunk = [popleft() for _ in range(size)]
            batch = _Batch(self._next_name(), size, table=_to_arrow(chunk))
            with self._lock:
                in_memory = sum(b.rows for b in self._batches if b.table is not None)
            if in_memory + size > self.memory_cap:
                batch = self._spill(batch)
            with self._lock:
                self._batches.append(batch)
        return rest

    def _next_name(self) -> str:
        # A stamp past the newest batch's, even if the clock went back, and past every spill file
        # found at start: names (and so spill files) sort in the order batches were made.
        self._last_stamp = max(time.time_ns(), self._last_stamp + 1)
        return f"{self._last_stamp:020d}"

    def _spill(self, batch: _Batch) -> _Batch:
        """The batch moved to its Arrow file; when the disk refuses (full, read-only), the batch as it was."""
        assert batch.table is not None
        path = self.spill_dir / f"{batch.name}.arrow"
        tmp = path.with_suffix(".tmp")
        try:
            self.spill_dir.mkdir(parents=True, exist_ok=True)
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, LOG_ARROW_SCHEMA) as writer:
                writer.write_table(batch.table)
            os.replace(tmp, path)
        except (OSError, pa.ArrowException) as error:
            if tmp.exists():  # unlinking even a missing file fails on a read-only disk
                _remove(tmp)
            text = f"spilling to {self.spill_dir} failed, {batch.rows} records kept in memory: {_describe(error)}"
            if self._report(SPILL, text):
                log.error("nbtasklog: %s", text)
            return batch
        self._errors.pop(SPILL, None)
        return replace(batch, table=None, path=path)

    def _load_spill(self) -> None:
        """Batches and task rows spilled by an earlier process go first, in their order."""
        if not self.spill_dir.is_dir():
            return
        for tmp in sorted(self.spill_dir.glob("*.tmp")):
            # A spill its process did not live to finish: whole (only the rename was missing), it is
            # the batch it was meant to be; cut short, its records were only ever in that memory.
            try:
                _read_arrow_file(tmp)
                os.replace(tmp, tmp.with_suffix(".arrow"))
            except (OSError, pa.ArrowException) as error:
                log.warning("nbtasklog: removing %s, a spill cut short by the end of its process: %s", tmp, error)
                _remove(tmp)
        for path in sorted(self.spill_dir.glob("*.arrow")):
            self._last_stamp = max(self._last_stamp, _stamp(path))
            try:
                table = _read_arrow_file(path)
            except (OSError, pa.ArrowException) as error:
                self._lost(path, error)
                continue  # left in place: a later start tries it again
            self._batches.append(_Batch(path.stem, table.num_rows, path=path, maybe_written=True))
            for last in table.group_by("task_id").aggregate([("seq", "max")]).to_pylist():
                known = self._spilled_last_seqs.get(last["task_id"], 0)
                self._spilled_last_seqs[last["task_id"]] = max(last["seq_max"], known)
        for row in self._read_state_file("tasks.json") or ():
            row = task_row_from_wire(row)
            if row["status"] in ACTIVE:  # its process is gone: on_connect marks it INTERRUPTED
                self._left_active[row["id"]] = row
            else:
                self._tasks[row["id"]] = row
                self._row_modes[row["id"]] = "new"  # it may never have been written
                self._left_ended.add(row["id"])
        self._settings.update(self._read_state_file("settings.json") or {})

    def _read_state_file(self, name: str) -> Any:
        path = self.spill_dir / name
        if not path.exists():
            return None
        try:
            value = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            self._lost(path, error)
            return None
        self._state_files.add(name)  # removed once what it holds is written (see _update_state_files)
        return value

    def left_active(self) -> tuple[list[dict[str, Any]], dict[str, int], set[str]]:
        """For on_connect, to mark the tasks of dead processes INTERRUPTED (Store.recover): the rows of
        tasks.json whose tasks were still active, the highest seq of each task in the spill files found
        at start (those records are written right after on_connect), and the tasks whose final row
        tasks.json holds (written right after too: they ended, whatever the database says)."""
        with self._lock:
            self._left_active_taken = True
            return ([dict(row) for row in self._left_active.values()], dict(self._spilled_last_seqs),
                    set(self._left_ended))

    def _settle_left_active(self) -> None:
        """After on_connect: rows it did not take (a remote store cannot mark tasks) are written as
        INTERRUPTED, counting the records their spill files hold."""
        with self._lock:
            if not self._left_active_taken:
                for task_id, row in self._left_active.items():
                    count = max(row.get("record_count") or 0, self._spilled_last_seqs.get(task_id, 0))
                    self._tasks.setdefault(task_id, dict(
                        row, status="INTERRUPTED", record_count=count,
                        finished_at=row.get("finished_at") or datetime.now(timezone.utc)))
            self._left_active.clear()
        self._update_state_files()

    def _save_task_rows(self) -> None:
        """While records wait on disk, tasks.json holds the task rows not yet in the database: a process
        killed meanwhile leaves its tasks' rows next to their records."""
        with self._lock:
            rows = [*self._left_active.values(), *self._tasks.values()]
        path = self.spill_dir / "tasks.json"
        if not rows and path.name not in self._state_files:
            return
        try:
            if rows:
                _write_text(path, json.dumps([task_row_to_wire(row) for row in rows]))
                self._state_files.add(path.name)
            else:
                _remove(path, strict=True)
                self._state_files.discard(path.name)
        except OSError as error:
            text = f"spilling task rows to {path} failed: {_describe(error)}"
            if self._report(SPILL, text):
                log.error("nbtasklog: %s", text)

    def _update_state_files(self) -> None:
        """After a write: tasks.json keeps only rows still unwritten, settings.json goes once written."""
        if "tasks.json" in self._state_files:
            self._save_task_rows()
        if "settings.json" in self._state_files and not self._settings:
            _remove(self.spill_dir / "settings.json")
            self._state_files.discard("settings.json")

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the flusher and write everything; what cannot be written by `timeout` is spilled."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            deadline = time.monotonic() + timeout
            delay = 0.1
            while not self.flush():
                if time.monotonic() + delay > deadline:
                    with self._write_lock:
                        self._spill_everything()
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            return True
        finally:
            self.home.close()

    def _spill_everything(self) -> None:
        self._drain()
        with self._lock:
            batches = list(self._batches)
        # Each keeps the name it got when it was made: an older batch still in memory replays before
        # the newer ones spilled past the cap.
        batches = [self._spill(b) if b.table is not None else b for b in batches]
        with self._lock:
            self._batches = deque(batches)
        self._save_task_rows()
        if self._settings:
            try:
                _write_text(self.spill_dir / "settings.json", json.dumps(self._settings))
            except OSError as error:
                log.error("nbtasklog: settings changes lost at exit, %s cannot be written: %s", self.spill_dir, error)
        kept = sum(b.rows for b in batches if b.path is not None)
        lost = sum(b.rows for b in batches if b.path is None)
        log.error(
            "nbtasklog: database unavailable at exit (%s); %d records kept in %s for the next start%s",
            self._errors.get(DATABASE), kept, self.spill_dir,
            f"; {lost} records lost, spilling failed ({self._errors.get(SPILL)})" if lost else "",
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
            try:
                table = batch.load()
            except (OSError, pa.ArrowException):
                continue  # the flusher reports it when it gets there; Engine.logs sees the gap
            found.extend(arrow_to_records(table.filter(pc.equal(table.column("task_id"), task_id))))
        found.extend(queued)
        return found

    def unwritten_tasks(self) -> dict[str, dict[str, Any]]:
        """Task rows queued but not yet in the database, by id, as readers see them (without their owner)."""
        with self._lock:
            return {task_id: {k: v for k, v in row.items() if k != "owner"} for task_id, row in self._tasks.items()}

    def reading(self) -> threading.RLock:
        """A lock that keeps writes out while a reader combines the database and the buffer."""
        return self._write_lock

    def health(self) -> Health:
        with self._lock:
            in_memory = sum(b.rows for b in self._batches if b.table is not None)
            spilled = sum(b.rows for b in self._batches if b.path is not None)
        errors = [e for e in (self._errors.get(kind) for kind in (DATABASE, SPILL, LOST)) if e is not None]
        return Health(
            pending=len(self._records) + in_memory + spilled,
            spilled=spilled,
            last_error="; ".join(errors) if errors else None,
            last_error_at=self._last_error_at,
            last_flush_at=self._last_flush_at,
            flushed_total=self._flushed_total,
            database_available=DATABASE not in self._errors,
        )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0][:500]


def _final_rows_last(tasks: dict[str, dict[str, Any]], settled: dict[str, dict[str, Any]],
                     modes: dict[str, str], later: bool) -> dict[str, dict[str, Any]]:
    """The task rows to write with the batch at hand. A task's final row goes with its last records, never
    before them (a reader elsewhere that sees the task ended reads its whole log then): only once it
    was put before the drain (`settled`) and no later batch waits. Until then a task's first row is
    written as still under way (its records need their row), and a later one waits."""
    rows = {}
    for task_id, row in tasks.items():
        if row.get("status") in ACTIVE or (not later and settled.get(task_id) == row):
            rows[task_id] = row
        elif task_id in modes:
            rows[task_id] = dict(row, status="RUNNING" if row.get("started_at") else "PENDING",
                                 finished_at=None, error=None)
    return rows


def _read_arrow_file(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return pa.ipc.open_file(source).read_all()


def _stamp(path: Path) -> int:
    """The stamp a spill file's name starts with (older names add "-counter"); 0 for other names."""
    head = path.stem.split("-", 1)[0]
    return int(head) if head.isdigit() else 0


def _write_text(path: Path, text: str) -> None:
    """Whole or not at all: a process killed in the middle leaves the previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(text)
    os.replace(tmp, path)


def _remove(path: Path, strict: bool = False) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        if strict:
            raise
        log.warning("nbtasklog: cannot remove %s: %s", path, error)



def _to_arrow(records: Sequence[tuple[Any, ...]]) -> pa.Table:
    """Records (plain tuples of LogRecord's fields, or LogRecords) as an Arrow batch."""
    try:
        return records_to_arrow(records)
    except (pa.ArrowException, UnicodeError):
        # Text Arrow cannot hold (lone surrogates, say): replace the bad characters, keep the record.
        return records_to_arrow([_clean(r) for r in records])


def _clean(fields: tuple[Any, ...]) -> LogRecord:
    def fix(text: str) -> str:
        return text.encode("utf-8", "replace").decode("utf-8")

    record = LogRecord._make(fields)  # queued records are plain tuples (see WriteBuffer.append)
    meta = record.metadata_json
    return record._replace(source=fix(record.source), message=fix(record.message),
                           metadata_json=None if meta is None else fix(meta))
