"""Hostile input through the Python API: a logging call never raises, a record is stored (repaired with a
marker where the store cannot hold it as given), and nothing else stops: later tasks, flushes and reads."""

from __future__ import annotations

import json
import logging
import math
import threading

import pytest
from conftest import TIMEOUT
from procs import make_engine  # noqa: F401  (fixture)

from nbtasklog.levels import Level
from nbtasklog.logger import TaskEmitter, TaskLogger
from nbtasklog.record import MAX_METADATA_DEPTH, REPLACEMENT, LogRecord, metadata_to_json


def make_logger(max_message_bytes: int = 1024 * 1024):
    sink: list[LogRecord] = []
    emitter = TaskEmitter("t1", lambda row: sink.append(LogRecord._make(row)), min_level=Level.DEBUG,
                          max_message_bytes=max_message_bytes)
    return TaskLogger(emitter), sink


def utf8(text: str) -> bytes:
    """Raises UnicodeEncodeError for text no store, socket or file can hold (lone surrogates)."""
    return text.encode("utf-8")


class RaisingStr(Exception):
    """An exception whose __str__ raises: a custom error class whose __init__ forgot to set what __str__ reads."""

    def __str__(self) -> str:
        return self.missing  # type: ignore[attr-defined]  # AttributeError


class RaisingRepr:
    def __repr__(self) -> str:
        raise ValueError("no repr")

    __str__ = __repr__


def nested(depth: int) -> dict:
    root: dict = {}
    node = root
    for _ in range(depth - 1):
        node["a"] = {}
        node = node["a"]
    return root


def depth_of(value: object) -> int:
    depth = 0
    while isinstance(value, (dict, list)) and value:
        value = next(iter(value.values())) if isinstance(value, dict) else value[0]
        depth += 1
    return depth


# ---- the emitter: text no store can hold is repaired where the record is made ----------------------
def test_lone_surrogates_are_replaced_with_a_marker_in_message_metadata_and_source():
    """A lone surrogate (os.fsdecode of a non-UTF-8 name) becomes U+FFFD in the record itself, so every face
    (live readers, unflushed reads, the store) holds the same valid text."""
    logger, sink = make_logger()
    logger.with_source("disk\udcff").info("file \udc80name", path="a\ud800b", **{"k\udfff": 1})
    record = sink[0]
    assert record.message == f"file {REPLACEMENT}name"
    assert record.source == f"disk{REPLACEMENT}"
    assert record.metadata == {"path": f"a{REPLACEMENT}b", f"k{REPLACEMENT}": 1}
    for text in (record.message, record.source, record.metadata_json):
        utf8(text)


@pytest.mark.parametrize("depth", [50, 980, 995, 10_000])
def test_deep_metadata_never_raises_and_is_cut_at_a_depth_every_reader_can_parse(depth):
    """Nesting past MAX_METADATA_DEPTH ends in a marker string; the text parses anywhere (json.loads has a
    recursion limit near 1,000, which made the whole task's log unreadable)."""
    logger, sink = make_logger()
    logger.info("deep", value=nested(depth))
    loaded = sink[0].metadata  # parses
    assert depth_of(loaded) <= MAX_METADATA_DEPTH + 1
    if depth > MAX_METADATA_DEPTH:
        node = loaded
        while isinstance(node, dict):
            node = node.get("value", node.get("a"))
        assert "nested deeper than" in node


def test_values_and_messages_whose_repr_and_str_raise_never_make_the_call_raise():
    """An object whose repr and str both raise, as a message, an arg or a metadata value, leaves a placeholder."""
    logger, sink = make_logger()
    logger.info(RaisingRepr())
    logger.info("%s", RaisingRepr())
    logger.info("value", obj=RaisingRepr(), items=[RaisingRepr()])
    logger.info("key", k={1: RaisingRepr()}, j={RaisingRepr(): 1})
    assert len(sink) == 4
    assert "RaisingRepr" in sink[0].message
    assert "RaisingRepr" in sink[1].metadata["format_args"][0]
    assert "RaisingRepr" in sink[2].metadata["obj"] and "RaisingRepr" in sink[2].metadata["items"][0]
    assert "RaisingRepr" in sink[3].metadata["k"]["1"]
    assert any("RaisingRepr" in key for key in sink[3].metadata["j"])


