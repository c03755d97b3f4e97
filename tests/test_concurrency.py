"""Concurrent tasks, writers and readers on one real engine: records never leak between tasks, and
readers see each task's log as a gap-free, duplicate-free prefix while it grows and is flushed."""

from __future__ import annotations

import logging
import threading

import pytest
from procs import make_engine, read_db  # noqa: F401  (fixture)

WAIT = 30


@pytest.mark.slow
def test_twenty_tasks_of_ten_thousand_records_stay_apart(make_engine, tmp_path):
    """20 concurrent tasks x 10,000 records: each task has exactly its own 10,000, seq contiguous, none of another's."""
    engine = make_engine(max_workers=20, flush_interval=0.05)
    start = threading.Barrier(20, timeout=WAIT)

    def burst(params, context):
        marker, log = params["marker"], context.logger
        start.wait()  # all twenty log at the same time
        for i in range(10_000):
            log.info("%s %d", marker, i)

    tasks = [engine.run_task(burst, {"marker": f"task-{n:02d}"}) for n in range(20)]
    for task in tasks:
        assert task.wait(WAIT) == "SUCCESS"
    sample = tasks[7]
    assert [r.message for r in sample.logs(source="plugin", after=10_000)] == [f"task-07 {i}" for i in range(9_999, 10_000)]
    engine.close()

    rows = read_db(
        tmp_path / "logs.duckdb",
        """
        select json_extract_string(t.params, '$.marker') as marker,
               count(*) filter (where l.source = 'plugin') as plugin_records,
               count(*) filter (where l.source = 'plugin' and split_part(l.message, ' ', 1) <> json_extract_string(t.params, '$.marker')) as foreign,
               count(*) filter (where l.source = 'plugin' and try_cast(split_part(l.message, ' ', 2) as integer) + 2 <> l.seq) as out_of_place,
               count(*) as total, count(distinct l.seq) as distinct_seqs, min(l.seq) as first, max(l.seq) as last,
               any_value(t.record_count) as record_count
        from task_logs l join tasks t on t.id = l.task_id
        group by all order by marker
        """,
    )
    assert len(rows) == 20
    for marker, plugin_records, foreign, out_of_place, total, distinct, first, last, record_count in rows:
        assert plugin_records == 10_000, marker
        assert foreign == 0 and out_of_place == 0, marker  # message i of this task sits at seq i + 2
        assert (first, last, distinct, record_count) == (1, total, total, total), marker
    assert read_db(tmp_path / "logs.duckdb", "select count(*) from task_logs")[0][0] == 20 * 10_002


def test_print_and_stdlib_logging_of_concurrent_tasks_stay_apart(make_engine):
    """Ten tasks printing and logging through stdlib at once: each line lands in the task that wrote it."""
    engine = make_engine(max_workers=10)
    start = threading.Barrier(10, timeout=WAIT)

    def chatty(params, context):
        marker = params["marker"]
        lib = logging.getLogger(f"lib.{marker}")
        start.wait()
        for i in range(300):
            print(marker, i)
            lib.warning("%s %d", marker, i)
            if i % 50 == 0:
                print(marker, "part", end="")  # a line written in two pieces
                print(" two")

    tasks = {f"m{n}": engine.run_task(chatty, {"marker": f"m{n}"}) for n in range(10)}
    for marker, task in tasks.items():
        assert task.wait(WAIT) == "SUCCESS"
        printed = [r.message for r in task.logs(source="stdout")]
        assert [m for m in printed if "part" not in m] == [f"{marker} {i}" for i in range(300)]
        assert printed.count(f"{marker} part two") == 6
        assert [r.message for r in task.logs(source=f"lib.{marker}")] == [f"{marker} {i}" for i in range(300)]
        assert {r.source for r in task.logs()} == {"system", "stdout", f"lib.{marker}"}


