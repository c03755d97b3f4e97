"""TaskLogger and TaskEmitter: formatting, metadata, sources, exceptions, size cap, the level gate, seq."""

from __future__ import annotations

import json
import threading

import pytest

from nbtasklog.levels import Level
from nbtasklog.logger import TaskEmitter, TaskLogger
from nbtasklog.record import LogRecord


def make_logger(min_level: Level = Level.DEBUG, max_message_bytes: int = 1024 * 1024, task_id: str = "t1"):
    sink: list[LogRecord] = []
    # The emitter hands its sink plain tuples of the record's fields (what the write buffer queues).
    emitter = TaskEmitter(task_id, lambda row: sink.append(LogRecord._make(row)), min_level=min_level,
                          max_message_bytes=max_message_bytes)
    return TaskLogger(emitter), sink


def test_percent_style_args_are_formatted():
    """%-style args are applied to the message as in stdlib logging."""
    logger, sink = make_logger()
    logger.info("copied %d rows to %s (%.1f%%)", 42, "users", 99.5)
    assert sink[0].message == "copied 42 rows to users (99.5%)"
    assert sink[0].metadata_json is None


def test_a_message_without_args_is_kept_verbatim_and_non_strings_become_str():
    """Without args '%' is not interpreted; a non-string message is converted with str()."""
    logger, sink = make_logger()
    logger.info("100% done %s")
    logger.info(12345)
    logger.info({"k": 1})
    assert [r.message for r in sink] == ["100% done %s", "12345", "{'k': 1}"]


def test_keyword_arguments_become_metadata_even_msg_and_level():
    """Keyword arguments are the record's JSON metadata; keys named msg and level do not clash with the parameters."""
    logger, sink = make_logger()
    logger.warning("hello %s", "you", msg="a message field", level="not a level", dashboard_id=7, nested={"a": [1, None]})
    record = sink[0]
    assert (record.level, record.message) == ("WARNING", "hello you")
    assert record.metadata == {"msg": "a message field", "level": "not a level", "dashboard_id": 7, "nested": {"a": [1, None]}}


def test_each_method_emits_its_level_and_the_aliases_match():
    """debug/info/warning/error give their level; warn is warning, critical is error, log(level) parses the level."""
    logger, sink = make_logger()
    logger.debug("d")
    logger.info("i")
    logger.warning("w")
    logger.warn("w2")
    logger.error("e")
    logger.critical("c")
    logger.log("warning", "via log")
    logger.log(50, "stdlib critical")
    assert [(r.level, r.message) for r in sink] == [
        ("DEBUG", "d"), ("INFO", "i"), ("WARNING", "w"), ("WARNING", "w2"), ("ERROR", "e"), ("ERROR", "c"),
        ("WARNING", "via log"), ("ERROR", "stdlib critical"),
    ]
    with pytest.raises(ValueError, match="unknown log level"):
        logger.log("loud", "x")


def test_default_source_is_plugin_and_with_source_returns_a_new_logger():
    """A new logger writes source 'plugin'; with_source gives another logger of the same task, the original unchanged."""
    logger, sink = make_logger()
    api = logger.with_source("superset_api")
    assert api is not logger
    assert logger.source == "plugin" and api.source == "superset_api"
    assert api.task_id == logger.task_id == "t1"
    api.info("from api")
    logger.info("from plugin")
    assert [(r.source, r.message) for r in sink] == [("superset_api", "from api"), ("plugin", "from plugin")]
    assert [r.seq for r in sink] == [1, 2]  # one task, one seq counter
    assert api.with_source("  db  ").source == "db"


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_with_source_refuses_empty_or_non_text_names(bad):
    """with_source needs a non-empty name."""
    logger, _ = make_logger()
    with pytest.raises(ValueError, match="source must be a non-empty name"):
        logger.with_source(bad)


