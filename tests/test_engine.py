"""The engine's API on a real DuckDB file: task handles, logs and their filters, follow, listings, levels,
delete and cleanup, analyst SQL, and the errors bad input gets."""

from __future__ import annotations

import json
import logging
import sys
import threading
import warnings

import pandas as pd
import pyarrow as pa
import pytest
from procs import make_engine, poll, read_db  # noqa: F401  (fixture)

from nbtasklog import FilterError, SQLError, TaskActiveError, UnknownPluginError, UnknownTaskError, make_filter

WAIT = 10  # seconds: bounds every wait; a healthy run needs a fraction of it


class Gate:
    """Events a test uses to walk a task through its steps."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.go = threading.Event()

    def pause(self) -> None:
        self.reached.set()
        assert self.go.wait(WAIT), "the test never let the task go on"


def seqs(records) -> list[int]:
    return [r.seq for r in records]


# ---- the task handle --------------------------------------------------------------------------------
def test_task_handle_reports_status_progress_and_result(make_engine):
    """status, progress and its message while running; SUCCESS, result, progress 1.0 and times after."""
    engine = make_engine()
    gate = Gate()

    def job(params, context):
        context.progress(0.5, "half way")
        gate.pause()
        return {"answer": params["x"] * 2}

    task = engine.run_task(job, {"x": 21})
    assert gate.reached.wait(WAIT)
    assert task.status == "RUNNING" and not task.done
    assert (task.progress, task.progress_message) == (0.5, "half way")
    assert task.plugin == "job" and task.params == {"x": 21}
    assert task.started_at is not None and task.finished_at is None
    gate.go.set()
    assert task.wait(WAIT) == "SUCCESS"
    assert task.done and task.result == {"answer": 42} and task.error is None
    assert task.progress == 1.0
    assert task.finished_at >= task.started_at >= task.created_at
    assert "SUCCESS" in repr(task)
    assert engine.task(task.id) == task


def test_wait_with_a_timeout_raises_timeout_error(make_engine):
    """wait(timeout) on a task that does not end in time raises TimeoutError and leaves it running."""
    engine = make_engine()
    gate = Gate()
    task = engine.run_task(lambda params, context: gate.pause())
    assert gate.reached.wait(WAIT)
    with pytest.raises(TimeoutError, match=task.id):
        task.wait(timeout=0.1)
    assert task.status == "RUNNING"
    gate.go.set()
    assert task.wait(WAIT) == "SUCCESS"


def test_cancel_stops_a_task_at_its_next_check(make_engine):
    """cancel() is cooperative: the task ends CANCELLED at check_cancelled(), with a system record saying so."""
    engine = make_engine()
    looped = threading.Event()

    def loop(params, context):
        while True:
            context.check_cancelled()
            looped.set()
            context.logger.info("still going")
            threading.Event().wait(0.005)

    task = engine.run_task(loop)
    assert looped.wait(WAIT)
    assert task.cancel() is True
    assert task.wait(WAIT) == "CANCELLED"
    assert "cancelled" in task.error
    last = task.logs()[-1]
    assert (last.source, last.level) == ("system", "WARNING") and "cancelled" in last.message.lower()
    assert task.cancel() is False  # already finished


def test_cancel_of_a_queued_task_means_it_never_runs(make_engine):
    """A task cancelled while queued (max_workers=1) ends CANCELLED without its plugin ever running."""
    engine = make_engine(max_workers=1)
    gate = Gate()
    ran = threading.Event()
    first = engine.run_task(lambda params, context: gate.pause())
    queued = engine.run_task(lambda params, context: ran.set())
    assert gate.reached.wait(WAIT)
    assert queued.status == "PENDING"
    assert queued.cancel() is True
    gate.go.set()
    assert first.wait(WAIT) == "SUCCESS"
    assert queued.wait(WAIT) == "CANCELLED"
    assert not ran.is_set()
    assert [(r.source, r.message) for r in queued.logs()] == [("system", "Task cancelled before it started")]


def test_a_failing_plugin_fails_its_task_with_the_traceback_logged(make_engine):
    """An exception ends the task FAILED with the error text and an ERROR record carrying the traceback."""
    engine = make_engine()

    def broken(params, context):
        context.logger.info("about to fail")
        raise KeyError("missing")

    task = engine.run_task(broken)
    assert task.wait(WAIT) == "FAILED"
    assert task.error == "KeyError: 'missing'"
    errors = task.logs(errors_only=True)
    assert len(errors) == 1 and errors[0].source == "system"
    assert errors[0].metadata["exc_type"] == "KeyError" and "raise KeyError" in errors[0].metadata["traceback"]


# ---- logs: filters, paging, the buffer/database seam -------------------------------------------------------
def mixed(params, context):
    """Records from three sources, four levels, with metadata."""
    log = context.logger
    api = log.with_source("superset_api")
    for i in range(params.get("n", 30)):
        log.debug("debug %d", i, i=i)
        api.info("GET /dashboard/%d", i, dashboard_id=i, nested={"db": f"uuid-{i % 3}"})
        if i % 10 == 0:
            api.warning("slow dashboard %d", i, dashboard_id=i)
        if i % 15 == 0:
            log.error("failed %d", i, dashboard_id=i)


def test_logs_filter_by_level_source_text_and_metadata(make_engine):
    """level, source, search, meta (nested too), errors_only, order and limit select exactly the right records."""
    engine = make_engine()
    task = engine.run_task(mixed, {"n": 30}, log_level="DEBUG")
    assert task.wait(WAIT) == "SUCCESS"
    engine.flush()
    every = task.logs()
    assert seqs(every) == list(range(1, len(every) + 1))
    assert len(every) == 2 + 30 + 30 + 3 + 2

    assert {r.level for r in task.logs(level="WARNING")} == {"WARNING", "ERROR"}
    assert len(task.logs(level="warning")) == 5
    assert len(task.logs(errors_only=True)) == 2
    assert {r.source for r in task.logs(source="superset_api")} == {"superset_api"}
    assert len(task.logs(source=["superset_api", "system"])) == 30 + 3 + 2
    assert len(task.logs(source="plugin,system")) == 30 + 2 + 2
    assert [r.message for r in task.logs(search="SLOW DASHBOARD 2")] == ["slow dashboard 20"]
    assert [r.metadata["dashboard_id"] for r in task.logs(meta={"dashboard_id": 15})] == [15, 15]
    assert len(task.logs(meta={"nested.db": "uuid-1"})) == 10
    assert len(task.logs(meta=["nested.db=uuid-2"], search="GET")) == 10
    assert len(task.logs(meta=["nested"])) == 30
    assert [r.metadata["i"] for r in task.logs(level="DEBUG", source="plugin", search="debug", limit=3)] == [0, 1, 2]
    newest = task.logs(order="desc", limit=2)
    assert seqs(newest) == [len(every), len(every) - 1]


def test_logs_page_through_with_after(make_engine):
    """Keyset paging with after= and limit= walks every record once, in order."""
    engine = make_engine()
    task = engine.run_task(mixed, {"n": 300})
    assert task.wait(WAIT) == "SUCCESS"
    every = task.logs()
    pages, after = [], 0
    while True:
        page = task.logs(after=after, limit=97)
        if not page:
            break
        assert len(page) <= 97
        pages.extend(page)
        after = page[-1].seq
    assert pages == every
    assert seqs(task.logs(after=10, limit=5)) == [11, 12, 13, 14, 15]
    assert seqs(task.logs(before=4)) == [1, 2, 3]


def test_logs_merge_written_and_buffered_records_without_duplicates(make_engine):
    """Half the records written, half still buffered: logs() gives each once, in seq order, with filters across the seam."""
    engine = make_engine(flush_interval=3600)  # only explicit flushes write
    gate = Gate()

    def halves(params, context):
        for i in range(100):
            if i == 50:
                gate.pause()
            context.logger.info("line %d", i, half=i // 50)

    task = engine.run_task(halves)
    assert gate.reached.wait(WAIT)
    assert engine.flush()
    written = engine.store.query_logs(task.id, make_filter())
    assert seqs(written) == list(range(1, 52))  # "Task started" and lines 0..49
    gate.go.set()
    assert task.wait(WAIT) == "SUCCESS"
    assert engine.health().pending == 51  # lines 50..99 and "Task succeeded" wait in the buffer

    every = task.logs()
    assert seqs(every) == list(range(1, 103))
    assert [r.message for r in every if r.source == "plugin"] == [f"line {i}" for i in range(100)]
    assert seqs(task.logs(after=45, limit=10)) == list(range(46, 56))  # straddles the seam
    assert seqs(task.logs(order="desc", limit=3)) == [102, 101, 100]
    assert len(task.logs(meta={"half": 1})) == 50 and len(task.logs(meta={"half": 0})) == 50
    assert [r.message for r in task.logs(search="line 5", source="plugin")] == ["line 5"] + [f"line {i}" for i in range(50, 60)]
    stats = task.stats()
    assert stats["total"] == 102 and stats["sources"] == {"system": 2, "plugin": 100}
    assert stats["levels"] == {"INFO": 102} and stats["metadata_keys"] == ["half", "params", "plugin"]

    assert engine.flush()
    assert task.logs() == every  # the same records once written
    assert task.stats() == stats


def test_follow_yields_history_then_live_records_and_ends_with_the_task(make_engine):
    """follow() started mid-task gives the written, the buffered and then the live records, each once, and stops at the end."""
    engine = make_engine(flush_interval=3600)
    first, second = Gate(), Gate()

    def staged(params, context):
        for i in range(300):
            if i == 100:
                first.pause()  # lines 0..99 exist; the test writes them
            if i == 200:
                second.pause()  # lines 100..199 stay buffered while follow() starts
            context.logger.info("line %d", i)

    task = engine.run_task(staged)
    assert first.reached.wait(WAIT)
    assert engine.flush()
    first.go.set()
    assert second.reached.wait(WAIT)
    followed: list = []
    ended = threading.Event()

    def reader():
        for record in task.follow():
            followed.append(record)
            if len(followed) == 150:
                second.go.set()  # live records start flowing while the reader is in the middle
        ended.set()

    threading.Thread(target=reader, daemon=True).start()
    assert ended.wait(WAIT), "follow() did not end with the task"
    assert task.status == "SUCCESS"
    assert seqs(followed) == list(range(1, 303))
    assert followed == list(task.logs())


def test_follow_applies_its_filter_and_ends_for_a_finished_task(make_engine):
    """follow(level=...) on a finished task yields just the matching history, then returns."""
    engine = make_engine()
    task = engine.run_task(mixed, {"n": 30})
    assert task.wait(WAIT) == "SUCCESS"
    followed = list(task.follow(level="WARNING"))
    assert followed == list(task.logs(level="WARNING")) and len(followed) == 5


def test_stats_and_listing_of_tasks(make_engine):
    """tasks() lists newest first and filters by status and plugin; stats() counts levels, sources, metadata keys."""
    engine = make_engine()

    def ok(params, context):
        context.logger.warning("careful", code=1)

    def bad(params, context):
        raise RuntimeError("nope")

    a = engine.run_task(ok)
    a.wait(WAIT)
    b = engine.run_task(bad)
    b.wait(WAIT)
    c = engine.run_task(ok)
    c.wait(WAIT)
    assert engine.tasks() == [c, b, a]
    assert engine.tasks(status="FAILED") == [b]
    assert engine.tasks(status=["SUCCESS", "FAILED"], limit=2) == [c, b]
    assert engine.tasks(plugin="ok") == [c, a]
    assert engine.tasks(plugin="ok", status="FAILED") == []
    assert engine.tasks(before=c.id) == [b, a]
    with pytest.raises(ValueError, match="unknown status"):
        engine.tasks(status="DONE")
    stats = a.stats()
    assert stats["levels"] == {"INFO": 2, "WARNING": 1}
    assert stats["sources"] == {"system": 2, "plugin": 1}
    assert "code" in stats["metadata_keys"] and stats["total"] == 3

    engine.close()
    again = make_engine()  # the same file: the listing now comes from the database alone
    assert again.tasks() == [c, b, a]
    assert again.tasks(status="FAILED") == [b] and again.task(b.id).error == "RuntimeError: nope"


# ---- levels (US4) ---------------------------------------------------------------------------------------
def all_levels(params, context):
    log = context.logger
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    logging.getLogger("thirdparty").warning("lib w")
    logging.getLogger("thirdparty").error("lib e")
    print("printed")  # INFO on source stdout


def test_task_log_level_warning_persists_only_warning_and_error(make_engine, tmp_path):
    """task_log_level=WARNING: only WARNING and ERROR records reach the database, from every path into the task."""
    engine = make_engine()
    engine.update_settings(task_log_level="WARNING")
    task = engine.run_task(all_levels)
    assert task.wait(WAIT) == "SUCCESS"
    engine.close()
    rows = read_db(tmp_path / "logs.duckdb", "select level, source, message from task_logs where task_id = ? order by seq", [task.id])
    assert {level for level, _, _ in rows} == {"WARNING", "ERROR"}
    assert [(s, m) for _, s, m in rows] == [("plugin", "w"), ("plugin", "e"), ("thirdparty", "lib w"), ("thirdparty", "lib e")]
    again = make_engine()
    assert again.settings.task_log_level.name == "WARNING"  # the setting was persisted too


def test_per_task_log_level_overrides_the_setting(make_engine):
    """run_task(log_level=...) beats task_log_level either way, and is kept on the task."""
    engine = make_engine()
    engine.update_settings(task_log_level="WARNING")
    verbose = engine.run_task(all_levels, log_level="DEBUG")
    quiet = engine.run_task(all_levels, log_level="error")
    default = engine.run_task(all_levels)
    for task in (verbose, quiet, default):
        assert task.wait(WAIT) == "SUCCESS"
    engine.flush()
    plugin = lambda task: [r.level for r in task.logs(source="plugin")]  # noqa: E731
    assert plugin(verbose) == ["DEBUG", "INFO", "WARNING", "ERROR"]
    assert "printed" in [r.message for r in verbose.logs(source="stdout")]
    assert plugin(quiet) == ["ERROR"]
    assert {r.level for r in quiet.logs()} == {"ERROR"}
    assert plugin(default) == ["WARNING", "ERROR"]
    assert verbose.info()["log_level"] == "DEBUG" and quiet.info()["log_level"] == "ERROR"
    assert default.info()["log_level"] is None


def test_a_running_task_follows_a_settings_change(make_engine):
    """Raising task_log_level mid-task drops its lower records from then on (SC-005: no restart)."""
    engine = make_engine()
    gate = Gate()

    def job(params, context):
        context.logger.info("before")
        gate.pause()
        context.logger.info("after")
        context.logger.warning("after, loud")

    task = engine.run_task(job)
    assert gate.reached.wait(WAIT)
    engine.update_settings(task_log_level="WARNING")
    gate.go.set()
    assert task.wait(WAIT) == "SUCCESS"
    assert [r.message for r in task.logs(source="plugin")] == ["before", "after, loud"]


# ---- delete and cleanup (FR-008, FR-009) ---------------------------------------------------------------
def test_delete_task_removes_it_and_all_its_logs(make_engine, tmp_path):
    """delete_task removes the task row and every record (written or buffered); other tasks keep theirs."""
    engine = make_engine(flush_interval=3600)
    keep = engine.run_task(mixed, {"n": 20})
    gone = engine.run_task(mixed, {"n": 20})
    assert keep.wait(WAIT) == "SUCCESS" and gone.wait(WAIT) == "SUCCESS"
    engine.flush()
    late = engine.run_task(mixed, {"n": 5})  # its records are still in the buffer when it is deleted
    assert late.wait(WAIT) == "SUCCESS"
    kept = keep.logs()
    gone.delete()
    engine.delete_task(late.id)
    with pytest.raises(UnknownTaskError):
        engine.task(gone.id)
    with pytest.raises(UnknownTaskError):
        gone.logs()
    assert keep.logs() == kept
    engine.close()
    db = tmp_path / "logs.duckdb"
    assert read_db(db, "select id from tasks") == [(keep.id,)]
    assert read_db(db, "select distinct task_id from task_logs") == [(keep.id,)]
    assert read_db(db, "select count(*) from task_logs")[0][0] == len(kept)


def test_delete_refuses_running_and_unknown_tasks(make_engine):
    """Deleting a running task raises TaskActiveError (nothing removed); an unknown id raises UnknownTaskError."""
    engine = make_engine()
    gate = Gate()
    task = engine.run_task(lambda params, context: gate.pause())
    assert gate.reached.wait(WAIT)
    with pytest.raises(TaskActiveError):
        task.delete()
    with pytest.raises(UnknownTaskError, match="no-such-task"):
        engine.delete_task("no-such-task")
    gate.go.set()
    assert task.wait(WAIT) == "SUCCESS"
    assert task.logs()  # still there
    task.delete()
    assert engine.tasks() == []


def test_cleanup_removes_finished_tasks_and_keeps_running_ones(make_engine):
    """cleanup(older_than='0s') deletes every finished task with its logs, and no running one."""
    engine = make_engine()
    gate = Gate()
    done = [engine.run_task(mixed, {"n": 5}) for _ in range(3)]
    for task in done:
        assert task.wait(WAIT) == "SUCCESS"
    running = engine.run_task(lambda params, context: (context.logger.info("busy"), gate.pause()))
    assert gate.reached.wait(WAIT)
    assert engine.cleanup("1h") == []  # nothing that old
    removed = engine.cleanup(older_than="0s")
    assert sorted(removed) == sorted(t.id for t in done)
    assert engine.tasks() == [running]
    assert engine.sql(f"select count(*) n from task_logs where task_id <> '{running.id}'")["n"][0] == 0
    assert [r.message for r in running.logs(source="plugin")] == ["busy"]
    gate.go.set()
    assert running.wait(WAIT) == "SUCCESS"


def test_retention_runs_cleanup_periodically(make_engine):
    """retention='0s' with a short cleanup_interval: finished tasks disappear by themselves, running ones stay."""
    engine = make_engine(retention="0s", cleanup_interval=0.1)
    gate = Gate()
    finished = engine.run_task(mixed, {"n": 5})
    assert finished.wait(WAIT) == "SUCCESS"
    running = engine.run_task(lambda params, context: gate.pause())
    assert gate.reached.wait(WAIT)
    poll(lambda: finished not in engine.tasks(), WAIT, "retention to remove the finished task", interval=0.1)
    assert engine.tasks() == [running]
    assert engine.sql(f"select count(*) n from task_logs where task_id = '{finished.id}'")["n"][0] == 0
    gate.go.set()
    assert running.wait(WAIT) == "SUCCESS"


# ---- analyst SQL ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "DELETE FROM task_logs",
        "INSERT INTO tasks (id, plugin, status, created_at) VALUES ('x', 'p', 'SUCCESS', now())",
        "UPDATE tasks SET status = 'FAILED'",
        "ATTACH '/tmp/other.duckdb' AS other",
        "COPY task_logs TO '/tmp/out.csv'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET threads = 1",
        "DROP TABLE task_logs",
        "CREATE TABLE t (a INT)",
        "PRAGMA enable_external_access",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT 1; DELETE FROM task_logs",
        "WITH gone AS (DELETE FROM task_logs RETURNING *) SELECT count(*) FROM gone",
        "WITH moved AS (UPDATE tasks SET status = 'X' RETURNING *) SELECT * FROM moved",
        "EXPLAIN ANALYZE DELETE FROM task_logs",
        "SELECT nextval('task_logs_id_seq')",
    ],
)
def test_sql_is_read_only(make_engine, query):
    """sql() refuses anything that writes, changes settings, loads code or touches files, and nothing changes."""
    engine = make_engine()
    task = engine.run_task(mixed, {"n": 5})
    assert task.wait(WAIT) == "SUCCESS"
    before = engine.sql("select (select count(*) from task_logs) n, (select min(status) from tasks) s").values.tolist()
    with pytest.raises(SQLError):
        engine.sql(query)
    after = engine.sql("select (select count(*) from task_logs) n, (select min(status) from tasks) s").values.tolist()
    assert after == before


def test_sql_returns_dataframes_arrow_and_cuts_long_results(make_engine):
    """sql() gives a DataFrame over tasks and task_logs (what was just logged included), a pyarrow Table with arrow=True, and warns when cut."""
    engine = make_engine(flush_interval=3600)
    task = engine.run_task(mixed, {"n": 10})
    assert task.wait(WAIT) == "SUCCESS"
    frame = engine.sql(
        "select t.plugin, count(*) as n from task_logs l join tasks t on t.id = l.task_id group by t.plugin"
    )
    assert isinstance(frame, pd.DataFrame)
    assert frame.to_dict("records") == [{"plugin": "mixed", "n": len(task.logs())}]
    table = engine.sql("select seq, json_extract_string(metadata, '$.nested.db') db from task_logs where source = 'superset_api' and level = 'INFO' order by seq", arrow=True)
    assert isinstance(table, pa.Table) and table.num_rows == 10
    assert table.column("db").to_pylist()[:3] == ["uuid-0", "uuid-1", "uuid-2"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cut = engine.sql("select * from range(1000)", max_rows=10)
    assert len(cut) == 10
    assert any("first 10 rows" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(engine.sql("select * from range(10)", max_rows=10)) == 10  # exactly max_rows: no warning


def test_sql_stops_a_long_query_at_its_timeout(make_engine):
    """A query running past timeout= is interrupted and reported as SQLError; the engine still answers after."""
    engine = make_engine()
    with pytest.raises(SQLError, match="time limit"):
        engine.sql("select count(*) from range(10000000000)", timeout=0.5)
    assert engine.sql("select 42 as x")["x"][0] == 42


def test_sql_reports_syntax_errors_and_several_statements(make_engine):
    """Bad SQL and more than one statement are SQLErrors with a readable message."""
    engine = make_engine()
    with pytest.raises(SQLError, match="syntax"):
        engine.sql("selec 1")
    with pytest.raises(SQLError, match="one SQL statement"):
        engine.sql("select 1; select 2")
    with pytest.raises(SQLError):
        engine.sql("select * from no_such_table")


# ---- bad input -----------------------------------------------------------------------------------------
def test_run_task_rejects_bad_input_with_clear_errors(make_engine):
    """Unknown plugin, params that are not a JSON object, a bad level: each a clear error, no task created."""
    engine = make_engine()
    noop = lambda params, context: None  # noqa: E731
    with pytest.raises(UnknownPluginError, match="no_such_plugin") as error:
        engine.run_task("no_such_plugin")
    assert "known plugins" in str(error.value)
    with pytest.raises(TypeError, match="params must be a dict"):
        engine.run_task(noop, [1, 2])
    with pytest.raises(ValueError, match="JSON-serializable"):
        engine.run_task(noop, {"when": object()})
    with pytest.raises(ValueError, match="JSON-serializable"):
        engine.run_task(noop, {"x": float("nan")})
    with pytest.raises(ValueError, match="unknown log level"):
        engine.run_task(noop, log_level="LOUD")
    with pytest.raises(TypeError, match="not a plugin"):
        engine.run_task(42)
    assert engine.tasks() == []


def test_registered_plugins_run_by_name(make_engine):
    """A plugin registered in the engine's registry runs by name; params are copied as JSON."""
    from nbtasklog.plugins import Plugin, Registry

    class Echo(Plugin):
        name = "echo"

        def execute(self, params, context):
            context.logger.info("echo %s", params["word"])
            return params

    registry = Registry()
    registry.register(Echo)
    engine = make_engine(registry=registry)
    params = {"word": "hi", "nested": [1, {"a": None}]}
    task = engine.run_task("echo", params)
    params["word"] = "changed later"
    assert task.wait(WAIT) == "SUCCESS"
    assert task.result == {"word": "hi", "nested": [1, {"a": None}]}
    assert task.plugin == "echo" and [r.message for r in task.logs(source="plugin")] == ["echo hi"]