def test_odd_keys_nan_huge_ints_and_cycles_give_strict_json_with_the_same_key_spelling_as_json():
    """Non-string keys are spelled as json spells them (true, 1, 1.5) whichever path serialized them;
    NaN and infinities become strings; integers of any size keep every digit."""
    cyclic: list = []
    cyclic.append(cyclic)
    plain = json.loads(metadata_to_json({True: 1, None: 2, 3: 3, 1.5: 4}))
    odd = json.loads(metadata_to_json({True: 1, None: 2, 3: 3, 1.5: 4, (1, 2): 5, "nan": math.nan, "big": 2**200,
                                       "cycle": cyclic}))
    assert plain == {"true": 1, "null": 2, "3": 3, "1.5": 4}
    assert {k: odd[k] for k in plain} == plain
    assert odd["(1, 2)"] == 5 and odd["nan"] == "nan" and odd["big"] == 2**200


def test_huge_metadata_is_cut_to_the_limit_with_a_marker_and_its_original_size():
    """Metadata is capped like messages: values that do not fit are cut (strings keep their start) with a
    marker, small keys stay filterable, and the original size is recorded."""
    logger, sink = make_logger(max_message_bytes=10_000)
    logger.info("big", small=7, blob="x" * 10_000_000, after="kept?")
    record = sink[0]
    assert len(record.metadata_json.encode()) <= 10_000
    meta = record.metadata
    assert meta["small"] == 7
    assert meta["blob"].startswith("xxxx") and "[value cut: 10000002 bytes" in meta["blob"]
    assert meta["metadata_original_bytes"] > 10_000_000
    assert "after" in meta


def test_nested_huge_metadata_keeps_its_shape():
    """A big value inside an object is cut inside it: the object stays an object, its small keys stay."""
    logger, sink = make_logger(max_message_bytes=10_000)
    logger.info("nested", value={"blob": "x" * 1_000_000, "small": 1}, items=[1, "y" * 100_000, 3])
    meta = sink[0].metadata
    assert len(sink[0].metadata_json.encode()) <= 10_000
    assert meta["value"]["blob"].startswith("xxx") and "[value cut: 1000002 bytes]" in meta["value"]["blob"]
    assert meta["value"]["small"] == 1 or meta["metadata_dropped"] >= 1


def test_many_small_keys_past_the_limit_keep_the_first_ones_and_count_the_rest():
    logger, sink = make_logger(max_message_bytes=2_000)
    logger.info("wide", **{f"k{i}": i for i in range(5_000)})
    meta = sink[0].metadata
    assert len(sink[0].metadata_json.encode()) <= 2_000
    assert meta["k0"] == 0
    assert meta["metadata_dropped"] > 4_000
    assert meta["metadata_original_bytes"] > 2_000


def test_exception_and_exc_info_with_an_exception_whose_str_raises():
    """logger.exception, exc_info=e and stdlib logging.exception record the error; its text is a placeholder."""
    logger, sink = make_logger()
    try:
        raise RaisingStr()
    except RaisingStr as error:
        logger.exception("failed")
        logger.error("failed again", exc_info=error)
        logger.error("tuple", exc_info=(1, 2))  # not an exc_info tuple: kept as text, no IndexError
    assert [r.level for r in sink] == ["ERROR"] * 3
    for record in sink[:2]:
        meta = record.metadata
        assert meta["exc_type"] == "RaisingStr"
        assert "str() failed" in meta["exc_message"]
        assert "RaisingStr" in meta["traceback"]
    assert "exc_info" in sink[2].metadata


