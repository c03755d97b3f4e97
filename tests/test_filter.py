"""LogFilter and make_filter: parsing with clear errors, the in-memory predicate, keyset paging."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from nbtasklog.filter import (
    FilterError,
    LogFilter,
    MetaCondition,
    fold_case,
    from_params,
    json_scalar_text,
    make_filter,
)
from nbtasklog.levels import Level
from nbtasklog.record import LogRecord, datetime_to_us, metadata_to_json

T0 = 1_714_564_800_000_000  # 2024-05-01T12:00:00Z in microseconds


def rec(seq: int, level: str = "INFO", source: str = "plugin", message: str = "m", meta: dict | None = None,
        ts: int | None = None) -> LogRecord:
    return LogRecord("t", seq, T0 + seq if ts is None else ts, level, source, message,
                     None if meta is None else metadata_to_json(meta))


# ---- make_filter: parsing ------------------------------------------------------------------------
def test_make_filter_defaults_let_everything_through_in_seq_order():
    """Without arguments: every level, every source, no search, ascending, no limit."""
    flt = make_filter()
    assert flt == LogFilter()
    assert (flt.min_level, flt.sources, flt.search, flt.meta, flt.order, flt.limit) == (Level.DEBUG, None, None, (), "asc", None)


def test_make_filter_parses_each_argument():
    """Level names any case, comma-separated sources, meta in both forms, numbers as text, ISO times."""
    flt = make_filter(level="warning", source="plugin, superset_api,", search="Slow", meta=["a.b=1", "flag"],
                      after="3", before=10, since="2024-05-01T12:00:00+00:00", until=datetime(2024, 5, 2),
                      order="desc", limit="50")
    assert flt.min_level is Level.WARNING
    assert flt.sources == frozenset({"plugin", "superset_api"})
    assert flt.search == "Slow"
    assert flt.meta == (MetaCondition(("a", "b"), "1"), MetaCondition(("flag",), None))
    assert (flt.after_seq, flt.before_seq, flt.limit, flt.order) == (3, 10, 50, "desc")
    assert flt.since_us == T0
    assert flt.until_us == datetime_to_us(datetime(2024, 5, 2).astimezone())  # naive: local time, as in Python


def test_make_filter_meta_mapping_values_become_comparison_text():
    """Mapping values compare as the text JSON extraction gives: numbers, booleans; None means 'exists'."""
    flt = make_filter(meta={"dashboard_id": 10, "ok": True, "ms": 1e16, "name": "x", "present": None})
    assert [(c.key, c.value) for c in flt.meta] == [  # in key order: the order they were given means nothing
        ("dashboard_id", "10"), ("ms", "10000000000000000.0"), ("name", "x"), ("ok", "true"), ("present", None),
    ]


def test_make_filter_errors_only_and_iterable_sources():
    """errors_only means level ERROR whatever level says; sources may be any iterable of names."""
    flt = make_filter(level="debug", errors_only=True, source=("a", "b"))
    assert flt.min_level is Level.ERROR
    assert flt.sources == frozenset({"a", "b"})


def test_empty_strings_mean_not_given():
    """Empty level, search, after and limit (as from an empty form field) are ignored."""
    assert make_filter(level="", search="", after="", limit="") == LogFilter()


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"level": "loud"}, "unknown log level 'loud'"),
    ({"level": "loud"}, "DEBUG, INFO, WARNING, ERROR"),
    ({"meta": {"a b": 1}}, "bad metadata key 'a b'"),
    ({"meta": ["a..b=1"]}, "bad metadata key 'a..b'"),
    ({"meta": {"$.a": 1}}, "use letters, digits, '_' or '-'"),
    ({"meta": {"a\n.b": 1}}, "bad metadata key 'a\\n.b'"),  # a key must be all letters etc., a newline included
    ({"meta": {"a": {"b": 1}}}, "not dict"),
    ({"meta": [3]}, "metadata condition must be 'key=value' or 'key'"),
    ({"after": -1}, "after must be at least 0, not -1"),
    ({"after": "x"}, "after must be a whole number, not 'x'"),
    ({"after": 1.5}, "after must be a whole number"),
    ({"before": 0}, "before must be at least 1, not 0"),
    ({"limit": 0}, "limit must be between 1 and 100000, not 0"),
    ({"limit": 100_001}, "limit must be between 1 and 100000, not 100001"),
    ({"order": "newest"}, "order must be 'asc' or 'desc', not 'newest'"),
    ({"source": ""}, "source is empty"),
    ({"source": " , "}, "source is empty"),
    ({"source": []}, "source is empty"),
    ({"source": [1]}, "source must be a name or a list of names"),
    ({"search": 5}, "search must be text, not int"),
    ({"since": "yesterday"}, "since must be an ISO 8601 time, not 'yesterday'"),
    ({"until": 1.5}, "until must be a datetime or ISO 8601 text"),
])
def test_make_filter_errors_say_which_part_and_why(kwargs, fragment):
    """Every bad argument raises FilterError (a ValueError) whose message names the argument and the problem."""
    with pytest.raises(FilterError) as info:
        make_filter(**kwargs)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_json_paths_written_into_sql_check_their_keys_too():
    """The SQL functions take only [A-Za-z0-9_-]+ keys, even when given a path without make_filter."""
    from nbtasklog.store.schema import json_exists, json_text, task_logs

    for path in (("a'",), ("a\n",), ("a", "b}"), ()):
        for function in (json_text, json_exists):
            with pytest.raises(ValueError, match="bad metadata key path"):
                function(task_logs.c.metadata, path)


# ---- matches ------------------------------------------------------------------------------------
def test_matches_level_is_that_level_and_above():
    """min_level WARNING keeps WARNING and ERROR and drops DEBUG and INFO."""
    flt = make_filter(level="WARNING")
    assert [flt.matches(rec(1, level)) for level in ("DEBUG", "INFO", "WARNING", "ERROR")] == [False, False, True, True]


def test_matches_sources_exactly():
    """Only records whose source is one of the names pass (exact, case-sensitive)."""
    flt = make_filter(source="superset_api")
    assert flt.matches(rec(1, source="superset_api"))
    assert not flt.matches(rec(1, source="plugin"))
    assert not flt.matches(rec(1, source="Superset_API"))


def test_matches_search_is_a_case_insensitive_substring():
    """search matches anywhere in the message ignoring case, unicode letters included; never the metadata."""
    flt = make_filter(search="GrüßE")
    assert flt.matches(rec(1, message="viele grüße aus Zürich"))
    assert not flt.matches(rec(1, message="gruesse", meta={"text": "grüße"}))
    assert make_filter(search="100%").matches(rec(1, message="done: 100% of rows"))
    assert not make_filter(search="a_c").matches(rec(1, message="abc"))  # no LIKE wildcards


def test_case_folding_is_the_one_sql_lower_uses():
    """fold_case maps each code point alone, as SQL lower() does: İ -> i, a final Σ -> σ (str.lower gives i̇ and ς)."""
    assert fold_case("İSTANBUL") == "istanbul"
    assert fold_case("ΟΔΟΣ") == "οδοσ"
    assert fold_case("MiXeD") == "mixed"
    assert make_filter(search="σ").matches(rec(1, message="ΟΔΟΣ"))
    assert make_filter(search="ist").matches(rec(1, message="İstanbul"))


def test_matches_seq_and_time_ranges_are_exclusive_then_inclusive():
    """after/before exclude their seq; since includes its time, until excludes it."""
    flt = make_filter(after=2, before=5)
    assert [s for s in range(1, 7) if flt.matches(rec(s))] == [3, 4]
    window = make_filter(since=T0 + 2, until=T0 + 4)
    assert [s for s in range(1, 7) if window.matches(rec(s))] == [2, 3]


def test_matches_metadata_equality_and_existence_on_nested_paths():
    """meta a.b=v compares the nested value as text; a bare key needs it present (null counts); records without metadata fail."""
    record = rec(1, meta={"dashboard_id": 10, "api": {"status": 502, "ok": False, "none": None}, "name": "x"})
    assert make_filter(meta={"dashboard_id": 10}).matches(record)
    assert make_filter(meta=["dashboard_id=10"]).matches(record)
    assert not make_filter(meta={"dashboard_id": 11}).matches(record)
    assert make_filter(meta={"api.status": "502", "api.ok": False}).matches(record)
    assert make_filter(meta=["api.none"]).matches(record)
    assert not make_filter(meta={"api.none": "null"}).matches(record)  # JSON null never equals a value
    assert not make_filter(meta=["api.missing"]).matches(record)
    assert not make_filter(meta=["name.deeper"]).matches(record)
    assert not make_filter(meta=["api"]).matches(rec(2))
    assert not make_filter(meta=["dashboard_id=10", "name=y"]).matches(record)  # all conditions must hold


def test_objects_and_arrays_never_equal_a_value_but_exist():
    """A path holding an object or array exists, yet equals no value (their text form differs between databases)."""
    record = rec(1, meta={"tags": [1, 2], "api": {"a": 1}})
    assert make_filter(meta=["tags", "api"]).matches(record)
    assert not make_filter(meta=["tags=[1,2]"]).matches(record)
    assert not make_filter(meta=['api={"a":1}']).matches(record)


def test_json_scalar_text_renders_like_duckdb_json_extraction():
    """Strings raw, ints and bools as JSON, floats the way DuckDB's JSON functions print them."""
    assert [json_scalar_text(v) for v in ("x", 5, True, 0.5, 1.0, 1e16, 1e21, 1e-7, 2.5e-5, -0.0, 1.5e300)] == [
        "x", "5", "true", "0.5", "1.0", "10000000000000000.0", "1e21", "1e-7", "0.000025", "-0.0", "1.5e300",
    ]