def test_bad_filters_and_unknown_tasks_raise(make_engine):
    """Filters that make no sense raise FilterError; unknown task ids raise UnknownTaskError everywhere."""
    engine = make_engine()
    task = engine.run_task(mixed, {"n": 2})
    assert task.wait(WAIT) == "SUCCESS"
    for bad in ({"level": "LOUD"}, {"limit": 0}, {"limit": "many"}, {"order": "sideways"},
                {"after": -1}, {"meta": {"a b": 1}}, {"source": ""}, {"since": "yesterday"}):
        with pytest.raises(FilterError):
            task.logs(**bad)
    for call in (engine.task, engine.task_info, engine.logs, engine.stats, engine.cancel):
        with pytest.raises(UnknownTaskError):
            call("0000-unknown")
    with pytest.raises(UnknownTaskError):
        list(engine.follow("0000-unknown"))


def test_a_closed_engine_refuses_new_tasks(make_engine):
    """run_task on a closed engine raises RuntimeError; close() is idempotent."""
    engine = make_engine()
    engine.close()
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.run_task(lambda params, context: None)


def test_health_reports_the_writes(make_engine):
    """health(): nothing pending and the flushed count after a flush, database available."""
    engine = make_engine(flush_interval=3600)
    task = engine.run_task(mixed, {"n": 10})
    assert task.wait(WAIT) == "SUCCESS"
    count = len(task.logs())
    assert engine.health().pending == count
    assert engine.flush() is True
    health = engine.health()
    assert (health.pending, health.spilled, health.flushed_total) == (0, 0, count)
    assert health.database_available and health.last_error is None and health.last_flush_at is not None
    assert json.loads(json.dumps(health.to_dict()))["flushed_total"] == count


