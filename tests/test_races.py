"""Readers, cancels and listings racing a running task: every complete reader sees every record once, in
order; a cancel takes effect in the state it finds; a listing says what the task is now."""

from __future__ import annotations

import sys
import threading

import pytest
from conftest import TIMEOUT
from procs import make_engine, poll  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_switch_interval():
    """Threads switch every microsecond, so that a race window of a few bytecodes is hit."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_readers_closing_never_make_their_neighbours_miss_a_record(make_engine, tiny_switch_interval):
    """Readers that read the task whole start while others subscribe and leave at once, over and over
    (a viewer changing its filter does that). A reader leaving used to be removed from the very list the
    emitter was offering a record to, and the reader after it in the list never got that record."""
    from nbtasklog import LogFilter
    from nbtasklog.live import Subscription

    engine = make_engine()
    n = 30_000

    def steady(params, context):
        for i in range(n):
            context.logger.info("r %d", i)
            if i % 1000 == 0:
                context.logger.info("pause")  # a record the readers below also count

    task = engine.run_task(steady)
    stop = threading.Event()
    complete: list[list[int]] = []
    errors: list[BaseException] = []

    def whole_reader() -> None:
        try:
            complete.append([r.seq for r in task.follow()])
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    def churner() -> None:
        try:
            while not stop.is_set():
                subscription = engine.subscribe(task.id, Subscription(LogFilter()))
                engine.unsubscribe(task.id, subscription)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    churners = [threading.Thread(target=churner) for _ in range(3)]
    for thread in churners:
        thread.start()
    readers = []
    for _ in range(12):  # readers join while the churners' subscriptions come and go before them in line
        readers.append(threading.Thread(target=whole_reader))
        readers[-1].start()
        threading.Event().wait(0.01)
    task.wait(TIMEOUT * 4)
    stop.set()
    for thread in readers + churners:
        thread.join(TIMEOUT * 4)
    assert not errors
    expected = list(range(1, task.info()["record_count"] + 1))
    assert len(complete) == 12
    holes = [sorted(set(expected) - set(seqs))[:5] for seqs in complete if seqs != expected]
    assert not holes, f"{len(holes)} of 12 readers missed records, e.g. {holes[0]}"


def test_a_reader_leaving_while_a_record_is_offered_does_not_take_it_from_the_next_reader(make_engine):
    """The interleaving the test above hunts for, made certain: a reader leaves at the very moment the
    emitter offers it a record (its offer() unsubscribes it); the reader after it still gets that record."""
    from nbtasklog import LogFilter
    from nbtasklog.live import Subscription

    engine = make_engine()
    release = threading.Event()

    def plugin(params, context):
        release.wait(TIMEOUT)
        for i in range(5):
            context.logger.info("r %d", i)

    task = engine.run_task(plugin)
    poll(lambda: task.status == "RUNNING", TIMEOUT, "the task to run")

    class LeavesOnFirstRecord(Subscription):
        def offer(self, record):
            engine.unsubscribe(task.id, self)

    engine.subscribe(task.id, LeavesOnFirstRecord(LogFilter()))
    neighbour = engine.subscribe(task.id, Subscription(LogFilter()))
    release.set()
    task.wait(TIMEOUT)
    got = [r.message for r in neighbour.take(timeout=0)]
    engine.unsubscribe(task.id, neighbour)
    assert got[:5] == [f"r {i}" for i in range(5)]


def test_cancelling_a_queued_task_cancels_it_at_once(make_engine):
    """A task waiting for a worker is CANCELLED the moment it is cancelled (not when a worker frees),
    never runs, and the worker then takes the next one."""
    engine = make_engine(max_workers=1)
    release = threading.Event()
    ran: list[str] = []

    def blocking(params, context):
        ran.append(params["name"])
        release.wait(TIMEOUT)

    first = engine.run_task(blocking, {"name": "first"})
    poll(lambda: first.status == "RUNNING", TIMEOUT, "the first task to run")
    queued = engine.run_task(blocking, {"name": "queued"})
    after = engine.run_task(blocking, {"name": "after"})
    assert queued.status == "PENDING"
    assert queued.cancel() is True
    assert queued.status == "CANCELLED"
    assert queued.wait(0.5) == "CANCELLED"  # no worker was needed
    assert [r.message for r in queued.logs()] == ["Task cancelled before it started"]
    assert queued.info()["record_count"] == 1
    assert queued.cancel() is False  # already ended
    release.set()
    assert after.wait(TIMEOUT) == "SUCCESS" and first.wait(TIMEOUT) == "SUCCESS"
    assert ran == ["first", "after"]


def test_a_cancel_racing_the_start_ends_the_task_exactly_once(make_engine, tiny_switch_interval):
    """Cancels sent at every moment around a task's start: each task ends once, CANCELLED or SUCCESS, and
    its log has exactly one end record."""
    engine = make_engine(max_workers=2)
    tasks = []
    for _ in range(60):
        task = engine.run_task(lambda params, context: context.check_cancelled())
        task.cancel()
        tasks.append(task)
    for task in tasks:
        assert task.wait(TIMEOUT) in ("CANCELLED", "SUCCESS")
    for task in tasks:
        ends = [r for r in task.logs(source="system") if r.message.startswith(("Task cancelled", "Task succeeded"))]
        assert len(ends) == 1, [r.message for r in task.logs()]


def test_a_listing_by_status_says_what_the_task_is_now(make_engine):
    """A task that finished is not listed as RUNNING even before its new row reaches the database."""
    engine = make_engine(flush_interval=3600, flush_size=10**9)
    release = threading.Event()
    task = engine.run_task(lambda params, context: release.wait(TIMEOUT))
    poll(lambda: task.status == "RUNNING", TIMEOUT, "the task to run")
    assert engine.flush()  # the RUNNING row is in the database
    assert [t.id for t in engine.tasks(status="RUNNING")] == [task.id]
    release.set()
    task.wait(TIMEOUT)
    assert [t.id for t in engine.tasks(status="RUNNING")] == []
    assert [t.id for t in engine.tasks(status="SUCCESS")] == [task.id]
    assert [row["id"] for row in engine.task_page(status="RUNNING")["tasks"]] == []


def test_a_task_page_reads_each_row_once_and_survives_a_delete_meanwhile(make_engine):
    """GET tasks' page is one listing, not one read per task: no task is read again, so a task deleted
    after the listing cannot fail the page."""
    engine = make_engine()
    tasks = [engine.run_task(lambda params, context: None) for _ in range(5)]
    for task in tasks:
        task.wait(TIMEOUT)
    assert engine.flush()
    reads: list[str] = []
    store_get = engine.store.get_task

    def counting_get(task_id):
        reads.append(task_id)
        return store_get(task_id)

    engine.store.get_task = counting_get  # counts reads of single rows; the store itself is real
    engine.runner.forget(tasks[2].id)  # as after a restart: only the database knows it
    page = engine.task_page(limit=10)
    assert [row["id"] for row in page["tasks"]] == [t.id for t in reversed(tasks)]
    assert reads == []
    assert all(isinstance(row["params"], dict) for row in page["tasks"])
