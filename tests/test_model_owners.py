"""A model of the shared-store promises (README "A shared store for a team", docs/architecture.md "Several
processes on one store"), checked by hypothesis over random runs: two engines, as two Jupyter servers, on one
real PostgreSQL database. Tasks start on either (some held RUNNING by a gate until released), followers on the
OTHER engine read them live, either engine cancels any active task or deletes any finished one, flushes, and
changes the task_log_level setting.

Invariants: every follower saw exactly seqs 1..record_count of its task, once each, in order (a follower still
reading saw a prefix); both engines list the same tasks with the same statuses, and a deleted task is gone from
both (no ghost: task_info raises UnknownTaskError); the store holds each task's records as seqs
1..record_count, none twice, its plugin's records all there; a task cancelled on either engine ends CANCELLED
on both; a setting changed on one engine applies on the other.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import reliability
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from models import model_settings
from procs import poll, read_db

import nbtasklog
from nbtasklog import belief
from nbtasklog.errors import UnknownTaskError
from nbtasklog.statuses import FINISHED

pytestmark = pytest.mark.slow

WAIT = 20.0  # bound of every wait; each happens within a second or two when it works
NAMES = ("a", "b")
LEVELS = ("DEBUG", "INFO", "WARNING")  # the plugin logs at WARNING: its records are kept at every one of them


def _other(name: str) -> str:
    return "b" if name == "a" else "a"


def _status(engine: nbtasklog.Engine, task_id: str) -> str | None:
    """The task's status as `engine` sees it, None while (or once) it does not know the task."""
    try:
        return engine.task_info(task_id)["status"]
    except UnknownTaskError:
        return None


def logging_plugin(before: int, after: int, gate: threading.Event | None):
    """Logs `before` WARNING records (n=1..before), then, if gated, stays RUNNING until the gate opens (and is
    cancellable meanwhile), then logs `after` more."""

    def plugin(params: dict[str, Any], context: Any) -> int:
        for n in range(1, before + 1):
            context.logger.warning("record %d", n, n=n)
        if gate is not None:
            while not gate.wait(0.01):
                context.check_cancelled()
        for n in range(before + 1, before + after + 1):
            context.logger.warning("record %d", n, n=n)
        return before + after

    return plugin


@dataclass
class ModelTask:
    id: str
    owner: str  # the engine that runs it
    records: int  # the plugin's records, if it is not cancelled first
    before: int  # those it logs before its gate
    gate: threading.Event | None
    released: bool = False
    cancelled: bool = False  # the model cancelled it while it was held: it ends CANCELLED
    deleted: bool = False
    final_count: int | None = None  # its record_count when it was deleted

    @property
    def held(self) -> bool:
        return self.gate is not None and not self.released and not self.cancelled


@dataclass
class Follower:
    """engine.follow(task) of the engine that does not run the task, in a daemon thread."""

    task: ModelTask
    engine: str
    seen: list[int] = field(default_factory=list)
    thread: threading.Thread | None = None
    finished: bool = False  # the follow ended by itself (the task ended and everything was handed out)
    deleted_while_reading: bool = False  # its task was deleted before the follow ended: not checked
    error: BaseException | None = None

    def run(self, engine: nbtasklog.Engine) -> None:
        try:
            for record in engine.follow(self.task.id):
                self.seen.append(record.seq)
            self.finished = True
        except BaseException as error:  # noqa: BLE001
            self.error = error


class SharedStoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.url = POSTGRES.new_database()
        self.root = ROOT / uuid.uuid4().hex[:8]
        self.app_level = logging.getLogger("nbtasklog").level
        self.engines: dict[str, nbtasklog.Engine] = {}
        self.tasks: list[ModelTask] = []
        self.followers: list[Follower] = []
        try:
            for name in NAMES:  # two servers: an instance id, a spill folder and a listener each
                engine = nbtasklog.Engine(self.url, spill_dir=self.root / name, flush_interval=0.05,
                                          handle_signals=False)
                self.engines[name] = engine
                poll(lambda: engine.control.listener is not None and engine.control.listener.listening.is_set(),
                     WAIT, f"{name} listening")
        except BaseException:
            self._close()
            raise

    # ---- rules ---------------------------------------------------------------------------------
    @precondition(lambda self: len(self.tasks) < 8)
    @rule(owner=st.sampled_from(NAMES), before=st.integers(0, 40), after=st.integers(0, 40), gated=st.booleans(),
          followed=st.booleans())
    def start_task(self, owner: str, before: int, after: int, gated: bool, followed: bool) -> None:
        """A task on `owner`; `followed`: a follower on the other engine from the moment it knows the task."""
        if gated and sum(t.held for t in self.tasks if t.owner == owner) >= 3:
            gated = False  # a worker each: keep free ones for the rest
        gate = threading.Event() if gated else None
        task = self.engines[owner].run_task(logging_plugin(before, after, gate))
        model = ModelTask(task.id, owner, before + after, before, gate)
        self.tasks.append(model)
        STEPS["tasks"] += 1
        other = self.engines[_other(owner)]
        if gated:
            poll(lambda: _status(other, task.id) == "RUNNING", WAIT, f"{owner}'s held task RUNNING at the other")
        else:
            poll(lambda: _status(other, task.id) is not None, WAIT, f"{owner}'s task known at the other")
        if followed:
            self._follow(model)

    @precondition(lambda self: any(t.held for t in self.tasks))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        held = [t for t in self.tasks if t.held]
        model = data.draw(st.sampled_from(held), label="task")
        self._followers_get_the_records_while_it_runs(model)
        model.released = True
        assert model.gate is not None
        model.gate.set()

    @precondition(lambda self: any(not t.deleted for t in self.tasks))
    @rule(data=st.data())
    def follow_on_the_other_engine(self, data: st.DataObject) -> None:
        candidates = [t for t in self.tasks if not t.deleted]
        self._follow(data.draw(st.sampled_from(candidates), label="task"))

    @precondition(lambda self: any(t.held for t in self.tasks))
    @rule(data=st.data(), by=st.sampled_from(NAMES))
    def cancel(self, data: st.DataObject, by: str) -> None:
        held = [t for t in self.tasks if t.held]
        model = data.draw(st.sampled_from(held), label="task")
        STEPS["cancels_by_other" if by != model.owner else "cancels_by_owner"] += 1
        assert self.engines[by].cancel(model.id) is True, f"{by} refused to cancel {model.owner}'s held task"
        model.cancelled = True
        assert self.engines[model.owner].task(model.id).wait(WAIT) == "CANCELLED"
        other = self.engines[_other(model.owner)]
        poll(lambda: _status(other, model.id) == "CANCELLED", WAIT, "CANCELLED at the other engine")

    @precondition(lambda self: any(not t.deleted and not t.held for t in self.tasks))
    @rule(data=st.data(), by=st.sampled_from(NAMES))
    def delete(self, data: st.DataObject, by: str) -> None:
        done = [t for t in self.tasks if not t.deleted and not t.held]
        model = data.draw(st.sampled_from(done), label="task")
        engine = self.engines[by]
        assert self.engines[model.owner].task(model.id).wait(WAIT) in FINISHED
        model.final_count = int(self.engines[model.owner].task_info(model.id)["record_count"] or 0)
        poll(lambda: _status(engine, model.id) in FINISHED, WAIT, f"the end of the task at {by}")
        for follower in self.followers:
            if follower.task is model and not follower.finished:
                follower.deleted_while_reading = True
        STEPS["deletes_by_other" if by != model.owner else "deletes_by_owner"] += 1
        engine.delete_task(model.id)
        model.deleted = True
        for name, each in self.engines.items():
            poll(lambda: model.id not in {t.id for t in each.tasks()}, WAIT, f"the deleted task gone from {name}'s list")
            with pytest.raises(UnknownTaskError):
                each.task_info(model.id)

    @rule(name=st.sampled_from(NAMES))
    def flush(self, name: str) -> None:
        assert self.engines[name].flush(), self.engines[name].health().last_error

    @rule(name=st.sampled_from(NAMES), level=st.sampled_from(LEVELS))
    def change_settings(self, name: str, level: str) -> None:
        STEPS["settings"] += 1
        self.engines[name].update_settings(task_log_level=level)
        self.engines[name].flush()
        for each in self.engines.values():
            poll(lambda: each.settings.task_log_level == nbtasklog.Level[level], WAIT, f"{level} on both engines")

    # ---- invariants ----------------------------------------------------------------------------
    @invariant()
    def followers_saw_a_prefix_once_in_order(self) -> None:
        STEPS["steps"] += 1
        for follower in self.followers:
            seen = list(follower.seen)
            assert seen == list(range(1, len(seen) + 1)), f"a follower at {follower.engine} saw {seen}"
            if not follower.deleted_while_reading:
                assert follower.error is None, repr(follower.error)

    def teardown(self) -> None:
        STEPS["examples"] += 1
        try:
            self._settle_and_check()
        finally:
            self._close()

    def _close(self) -> None:
        for model in self.tasks:
            if model.gate is not None:
                model.gate.set()
        for engine in reversed(list(self.engines.values())):
            engine.close(timeout=5)
        # Settings changes touch process-wide state (belief_scope's app toggle, the app logger level).
        belief.app_enabled = True
        logging.getLogger("nbtasklog").setLevel(self.app_level)
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- helpers -------------------------------------------------------------------------------
    def _followers_get_the_records_while_it_runs(self, model: ModelTask) -> None:
        """The live view: every record the held task emitted so far reaches its followers on the other engine
        while it still runs."""
        owner = self.engines[model.owner]
        poll(lambda: len(owner.logs(model.id, source="plugin")) == model.before, WAIT, "the records before the gate")
        count = owner.task_info(model.id)["record_count"]
        for follower in self.followers:
            if follower.task is model:
                poll(lambda: len(follower.seen) >= count or follower.error, WAIT,
                     f"{count} records of the running task at {follower.engine}, not {len(follower.seen)}")
                assert follower.error is None, repr(follower.error)
                STEPS["followed_while_running"] += 1
        assert owner.task_info(model.id)["status"] == "RUNNING"

    def _follow(self, model: ModelTask) -> None:
        follower = Follower(model, _other(model.owner))
        follower.thread = threading.Thread(target=follower.run, args=(self.engines[follower.engine],), daemon=True)
        follower.thread.start()
        self.followers.append(follower)
        STEPS["followers"] += 1

    # ---- the end of an example -----------------------------------------------------------------
    def _settle_and_check(self) -> None:
        for model in self.tasks:
            if model.held:
                model.released = True
                assert model.gate is not None
                model.gate.set()
        for model in self.tasks:
            if not model.deleted:
                status = self.engines[model.owner].task(model.id).wait(WAIT)
                assert status == ("CANCELLED" if model.cancelled else "SUCCESS"), (model, status)
        for name, engine in self.engines.items():
            assert engine.flush(), f"{name}: {engine.health().last_error}"

        def rows(engine: nbtasklog.Engine) -> dict[str, str]:
            return {row["id"]: row["status"] for row in engine.task_page(limit=1000)["tasks"]}

        expected = {t.id: "CANCELLED" if t.cancelled else "SUCCESS" for t in self.tasks if not t.deleted}
        for name, engine in self.engines.items():
            try:
                poll(lambda: rows(engine) == expected, WAIT, f"{name} to list the model's tasks")
            except AssertionError as error:
                raise AssertionError(f"{error}: {name} lists {rows(engine)}, the model {expected}") from None
        stored_rows = dict(read_db(self.url, "select id, status from tasks"))
        assert stored_rows == expected, "the store's tasks differ from the model's"
        for model in self.tasks:
            if model.deleted:
                for name, engine in self.engines.items():
                    assert _status(engine, model.id) is None, f"{model.id} deleted, still known at {name}"

        counts = dict(read_db(self.url, "select id, record_count from tasks"))
        duplicates = read_db(self.url, "select task_id, seq, count(*) from task_logs group by task_id, seq "
                                       "having count(*) > 1")
        assert duplicates == [], f"records stored twice: {duplicates[:5]}"
        orphans = read_db(self.url, "select distinct task_id from task_logs where task_id not in (select id from tasks)")
        assert orphans == [], f"records of deleted or unknown tasks: {orphans}"
        for model in self.tasks:
            if model.deleted:
                continue
            stored = read_db(self.url, "select seq, source, message from task_logs where task_id = ? order by seq",
                             [model.id])
            seqs = [seq for seq, _, _ in stored]
            assert seqs == list(range(1, counts[model.id] + 1)), \
                f"{model.owner}'s task stores seqs {seqs}, record_count {counts[model.id]}"
            plugin = [message for _, source, message in stored if source == "plugin"]
            logged = model.before if model.cancelled else model.records  # a cancelled one never passed its gate
            assert plugin == [f"record {n}" for n in range(1, logged + 1)], f"{model.owner}'s task stores {plugin}"
            for name, engine in self.engines.items():
                info = engine.task_info(model.id)
                assert (info["status"], info["record_count"]) == (expected[model.id], counts[model.id]), \
                    f"{name} says {info['status']} with {info['record_count']} records"
            STEPS["records"] += len(seqs)

        for follower in self.followers:
            assert follower.thread is not None
            follower.thread.join(WAIT)
            assert not follower.thread.is_alive(), f"a follower at {follower.engine} of {follower.task} hangs"
            if follower.deleted_while_reading or follower.task.deleted and not follower.finished:
                continue
            assert follower.error is None, repr(follower.error)
            assert follower.finished
            final = follower.task.final_count if follower.task.deleted else counts[follower.task.id]
            assert final is not None
            expected_seqs = list(range(1, final + 1))
            assert follower.seen == expected_seqs, \
                f"a follower at {follower.engine} of {follower.task} saw {follower.seen}, stored {expected_seqs}"
            STEPS["followed_records"] += len(follower.seen)


POSTGRES: Any = None
ROOT: Path = Path()
STEPS: Counter[str] = Counter()


def test_two_engines_on_one_store_keep_the_shared_store_promises(postgres, tmp_path):
    global POSTGRES, ROOT
    POSTGRES, ROOT = postgres, tmp_path
    STEPS.clear()
    run_state_machine_as_test(SharedStoreModel, settings=model_settings(12))
    reliability.record("model_owners", violations=0, **STEPS)