# ---- through an engine: nothing else stops ------------------------------------------------------------
def test_a_lone_surrogate_in_params_progress_and_error_does_not_stop_persistence(make_engine, db_path):
    """The task row is stored repaired, the task fails with its error, and later tasks store every record;
    the plugin itself got its params as given."""
    from procs import read_db

    engine = make_engine()
    seen: list[str] = []

    def hostile(params, context):
        seen.append(params["name"])
        context.progress(0.5, "reading \udc80")
        raise ValueError("bad name \udc80")

    def fine(params, context):
        for i in range(100):
            context.logger.info("record %d", i)

    bad = engine.run_task(hostile, {"name": "a\ud800b"})
    assert bad.wait(TIMEOUT) == "FAILED"
    good = engine.run_task(fine)
    assert good.wait(TIMEOUT) == "SUCCESS"
    assert seen == ["a\ud800b"]
    assert engine.flush()
    assert engine.health().database_available
    info = bad.info()
    assert info["params"] == {"name": f"a{REPLACEMENT}b"}
    assert info["error"] == f"ValueError: bad name {REPLACEMENT}"
    assert info["progress_message"] == f"reading {REPLACEMENT}"
    assert len(good.logs()) == 102
    assert [t.id for t in engine.tasks(status="FAILED")] == [bad.id]
    engine.close()
    rows = read_db(db_path, "select params, error, progress_message from tasks where id = ?", [bad.id])
    assert json.loads(rows[0][0]) == {"name": f"a{REPLACEMENT}b"}
    assert rows[0][1:] == (f"ValueError: bad name {REPLACEMENT}", f"reading {REPLACEMENT}")
    assert read_db(db_path, "select count(*) from task_logs where task_id = ?", [good.id]) == [(102,)]
    spill_root = db_path.parent / (db_path.name + ".spill")
    assert not [p for p in spill_root.glob("**/*") if p.is_file() and p.name != "lock"]  # nothing was left to spill


def test_a_lone_surrogate_in_a_message_reads_the_same_before_and_after_the_flush(make_engine):
    """Unflushed reads, live readers and the store give the same repaired record."""
    engine = make_engine(flush_interval=3600, flush_size=10**9)
    release = threading.Event()

    def plugin(params, context):
        context.logger.info("name \udc80", path="\ud800")
        release.wait(TIMEOUT)

    task = engine.run_task(plugin)
    follower = task.follow(search="name")
    live = next(follower)
    before = task.logs(search="name")
    release.set()
    task.wait(TIMEOUT)
    follower.close()
    assert engine.flush()
    after = task.logs(search="name")
    assert [r.message for r in before] == [r.message for r in after] == [live.message] == [f"name {REPLACEMENT}"]
    assert before[0].metadata == after[0].metadata == {"path": REPLACEMENT}
    assert task.logs(search="name \udc80") == after  # a filter with the same bad text finds it


def test_a_plugin_exception_whose_str_raises_fails_the_task_and_frees_the_worker(make_engine):
    """The worker survives: the task is FAILED, wait() returns and the next task runs on the same worker."""
    engine = make_engine(max_workers=1)

    def broken(params, context):
        raise RaisingStr()

    task = engine.run_task(broken)
    assert task.wait(TIMEOUT) == "FAILED"
    assert task.error.startswith("RaisingStr: <") and "str() failed" in task.error
    after = engine.run_task(lambda params, context: "ok")
    assert after.wait(TIMEOUT) == "SUCCESS"
    failed = [r for r in task.logs(level="ERROR") if r.source == "system"]
    assert failed and failed[0].metadata["exc_type"] == "RaisingStr"


def test_stdlib_logging_exception_inside_a_task_with_a_raising_str(make_engine, open_root_logger):
    engine = make_engine()

    def plugin(params, context):
        try:
            raise RaisingStr()
        except RaisingStr:
            logging.getLogger("lib").exception("lib failed")
        return "went on"

    task = engine.run_task(plugin)
    assert task.wait(TIMEOUT) == "SUCCESS"
    record = task.logs(source="lib")[0]
    assert record.level == "ERROR" and record.metadata["exc_type"] == "RaisingStr"


def test_source_names_cannot_hold_the_filter_separator():
    """A comma separates sources in every filter face, so a source name cannot hold one."""
    logger, _ = make_logger()
    with pytest.raises(ValueError, match="comma"):
        logger.with_source("a,b")


def test_ints_python_cannot_write_as_text_never_make_the_call_raise():
    """Past 4,300 digits Python's int refuses str() and json: as a value or a key, the call still logs."""
    logger, sink = make_logger()
    logger.info("huge", n=10**5000, keys={10**5000: 1}, items=[math.nan, 10**5000])
    logger.info("%d", 10**5000)
    meta = sink[0].metadata
    assert meta["n"].startswith("<int of ") and meta["items"][1].startswith("<int of ")
    assert len(sink) == 2 and "format_error" in sink[1].metadata


def test_cut_metadata_counts_escaped_keys():
    """Keys that JSON escapes (control characters take six bytes each) still fit the limit."""
    logger, sink = make_logger(max_message_bytes=1_000)
    logger.info("escaped", **{"\x01" * 60 + str(i): "v" * 30 for i in range(40)})
    assert len(sink[0].metadata_json.encode()) <= 1_000
