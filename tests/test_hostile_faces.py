"""The hostile corpus (tests/hostile.py) through every face of an embedded engine: the Python API (logs,
follow, stats, Arrow, pandas), the widget, the CLI (text and JSONL), the widget's export and SQL. Each shows
the same stored records; none raises, stalls or stops persistence."""

from __future__ import annotations

import json
import re
import threading

import pytest
import reliability
from conftest import TIMEOUT
from hostile import (
    BIG,
    CASES,
    MESSAGES,
    hostile_plugin,
    only_nbtasklog_on_the_root_logger,
    record_key,
)
from procs import make_engine, read_db  # noqa: F401  (fixture)
from test_widget import Recorder, request

from nbtasklog import cli
from nbtasklog import widget as w
from nbtasklog.record import REPLACEMENT

pytestmark = pytest.mark.slow

# What a terminal would act on: C0 and C1 controls except newline and tab, and the bidi controls.
TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def as_dicts(records) -> list[dict]:
    return [r.to_dict() for r in records]


@pytest.fixture
def hostile_task(make_engine, db_path):
    """An engine on db_path whose one task logged the whole corpus (followed live while it ran), and what
    the live reader saw."""
    engine = make_engine(db_path)
    with only_nbtasklog_on_the_root_logger():
        task = engine.run_task(hostile_plugin)
        live = [r.to_dict() for r in task.follow()]  # follows from the start: history, then live records
        assert task.wait(TIMEOUT) == "SUCCESS", task.error
    return engine, task, live


def test_the_python_api_faces_agree_and_persistence_goes_on(hostile_task, db_path):
    """logs(), follow(), stats(), Arrow and pandas give the same records; the store stays available and a
    later task stores every record; the text in every record is valid UTF-8."""
    engine, task, live = hostile_task
    reliability.record("hostile", cases=CASES)
    unflushed = as_dicts(task.logs())
    assert engine.flush()
    stored = as_dicts(task.logs())
    assert [record_key(r) for r in live] == [record_key(r) for r in unflushed] == [record_key(r) for r in stored]
    assert [r["seq"] for r in stored] == list(range(1, task.info()["record_count"] + 1))
    for record in stored:
        for field in ("source", "message"):
            record[field].encode("utf-8")
        json.dumps(record["metadata"], allow_nan=False).encode("utf-8")
    messages = [r["message"] for r in stored]
    assert f"lone surrogates {REPLACEMENT} and {REPLACEMENT}x (os.fsdecode of a name that is not UTF-8)" in messages
    assert "NUL a\x00b" in messages and MESSAGES[2] in messages and MESSAGES[3] in messages
    big = next(r for r in stored if r["message"].startswith("yyyy"))
    assert big["metadata"]["message_original_bytes"] == BIG and len(big["message"].encode()) <= engine.max_message_bytes
    stats = task.stats()
    assert stats["total"] == len(stored)
    assert stats["sources"]["hostile.lib"] == 2 and stats["sources"]["stdout"] == 1
    table = task.logs().to_arrow()
    assert table.column("message").to_pylist() == messages
    frame = task.logs().to_pandas()
    assert frame["message"].tolist() == messages
    assert task.info()["progress_message"] == f"progress {REPLACEMENT}"
    reliability.record("hostile", faces=["Python logs()", "follow()", "stats()", "Arrow", "pandas"], lost=0)
    later = engine.run_task(lambda params, context: [context.logger.info("ok %d", i) for i in range(1000)])
    assert later.wait(TIMEOUT) == "SUCCESS"
    assert engine.flush() and engine.health().database_available
    engine.close()
    assert read_db(db_path, "select count(*) from task_logs where task_id = ?", [later.id]) == [(1002,)]
    assert read_db(db_path, "select count(*) from task_logs where task_id = ?", [task.id]) == [(len(stored),)]


def test_sql_returns_the_stored_text(hostile_task):
    engine, task, _ = hostile_task
    assert engine.flush()
    rows = engine.sql(f"SELECT seq, message, metadata FROM task_logs WHERE task_id = '{task.id}' ORDER BY seq", arrow=True)
    stored = task.logs()
    assert rows.column("message").to_pylist() == [r.message for r in stored]
    assert [json.loads(m) if m else None for m in rows.column("metadata").to_pylist()] == [r.metadata for r in stored]
    reliability.record("hostile", faces=["SQL"])