# ---- apply and paging ---------------------------------------------------------------------------
def test_apply_orders_by_seq_and_cuts_to_the_limit():
    """apply filters, sorts by seq in the filter's order (whatever the input order) and keeps `limit`."""
    records = [rec(s, level) for s, level in [(5, "INFO"), (1, "ERROR"), (3, "DEBUG"), (2, "INFO"), (4, "INFO")]]
    assert [r.seq for r in make_filter(level="INFO").apply(records)] == [1, 2, 4, 5]
    assert [r.seq for r in make_filter(level="INFO", order="desc", limit=2).apply(records)] == [5, 4]


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_next_page_walks_the_log_exactly_once(order):
    """Repeated next_page over pages of 3 visits every matching record once, in order, then an empty page."""
    records = [rec(s, "DEBUG" if s % 4 == 0 else "INFO") for s in range(1, 15)]
    flt = make_filter(level="INFO", order=order, limit=3)
    seen: list[int] = []
    pages = 0
    while True:
        page = flt.apply(records)
        if not page:
            break
        pages += 1
        seen.extend(r.seq for r in page)
        flt = flt.next_page(page)
    expected = [s for s in range(1, 15) if s % 4]
    assert seen == (expected if order == "asc" else expected[::-1])
    assert pages == 4  # 11 records in pages of 3
    assert flt.next_page([]) is flt