def test_exception_stores_type_message_and_traceback():
    """exception() inside an except block logs ERROR with exc_type, exc_message and the traceback in metadata."""
    logger, sink = make_logger()

    def fail():
        return 1 / 0

    try:
        fail()
    except ZeroDivisionError:
        logger.exception("division failed for %s", "row 3", row=3)
    record = sink[0]
    meta = record.metadata
    assert (record.level, record.message) == ("ERROR", "division failed for row 3")
    assert meta["exc_type"] == "ZeroDivisionError"
    assert meta["exc_message"] == "division by zero"
    assert "Traceback (most recent call last)" in meta["traceback"] and "in fail" in meta["traceback"]
    assert meta["row"] == 3
    assert "exc_info" not in meta


def test_exc_info_accepts_an_exception_or_false():
    """exc_info=<exception> stores that exception; exc_info=False stores nothing and is not metadata."""
    logger, sink = make_logger()
    logger.warning("kept going", exc_info=KeyError("missing"))
    logger.error("no details", exc_info=False)
    assert sink[0].metadata["exc_type"] == "KeyError"
    assert sink[1].metadata_json is None or "exc_info" not in sink[1].metadata


class BadStr:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        return "<BadStr>"


@pytest.mark.parametrize(("msg", "args", "error"), [
    ("%d rows", ("many",), "TypeError"),
    ("%s and %s", ("one",), "TypeError"),
    ("%(name)s", (1,), "TypeError"),
    ("%s", (BadStr(),), "RuntimeError"),
    ("value %y", (1,), "ValueError"),
])
def test_a_bad_format_never_raises_and_keeps_the_information(msg, args, error):
    """A format that does not fit its args is logged anyway: the raw message, the args and the error in metadata."""
    logger, sink = make_logger()
    logger.info(msg, *args, table="users")
    record = sink[0]
    assert record.level == "INFO"
    assert msg in record.message
    meta = record.metadata
    assert meta["format_error"].startswith(error)
    assert meta["format_args"] == [repr(a) for a in args]
    assert meta["table"] == "users"


def test_a_message_whose_str_raises_is_logged_by_repr():
    """A message object whose __str__ raises becomes its repr, with the error in metadata."""
    logger, sink = make_logger()
    logger.error(BadStr())
    assert sink[0].message == "<BadStr>"
    assert "RuntimeError: no str for you" in sink[0].metadata["format_error"]


def test_a_long_message_is_cut_with_a_marker_and_its_original_size():
    """Past max_message_bytes the message is cut (UTF-8 safe) to at most the limit, marked, with the original size in metadata."""
    logger, sink = make_logger(max_message_bytes=200)
    original = "é" * 300  # 600 bytes
    logger.info(original, step=2)
    record = sink[0]
    assert len(record.message.encode()) <= 200
    assert "[message cut: 600 bytes, limit 200]" in record.message
    assert record.message.startswith("é" * 10)
    assert record.metadata == {"step": 2, "message_original_bytes": 600}


def test_a_message_at_the_limit_is_not_cut():
    """A message of exactly max_message_bytes bytes is kept whole, without the metadata field."""
    logger, sink = make_logger(max_message_bytes=100)
    logger.info("x" * 100)
    logger.info("€" * 33 + "x")  # 100 bytes in 34 characters
    assert sink[0].message == "x" * 100 and sink[0].metadata_json is None
    assert sink[1].message == "€" * 33 + "x" and sink[1].metadata_json is None


class Counting:
    calls = 0

    def __str__(self) -> str:
        Counting.calls += 1
        return "counted"


def test_the_level_gate_drops_calls_below_the_task_level_before_any_work():
    """Below min_level nothing is emitted, the args are never formatted and no seq is used."""
    logger, sink = make_logger(min_level=Level.WARNING)
    Counting.calls = 0
    logger.debug("%s", Counting())
    logger.info("%s", Counting(), big=list(range(10)))
    logger.log("INFO", "%s", Counting())
    assert sink == [] and Counting.calls == 0
    logger.warning("%s", Counting())
    assert [(r.seq, r.message) for r in sink] == [(1, "counted")]
    assert not logger.is_enabled_for("info") and logger.isEnabledFor(Level.ERROR)