def test_a_write_gives_short_gil_turns_and_then_the_interval_back(engine, monkeypatch):
    """While a batch is written, threads waiting for the GIL get it after 0.5 ms (DuckDB's client takes it
    between the steps of a query); afterwards the interval is the one before, or the one someone set meanwhile."""
    from nbtasklog.store.buffer import WRITE_SWITCH_INTERVAL

    during: list[float] = []
    write = engine.store.write
    change_to: list[float] = []

    def watched_write(*args, **kwargs):
        during.append(sys.getswitchinterval())
        if change_to:
            sys.setswitchinterval(change_to[0])
        return write(*args, **kwargs)

    monkeypatch.setattr(engine.store, "write", watched_write)
    before = sys.getswitchinterval()
    try:
        engine.run_task(lambda params, context: context.logger.info("one record")).wait(10)
        assert engine.flush()
        assert during and set(during) == {WRITE_SWITCH_INTERVAL} and sys.getswitchinterval() == before
        change_to.append(0.002)  # an application changes it while a write is running: its value stays
        engine.run_task(lambda params, context: context.logger.info("one more")).wait(10)
        assert engine.flush()
        assert sys.getswitchinterval() == 0.002
    finally:
        sys.setswitchinterval(before)


def test_short_gil_turns_last_until_the_last_of_overlapping_writes():
    """Two engines' flushers writing at once: the interval comes back when the second write ends, not the first."""
    from nbtasklog.store.buffer import _ShortGilTurns

    before = sys.getswitchinterval()
    turns = _ShortGilTurns(0.0005)
    try:
        turns.__enter__()
        turns.__enter__()  # another engine's write begins
        turns.__exit__(None, None, None)  # the first ends
        assert sys.getswitchinterval() == 0.0005
        turns.__exit__(None, None, None)
        assert sys.getswitchinterval() == before
        sys.setswitchinterval(0.0001)  # shorter than ours already: left alone
        shorter = sys.getswitchinterval()
        with turns:
            assert sys.getswitchinterval() == shorter
        assert sys.getswitchinterval() == shorter
    finally:
        sys.setswitchinterval(before)