@pytest.mark.slow
def test_readers_see_a_gap_free_prefix_while_records_are_written(make_engine):
    """logs() called over and over while a task logs 40,000 records and the flusher writes every 10 ms: always 1..k exactly."""
    engine = make_engine(flush_interval=0.01)
    running = threading.Event()

    def fast(params, context):
        running.set()
        for i in range(40_000):
            context.logger.info("n %d", i)

    task = engine.run_task(fast)
    assert running.wait(WAIT)
    reads, problems = 0, []
    while True:
        finished = task.done
        got = [r.seq for r in task.logs()]
        reads += 1
        if got != list(range(1, len(got) + 1)):
            problems.append((len(got), got[:3], got[-3:]))
        if finished:
            break
    assert not problems, problems[:3]
    assert reads > 1
    assert len(got) == 40_002


@pytest.mark.slow
def test_followers_started_at_any_moment_miss_nothing(make_engine):
    """Followers started before, during and at the end of a fast-logging task each yield every record once, in order."""
    engine = make_engine(flush_interval=0.01)
    gate = threading.Event()
    results: dict[str, list[int]] = {}

    def fast(params, context):
        gate.wait(WAIT)
        for i in range(30_000):
            context.logger.info("n %d", i)
            if i % 10_000 == 0:
                threading.Event().wait(0.001)  # let a follower start mid-stream

    task = engine.run_task(fast)

    def follow(name):
        results[name] = [r.seq for r in task.follow()]

    threads = [threading.Thread(target=follow, args=("before",))]
    threads[0].start()
    gate.set()
    while not task.logs(after=5_000, limit=1):
        threading.Event().wait(0.001)
    threads.append(threading.Thread(target=follow, args=("during",)))
    threads[1].start()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), "follow() did not end with the task"
    follow("after")
    assert task.status == "SUCCESS"
    for name in ("before", "during", "after"):
        assert results[name] == list(range(1, 30_003)), name


def test_many_threads_start_tasks_at_once(make_engine):
    """Eight threads starting five tasks each: forty distinct tasks, all SUCCESS, each with only its own records."""
    engine = make_engine(max_workers=4)
    started: list = []
    lock = threading.Lock()

    def job(params, context):
        for i in range(50):
            context.logger.info("%s", params["tag"], i=i)
        return params["tag"]

    def starter(n):
        for k in range(5):
            task = engine.run_task(job, {"tag": f"{n}-{k}"})
            with lock:
                started.append(task)

    threads = [threading.Thread(target=starter, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert len({t.id for t in started}) == 40
    for task in started:
        assert task.wait(WAIT) == "SUCCESS"
        tag = task.result
        records = task.logs(source="plugin")
        assert [r.message for r in records] == [tag] * 50 and [r.seq for r in records] == list(range(2, 52))
    assert len(engine.tasks(limit=100)) == 40


def test_deleting_a_task_while_others_log_loses_none_of_theirs(make_engine):
    """delete_task and cleanup while other tasks log at full speed remove only what they should."""
    engine = make_engine(max_workers=4, flush_interval=0.01)
    old = [engine.run_task(lambda params, context: context.logger.info("old")) for _ in range(3)]
    for task in old:
        assert task.wait(WAIT) == "SUCCESS"
    stop = threading.Event()
    going = threading.Barrier(3, timeout=WAIT)

    def busy(params, context):
        i = 0
        going.wait()
        while not stop.is_set():
            i += 1
            context.logger.info("busy %d", i)
            if i % 20 == 0:
                threading.Event().wait(0.001)  # steady, not so fast that reading it back dominates the test
        return i

    busy_tasks = [engine.run_task(busy) for _ in range(2)]
    going.wait()
    try:
        old[0].delete()
        removed = engine.cleanup("0s")
    finally:
        stop.set()
    assert sorted(removed) == sorted(t.id for t in old[1:])
    for task in busy_tasks:
        assert task.wait(WAIT) == "SUCCESS"
    engine.flush()
    for task in busy_tasks:
        assert [r.seq for r in task.logs()] == list(range(1, task.result + 3))
    assert set(engine.tasks()) == set(busy_tasks)