def test_next_page_moves_the_right_bound_and_keeps_the_rest():
    """Ascending pages move after_seq, descending ones before_seq; other conditions stay."""
    asc = make_filter(source="a", limit=2).next_page([rec(3), rec(7)])
    desc = make_filter(source="a", order="desc", limit=2).next_page([rec(7), rec(3)])
    assert (asc.after_seq, asc.before_seq, asc.sources, asc.limit) == (7, None, frozenset({"a"}), 2)
    assert (desc.after_seq, desc.before_seq, desc.sources, desc.limit) == (None, 3, frozenset({"a"}), 2)


def test_to_params_is_the_query_string_form():
    """to_params gives the REST query parameters of a filter and leaves out the defaults."""
    flt = make_filter(level="warning", source=["b", "a"], search="x", meta={"a.b": 1, "c": None, "d": "", "e": None},
                      after=4, limit=9, order="desc", since=datetime(2024, 5, 1, 12, tzinfo=timezone.utc))
    assert flt.to_params() == {"level": "WARNING", "source": "a,b", "search": "x", "meta.a.b": "1", "meta.d": "",
                               "has": "c,e", "after": "4", "limit": "9", "order": "desc",
                               "since": "2024-05-01T12:00:00+00:00"}
    assert make_filter().to_params() == {}


def test_from_params_reads_back_what_to_params_wrote_and_one_meaning_everywhere():
    """The empty value compares with the empty string in every face; 'exists' is `has`; times need an offset."""
    flt = make_filter(meta={"k": ""}, until=datetime(2024, 5, 2, 0, 0, 0, 7, tzinfo=timezone.utc))
    params = flt.to_params()
    assert params == {"meta.k": "", "until": "2024-05-02T00:00:00.000007+00:00"}
    assert from_params({k: [v] for k, v in params.items()}) == flt
    assert from_params({"has": ["k"]}) == make_filter(meta={"k": None}) == make_filter(meta=["k"])
    assert from_params({"meta.k": [""]}) == make_filter(meta=["k="])
    assert from_params({"source": ["a", "b,c"]}).sources == frozenset({"a", "b", "c"})
    both = make_filter(meta=["k=v", "k"])  # one key, two conditions
    assert from_params({k: [v] for k, v in both.to_params().items()}) == both
    with pytest.raises(FilterError, match="UTC offset"):
        from_params({"since": ["2024-05-01T12:00:00"]})
    with pytest.raises(FilterError, match="unknown query parameter 'colour'"):
        from_params({"colour": ["red"]})
