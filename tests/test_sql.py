"""Analyst SQL through the Python API on a real DuckDB file: every column and every type DuckDB has comes back,
exact, as a pyarrow Table and as a DataFrame; and a long query never holds up logging, flushes or reads, with its
time limit bounding the whole call."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from conftest import TIMEOUT
from procs import poll

import nbtasklog
from nbtasklog.store.store import SQL_CONCURRENCY, SQLError

EVERY_TYPE = "SELECT * FROM test_all_types()"  # DuckDB's own edge values of every type (min, max, NULL rows)
# Never finishes in time: a cross join too big to count, so its time limit always stops it.
LONG = "SELECT count(*) FROM range(1000000000) a, range(1000000) b WHERE a.range * b.range = 7"


def test_repeated_column_names_are_all_kept(engine):
    """SELECT 1 AS a, 2 AS a has two columns, in order, in the Table and in the DataFrame."""
    table = engine.sql("SELECT 1 AS a, 2 AS a, 3 AS b", arrow=True)
    assert table.column_names == ["a", "a", "b"] and [c.to_pylist() for c in table.columns] == [[1], [2], [3]]
    frame = engine.sql("SELECT 1 AS a, 2 AS a, 3 AS b")
    assert list(frame.columns) == ["a", "a", "b"] and frame.values.tolist() == [[1, 2, 3]]


def test_every_duckdb_type_comes_back_as_arrow_and_pandas(engine):
    """test_all_types(): no error in either form; what Arrow's types hold stays typed, what DuckDB's Arrow export
    would garble (UHUGEINT, TIME WITH TIME ZONE, BIT, BIGNUM) comes as DuckDB's text of it."""
    table = engine.sql(EVERY_TYPE, arrow=True)
    frame = engine.sql(EVERY_TYPE)
    assert table.num_rows == 3 and list(frame.columns) == table.column_names

    def value(name: str, row: int) -> Any:
        return table.column(name)[row].as_py()

    assert (value("hugeint", 0), value("hugeint", 1)) == (-(2**127), 2**127 - 1)
    assert value("uhugeint", 1) == str(2**128 - 1)  # the Arrow export alone wraps it to -1
    assert value("time_tz", 1) == "24:00:00-15:59:59" and value("bit", 1) == "10101"
    assert int(value("bignum", 1)) == -int(value("bignum", 0)) > 10**300
    assert value("dec38_10", 1) == Decimal("9999999999999999999999999999.9999999999") and value("ubigint", 1) == 2**64 - 1
    assert table.schema.field("timestamp_tz").type == pa.timestamp("us", tz="Etc/UTC")  # typed, not text
    assert frame["hugeint"].tolist()[:2] == [Decimal(-(2**127)), Decimal(2**127 - 1)]
    assert frame["date"].tolist()[1] == "5881580-07-10"  # past what pandas holds: the date as text
    assert frame["time"].tolist()[1] == "24:00:00"
    assert frame["union"].tolist()[:2] == ["Frank", 5]


def test_types_arrow_would_garble_come_as_text_also_inside_lists_structs_and_maps(engine):
    """The cast reaches into nested types, keeps the rest typed and keeps odd field names."""
    table = engine.sql("SELECT [TIMETZ '12:00:00+02'] AS l, {'a \"b': 340282366920938463463374607431768211455::UHUGEINT, "
                       "'n': 2} AS s, MAP {1: '101'::BIT} AS m, 1 AS l", arrow=True)
    assert table.column_names == ["l", "s", "m", "l"]
    assert [c.to_pylist() for c in table.columns] == [
        [["12:00:00+02"]], [{"a \"b": str(2**128 - 1), "n": 2}], [[(1, "101")]], [1]]


def test_special_floats_and_exact_numbers_keep_their_value(engine):
    """NaN and the infinities stay floats; HUGEINT, DECIMAL and UBIGINT keep every digit."""
    table = engine.sql("SELECT 'NaN'::DOUBLE n, 'inf'::DOUBLE i, 170141183460469231731687303715884105727::HUGEINT h, "
                       "12345678901234567890.123456789::DECIMAL(38, 9) d, 18446744073709551615::UBIGINT u", arrow=True)
    n, i, h, d, u = (c[0].as_py() for c in table.columns)
    assert n != n and i == float("inf")
    assert (h, d, u) == (2**127 - 1, Decimal("12345678901234567890.123456789"), 2**64 - 1)