def test_the_gate_follows_a_runtime_change_of_the_emitter_level():
    """Changing emitter.min_level takes effect on the next call."""
    logger, sink = make_logger(min_level=Level.ERROR)
    logger.info("dropped")
    logger._emitter.min_level = int(Level.DEBUG)
    logger.debug("kept")
    assert [r.message for r in sink] == ["kept"]


def test_seq_starts_at_one_per_task_and_is_gap_free_under_threads():
    """Each task counts seq from 1; concurrent loggers of one task get 1..N once each, in sink order."""
    logger_a, sink_a = make_logger(task_id="a")
    logger_b, sink_b = make_logger(task_id="b")
    logger_b.info("first of b")

    def work(n: int) -> None:
        for i in range(500):
            logger_a.with_source(f"s{n}").info("r %d", i)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.seq for r in sink_a] == list(range(1, 4001))
    assert sink_b[0].seq == 1
    assert logger_a._emitter.last_seq == 4000
    assert all(r.task_id == "a" for r in sink_a)


def test_timestamps_are_utc_microseconds_and_do_not_go_back():
    """Records carry the emission time in UTC microseconds; consecutive records never go back in time."""
    import time

    before = time.time_ns() // 1000
    logger, sink = make_logger()
    for i in range(100):
        logger.info("r")
    after = time.time_ns() // 1000
    stamps = [r.timestamp_us for r in sink]
    assert before <= stamps[0] and stamps[-1] <= after
    assert stamps == sorted(stamps)


def test_records_through_a_real_engine_keep_message_source_and_metadata(engine, run):
    """A plugin's logger calls are persisted as emitted: default source plugin, with_source, metadata, seq from 1."""

    def plugin(params, context):
        context.logger.info("rows: %d", 5, table="users", msg="m")
        context.logger.with_source("api").warning("slow", ms=412.5)
        context.logger.debug("hidden at INFO")

    task = run(plugin)
    assert task.status == "SUCCESS"
    engine.flush()
    logs = [r for r in task.logs() if r.source != "system"]
    assert [(r.level, r.source, r.message, r.metadata) for r in logs] == [
        ("INFO", "plugin", "rows: 5", {"table": "users", "msg": "m"}),
        ("WARNING", "api", "slow", {"ms": 412.5}),
    ]
    all_seqs = [r.seq for r in task.logs()]
    assert all_seqs == list(range(1, len(all_seqs) + 1))
    assert json.loads(engine.sql(f"select count(*) as n from task_logs where task_id = '{task.id}'").to_json(orient="records"))[0]["n"] == len(all_seqs)


def test_the_sink_gets_plain_tuples_and_live_readers_get_records():
    """The sink receives each record's fields as a plain tuple (what the buffer queues); subscribers get the LogRecord."""

    class Reader:
        def __init__(self) -> None:
            self.got: list[LogRecord] = []

        def offer(self, record: LogRecord) -> None:
            self.got.append(record)

    rows: list[tuple] = []
    emitter = TaskEmitter("t1", rows.append, min_level=Level.DEBUG)
    logger = TaskLogger(emitter)
    logger.info("before anyone reads")
    reader = Reader()
    emitter.subscribers = [reader]  # the engine hands over its live list after construction
    logger.warning("read live %d", 1, k="v")
    assert [type(r) for r in rows] == [tuple, tuple]
    assert [LogRecord._make(r).message for r in rows] == ["before anyone reads", "read live 1"]
    assert len(reader.got) == 1 and isinstance(reader.got[0], LogRecord)
    assert tuple(reader.got[0]) == rows[1] and reader.got[0].metadata == {"k": "v"}
    emitter.subscribers.remove(reader)  # the engine unsubscribes by mutating the same list
    logger.info("after")
    assert len(reader.got) == 1 and emitter.last_seq == 3
