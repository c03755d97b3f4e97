"""A model of the engine's promises, checked by hypothesis over random runs: several tasks emit on command,
readers come and go and change their filters, the flusher writes, the database's disk fills up and
frees again, and the process restarts on the same store.

Invariants: every reader saw exactly the matching records of its task, in seq order, once (a reader that
left saw a prefix of them); the store holds every record exactly once. The database lives on a small tmpfs
of its own, filled to the last byte to make it unavailable (a real ENOSPC, as root: CI runs as root); the
spill directory is on another disk, as a database server's outage would leave it.
"""

from __future__ import annotations

import queue
import shutil
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import reliability
from disks import fill, tmpfs
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from models import model_settings
from procs import poll, read_db

import nbtasklog
from nbtasklog import LogFilter, make_filter
from nbtasklog.store.store import StoreClosedError

pytestmark = pytest.mark.slow

WAIT = 20.0
LEVELS = ["DEBUG", "INFO", "WARNING", "ERROR"]
SOURCES = ["plugin", "api", "db"]
WORDS = ["alpha", "beta", "gamma"]
FILTERS = [
    {}, {"level": "WARNING"}, {"source": "api"}, {"source": ["api", "db"], "level": "INFO"},
    {"search": "BETA"}, {"meta": {"k": 1}}, {"meta": {"k": None}, "source": "plugin"}, {"errors_only": True},
]


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 24 MB tmpfs for the database."""
    with tmpfs(tmp_path / "disk", "24m") as disk:
        yield disk


@dataclass
class ModelTask:
    """A task of the model: the commands it is sent, what the model says its records are."""

    task: nbtasklog.Task
    commands: queue.Queue = field(default_factory=queue.Queue)
    records: list[tuple[int, str, str, str | None, Any]] = field(default_factory=list)  # seq, level, source, message, meta
    done: bool = False


@dataclass
class Reader:
    """A follow() of one task in its own thread, with the filter it was opened with."""

    model: ModelTask
    flt: LogFilter
    after: int
    seen: list[tuple[int, str, str, str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    finished: bool = False  # read to the task's end, not left early
    error: BaseException | None = None

    def run(self) -> None:
        try:
            for record in self.model.task.follow(**filter_args(self.flt, self.after)):
                self.seen.append(key(record))
                if self.stop.is_set():
                    return
            self.finished = True
        except StoreClosedError:
            pass  # its process "ended" (a restart): what it saw must still be a prefix
        except BaseException as error:  # noqa: BLE001
            self.error = error


def filter_args(flt: LogFilter, after: int) -> dict[str, Any]:
    from nbtasklog.filter import from_params

    args = {name: [value] for name, value in flt.to_params().items()}
    args["after"] = [str(after)]
    return {"flt": from_params(args)}


def key(record: Any) -> tuple[int, str, str, str | None, Any]:
    """What the model predicts of a record; the system records' texts carry durations, so not their text."""
    return (record.seq, record.level, record.source, None if record.source == "system" else record.message,
            record.metadata if record.source != "system" else None)


def controlled(params: dict[str, Any], context: Any) -> str:
    """Does what the model sends: ("emit", [(level, source, message, meta), ...], ack) or ("finish", ack)."""
    commands: queue.Queue = CHANNELS[params["channel"]]
    while True:
        try:
            command = commands.get(timeout=0.02)
        except queue.Empty:
            context.check_cancelled()
            continue
        if command[0] == "finish":
            command[1].set()
            return "finished"
        for level, source, message, meta in command[1]:
            context.logger.with_source(source).log(level, message, **meta)
        command[2].set()


CHANNELS: dict[str, queue.Queue] = {}