def test_the_widget_sends_the_same_records_and_exports_them(hostile_task):
    """The viewer's stream and its JSONL/CSV export carry the stored records, byte for byte valid UTF-8."""
    engine, task, _ = hostile_task
    stored = task.logs()
    view = w.LogViewer(task, engine=engine)
    recorder = Recorder(view)
    try:
        view._on_msg(view, {"type": "open", "stream": 1, "task": task.id, "filter": {}}, [])
        recorder.wait(lambda m: m.get("stream") == 1 and m.get("event") == "end", timeout=TIMEOUT)
        sent = recorder.records(1)
        assert [(r["seq"], r["source"], r["message"]) for r in sent] == [(r.seq, r.source, r.message) for r in stored]
        assert [json.loads(r["meta"]) if r["meta"] else None for r in sent] == [r.metadata for r in stored]
        reply = request(view, recorder, 2, "export", task_id=task.id, format="jsonl")
        assert "error" not in reply, reply
        data = next(b for m, b in recorder.messages if m.get("id") == 2)[0]
        lines = bytes(data).decode("utf-8").splitlines()
        assert [json.loads(line)["message"] for line in lines] == [r.message for r in stored]
        reply = request(view, recorder, 3, "export", task_id=task.id, format="csv")
        assert "error" not in reply, reply
        reliability.record("hostile", faces=["widget", "widget export"])
    finally:
        view.close()


def test_the_cli_prints_controls_visibly_and_jsonl_exactly(hostile_task, db_path, capsys):
    """Text output escapes what a terminal would act on; JSONL is the exact record, valid UTF-8."""
    engine, task, _ = hostile_task
    stored = as_dicts(task.logs())
    engine.close()
    assert cli.main(["--db", str(db_path), "logs", task.id]) == 0
    text = capsys.readouterr().out
    assert not TERMINAL_CONTROLS.search(text)
    assert "\\x1b[2J" in text and "\\u202e" in text and "\\x00" in text
    assert cli.main(["--db", str(db_path), "logs", task.id, "--format", "jsonl"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [record_key(json.loads(line)) for line in lines] == [record_key(r) for r in stored]
    assert cli.main(["--db", str(db_path), "tasks"]) == 0
    assert cli.main(["--db", str(db_path), "sql", f"SELECT message FROM task_logs WHERE task_id = '{task.id}'"]) == 0
    assert not TERMINAL_CONTROLS.search(capsys.readouterr().out)
    reliability.record("hostile", faces=["CLI text", "CLI JSONL"])


def test_hostile_filters_are_repaired_or_refused_never_raised_from_the_store(hostile_task):
    """A search or metadata filter with text no store takes finds the repaired records, or is a FilterError."""
    engine, task, _ = hostile_task
    from nbtasklog import FilterError

    assert [r.message for r in task.logs(search="surrogates \ud800")][0].startswith("lone surrogates")
    assert len(task.logs(meta={"value.path": "a\ud800b"})) == 1
    assert len(task.logs(search="\x00")) >= 1
    for bad in ({"meta": {"a b": 1}}, {"level": "\ud800"}, {"source": ""}, {"limit": "1e3"}, {"since": "\x00"}):
        with pytest.raises(FilterError):
            task.logs(**bad)


def test_followers_of_a_hostile_task_started_at_any_moment_agree(make_engine):
    """Readers joining while the corpus is being logged all end with the same complete log."""
    engine = make_engine()
    go = threading.Event()

    def slow_corpus(params, context):
        go.wait(TIMEOUT)
        return hostile_plugin(params, context)

    seen: list[list[tuple]] = []
    with only_nbtasklog_on_the_root_logger():
        task = engine.run_task(slow_corpus)
        threads = [threading.Thread(target=lambda: seen.append([record_key(r.to_dict()) for r in task.follow()]))
                   for _ in range(4)]
        threads[0].start()
        go.set()
        for thread in threads[1:]:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
    expected = [record_key(r.to_dict()) for r in task.logs()]
    assert len(seen) == 4 and all(got == expected for got in seen)