# ---- concurrency ----------------------------------------------------------------------------------------
def chatty(stop: threading.Event) -> Any:
    """A plugin that logs a record a millisecond until `stop` is set."""
    def run(params: dict[str, Any], context: Any) -> None:
        i = 0
        while not stop.is_set():
            context.logger.info("record %d", i)
            i += 1
            time.sleep(0.001)

    return run


def test_a_long_query_holds_up_no_logging_flush_or_read(engine):
    """While a query runs for seconds, a task keeps logging, the flusher keeps writing and logs() keeps answering
    with the newest records; the query then ends at its time limit."""
    stop = threading.Event()
    task = engine.run_task(chatty(stop))
    try:
        poll(lambda: engine.health().flushed_total > 0, TIMEOUT, "the first records written")
        outcome: dict[str, Any] = {}
        analyst = threading.Thread(target=_run_sql, args=(engine, LONG, 4.0, outcome))
        analyst.start()
        reads, newest, flushed = 0, [], []
        while analyst.is_alive():
            last = task.logs(order="desc", limit=1)[0].seq
            if analyst.is_alive():  # this read returned while the query still ran
                reads += 1
                newest.append(last)
                flushed.append(engine.health().flushed_total)
        analyst.join()
    finally:
        stop.set()
        task.wait(TIMEOUT)
    assert "time limit" in outcome["error"]
    assert reads >= 5, f"only {reads} logs() calls returned while the query ran"
    assert newest[-1] > newest[0] and flushed[-1] > flushed[0]  # new records, read and written, meanwhile


def test_the_time_limit_bounds_the_whole_call(engine):
    """A reader holding the write buffer's lock (or a slow flush) does not make sql() wait past its time limit:
    it waits for the lock at most half of it, then queries what the database has."""
    held, release = threading.Event(), threading.Event()

    def hold_the_buffer() -> None:
        with engine.buffer.reading():
            held.set()
            release.wait(TIMEOUT)

    holder = threading.Thread(target=hold_the_buffer)
    holder.start()
    try:
        assert held.wait(TIMEOUT)
        outcome: dict[str, Any] = {}
        analyst = threading.Thread(target=_run_sql, args=(engine, "SELECT 42 AS answer", 1.0, outcome))
        analyst.start()
        analyst.join(TIMEOUT)
        assert not analyst.is_alive() and holder.is_alive()  # it returned while the lock was still held
        assert outcome["rows"] == [{"answer": 42}]
    finally:
        release.set()
        holder.join()


def test_queries_past_the_concurrency_limit_wait_within_their_time_limit_then_are_refused(engine):
    """With every analyst slot taken by a long query, another waits at most its own time limit and is refused
    saying why; the long ones end at theirs."""
    outcomes = [{} for _ in range(SQL_CONCURRENCY)]
    longs = [threading.Thread(target=_run_sql, args=(engine, LONG, 4.0, outcome)) for outcome in outcomes]
    for thread in longs:
        thread.start()
    busy = None
    while busy is None and any(t.is_alive() for t in longs):
        try:
            engine.sql("SELECT 1", timeout=0.2)
        except SQLError as error:
            busy = str(error)
    for thread in longs:
        thread.join()
    assert busy is not None and f"{SQL_CONCURRENCY} analyst queries are running" in busy
    assert all("time limit" in outcome["error"] for outcome in outcomes)
    assert engine.sql("SELECT 1 AS x")["x"].tolist() == [1]  # the slots are free again


def _run_sql(engine: nbtasklog.Engine, query: str, timeout: float, outcome: dict[str, Any]) -> None:
    try:
        outcome["rows"] = engine.sql(query, arrow=True, timeout=timeout).to_pylist()
    except SQLError as error:
        outcome["error"] = str(error)


def test_dataframe_of_an_empty_result_keeps_its_columns(engine):
    """No rows: a DataFrame with the query's columns, repeated ones included."""
    frame = engine.sql("SELECT 1 AS a, 2 AS a WHERE false")
    assert isinstance(frame, pd.DataFrame) and list(frame.columns) == ["a", "a"] and len(frame) == 0


@pytest.mark.parametrize("query", ["SELECT 'infinity'::DATE AS d", "SELECT TIME '24:00:00' AS t"])
def test_values_pandas_cannot_hold_come_back_as_text(engine, query):
    """A DATE past year 9999 or infinite, TIME 24:00:00: the DataFrame column holds DuckDB's text of it."""
    (value,) = engine.sql(query).iloc[0].tolist()
    assert value in ("infinity", "24:00:00")