class EngineModel(RuleBasedStateMachine):
    tasks = Bundle("tasks")
    readers = Bundle("readers")

    def __init__(self) -> None:
        super().__init__()
        self.root = DISK / uuid.uuid4().hex[:8]
        self.root.mkdir()
        self.db = self.root / "logs.duckdb"
        self.spill = SPILL / self.root.name
        self.filler = DISK / "filler"
        self.engine = self._open()
        self.all_tasks: list[ModelTask] = []
        self.all_readers: list[Reader] = []
        self.down = False
        self.counter = 0

    def _open(self) -> nbtasklog.Engine:
        # A small buffer: records spill to files as soon as the database stops answering.
        return nbtasklog.Engine(str(self.db), flush_interval=0.02, buffer_cap=40, spill_dir=self.spill,
                                handle_signals=False, max_workers=8)

    # ---- rules ---------------------------------------------------------------------------------
    @precondition(lambda self: sum(not t.done for t in self.all_tasks) < 4)
    @rule(target=tasks)
    def start_task(self) -> ModelTask:
        channel = uuid.uuid4().hex
        CHANNELS[channel] = queue.Queue()
        task = self.engine.run_task(controlled, {"channel": channel}, log_level="DEBUG")
        poll(lambda: task.status == "RUNNING", WAIT, "the task to start")  # its "Task started" record is out
        model = ModelTask(task, CHANNELS[channel])
        model.records.append((1, "INFO", "system", None, None))  # "Task started: controlled"
        self.all_tasks.append(model)
        return model

    @rule(model=tasks, count=st.integers(1, 60), level=st.sampled_from(LEVELS), source=st.sampled_from(SOURCES),
          word=st.sampled_from(WORDS))
    def emit(self, model: ModelTask, count: int, level: str, source: str, word: str) -> None:
        if model.done:
            return
        batch = []
        for _ in range(count):
            self.counter += 1
            meta = {"k": self.counter % 3} if self.counter % 2 else {}
            batch.append((level, source, f"m{self.counter} {word}", meta))
        ack = threading.Event()
        model.commands.put(("emit", batch, ack))
        assert ack.wait(WAIT), "the task did not emit"
        first = model.records[-1][0] + 1
        model.records.extend((first + i, lvl, src, msg, meta or None) for i, (lvl, src, msg, meta) in enumerate(batch))

    @rule(model=consumes(tasks))
    def finish(self, model: ModelTask) -> None:
        if model.done:
            return
        ack = threading.Event()
        model.commands.put(("finish", ack))
        assert ack.wait(WAIT)
        assert model.task.wait(WAIT) == "SUCCESS"
        model.records.append((model.records[-1][0] + 1, "INFO", "system", None, None))  # "Task succeeded"
        model.done = True

    @rule(target=readers, model=tasks, spec=st.sampled_from(FILTERS))
    def open_reader(self, model: ModelTask, spec: dict[str, Any]) -> Reader:
        return self._start_reader(model, make_filter(**spec), 0)

    @rule(target=readers, reader=consumes(readers), spec=st.sampled_from(FILTERS))
    def change_filter(self, reader: Reader, spec: dict[str, Any]) -> Reader:
        """As a viewer does: the old reader leaves, a new one starts after the last record it showed."""
        reader.stop.set()
        cursor = reader.seen[-1][0] if reader.seen else reader.after
        return self._start_reader(reader.model, make_filter(**spec), cursor)

    @rule(reader=consumes(readers))
    def close_reader(self, reader: Reader) -> None:
        reader.stop.set()

    @rule()
    def flush(self) -> None:
        assert self.engine.flush() or self.down, self.engine.health().last_error

    @precondition(lambda self: not self.down)
    @rule()
    def database_disk_full(self) -> None:
        STEPS["disk_full"] += 1
        self.filler = fill(DISK, leave=4096)
        self.down = True

    @precondition(lambda self: self.down)
    @rule()
    def database_disk_freed(self) -> None:
        self.filler.unlink()
        self.down = False

    @rule()
    def restart(self) -> None:
        STEPS["restarts"] += 1
        STEPS["restarts_while_down"] += self.down
        """The process ends (its running tasks are cancelled and end CANCELLED) and a new one opens the store."""
        running = [t for t in self.all_tasks if not t.done]
        for reader in self.all_readers:  # a process's readers end with it
            reader.stop.set()
        self.engine.close(timeout=2)  # a database that is down is not waited for: what waits is spilled
        for model in running:
            assert model.task.wait(WAIT) == "CANCELLED"
            model.records.append((model.records[-1][0] + 1, "WARNING", "system", None, None))  # "Task cancelled"
            model.done = True
        self._join_readers(lambda r: True)
        self.engine = self._open()
        for model in self.all_tasks:
            model.task = self.engine.task(model.task.id) if not self.down else nbtasklog.Task(self.engine, model.task.id)

    # ---- invariants ----------------------------------------------------------------------------
    @invariant()
    def readers_see_their_records_in_order_once(self) -> None:
        STEPS["steps"] += 1
        for reader in self.all_readers:
            seen = list(reader.seen)
            assert reader.error is None, reader.error
            expected = self._expected(reader)
            assert seen == expected[: len(seen)], f"reader of {reader.flt} saw {seen[:5]}… expected {expected[:5]}…"

    def teardown(self) -> None:
        STEPS["examples"] += 1
        STEPS["readers"] += len(self.all_readers)
        STEPS["records"] += sum(len(m.records) for m in self.all_tasks)
        try:
            if self.down:
                self.database_disk_freed()
            for model in self.all_tasks:
                if not model.done:
                    self.finish(model)
            self._join_readers(lambda r: True)
            for reader in self.all_readers:
                if reader.finished:
                    assert reader.seen == self._expected(reader), f"complete reader of {reader.flt} differs"
            for _ in range(100):
                if self.engine.flush():
                    break
            assert self.engine.flush(), self.engine.health().last_error
            for model in self.all_tasks:
                stored = [key(r) for r in self.engine.logs(model.task.id)]
                assert stored == model.records
            self.engine.close()
            duplicates = read_db(self.db, "select count(*) from (select task_id, seq from task_logs "
                                          "group by all having count(*) > 1)")
            assert duplicates == [(0,)]
            total = read_db(self.db, "select count(*) from task_logs")[0][0]
            assert total == sum(len(m.records) for m in self.all_tasks)
        finally:
            self.engine.close(timeout=1)
            if self.filler.exists():
                self.filler.unlink()
            shutil.rmtree(self.root, ignore_errors=True)

    # ---- helpers -------------------------------------------------------------------------------
    def _start_reader(self, model: ModelTask, flt: LogFilter, after: int) -> Reader:
        reader = Reader(model, flt, after)
        reader.thread = threading.Thread(target=reader.run, daemon=True)
        reader.thread.start()
        self.all_readers.append(reader)
        return reader

    def _expected(self, reader: Reader) -> list[tuple]:
        from nbtasklog.record import LogRecord

        out = []
        for seq, level, source, message, meta in reader.model.records:
            if seq <= reader.after:
                continue
            if source == "system":
                if reader.flt.matches(LogRecord("", seq, 0, level, source, "Task", None)) and not reader.flt.search \
                        and not reader.flt.meta:
                    out.append((seq, level, source, None, None))
                continue
            import json

            record = LogRecord("", seq, 0, level, source, message or "", json.dumps(meta) if meta else None)
            if reader.flt.matches(record):
                out.append((seq, level, source, message, meta))
        return out

    def _join_readers(self, which: Any) -> None:
        for reader in self.all_readers:
            if which(reader) and reader.thread is not None:
                reader.thread.join(WAIT)
                assert not reader.thread.is_alive(), f"a reader of {reader.flt} hangs"


DISK: Path = Path()
SPILL: Path = Path()
STEPS: Counter[str] = Counter()


def test_the_engine_keeps_its_promises_under_random_runs(small_disk, tmp_path):
    global DISK, SPILL
    DISK, SPILL = small_disk, tmp_path / "spill"
    STEPS.clear()
    run_state_machine_as_test(EngineModel, settings=model_settings(30))
    reliability.record("model", violations=0, **STEPS)
