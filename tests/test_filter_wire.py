"""A filter's two text forms read back as the filter itself: the JSON wire (to_wire / from_wire: the
widget's and the log socket's filter messages) and the query string (to_params / from_params: REST and
WebSocket URLs), for every filter make_filter builds, hostile input included; and what from_wire refuses."""

from __future__ import annotations

import json
import string
import urllib.parse
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from nbtasklog.filter import MAX_LIMIT, MAX_SEQ, MAX_US, MIN_US, FilterError, LogFilter, from_params, make_filter
from nbtasklog.levels import LEVEL_NAMES, Level
from nbtasklog.record import us_to_datetime

CASES = json.loads((Path(__file__).parent / "filter_wire_cases.json").read_text(encoding="utf-8"))

# What text can hold that nobody expects: lone surrogates, NUL, controls, what str.strip() and JS trim()
# strip differently (\x1c-\x1f, \x85, \ufeff), the separators of both forms (",", "=", "."), astral characters.
ODD = "\ud800\udfff\x00\x01\x1b\x7f\x9b\x1c\x1f\x85\u2028\ufeff\u3000 \t\r\n,=.&?#%+😀\uff21İΣ"
chars = st.one_of(st.characters(exclude_categories=()), st.sampled_from(ODD))
texts = st.text(chars, max_size=12)
KEY_CHARS = string.ascii_letters + string.digits + "_-"
segments = st.text(st.sampled_from(KEY_CHARS), min_size=1, max_size=6)
padding = st.text(st.sampled_from(" \t\x1c\x1f\x85\u3000"), max_size=2)
keys = st.one_of(
    st.builds(lambda pad, parts, end: pad + ".".join(parts) + end, padding, st.lists(segments, min_size=1, max_size=4), padding),
    texts,  # mostly refused: a key is letters, digits, '_' or '-' with '.' between
)
scalars = st.one_of(
    st.none(), st.booleans(), texts, st.just(""),
    st.integers(), st.sampled_from([2**63, 2**200, -(2**100), 10**5000]),
    st.floats(), st.sampled_from([1e16, 1e21, 1e-7, -0.0, 5e-324]),
)
offsets = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-23 * 60 - 59, 23 * 60 + 59))
odd_offsets = st.builds(lambda seconds: timezone(timedelta(seconds=seconds)), st.integers(-86_399, 86_399))
naive_times = st.one_of(st.datetimes(), st.sampled_from([datetime.min, datetime.max, datetime(1970, 1, 1)]))
aware_times = st.one_of(
    st.datetimes(timezones=st.one_of(offsets, odd_offsets)),
    st.sampled_from([datetime.min.replace(tzinfo=timezone.utc), datetime.max.replace(tzinfo=timezone.utc)]),
)
times = st.one_of(
    st.none(), st.just(""), naive_times, aware_times,
    st.integers(MIN_US - 10, MAX_US + 10), st.sampled_from([MIN_US, MAX_US, 0, -1, 10**30]),
    st.builds(datetime.isoformat, aware_times), st.builds(datetime.isoformat, naive_times), texts,
)
seqs = st.one_of(
    st.none(), st.just(""), st.integers(0, 1000), st.integers(-2, 2**64),
    st.sampled_from([MAX_SEQ, MAX_SEQ + 1, 10**5000, True, 3.0, 1.5]), st.integers(0, 99).map(str),
)


@st.composite
def user_filters(draw: Any) -> LogFilter:
    """A filter as a user can build it through make_filter, from any mix of good and hostile arguments
    (those make_filter refuses are dropped: what it accepts must travel)."""
    kwargs: dict[str, Any] = {}
    if draw(st.booleans()):
        kwargs["level"] = draw(st.one_of(
            st.sampled_from(LEVEL_NAMES + ("warn", " Critical ", "fatal", "", "info\x1c")),
            st.sampled_from(list(Level)), st.sampled_from([10, 20, 30, 40, 50, 5]), texts,
        ))
    if draw(st.booleans()):
        kwargs["source"] = draw(st.one_of(texts, st.lists(texts, max_size=4), st.lists(st.sampled_from(["a", "b,c", " d "]), max_size=3)))
    if draw(st.booleans()):
        kwargs["search"] = draw(st.one_of(texts, st.none()))
    if draw(st.booleans()):
        as_texts = st.lists(st.one_of(keys, st.builds(lambda k, v: f"{k}={v}", keys, texts)), max_size=4)
        kwargs["meta"] = draw(st.one_of(st.dictionaries(keys, scalars, max_size=4), as_texts))  # None / a bare key: has=
    for name in ("after", "before"):
        if draw(st.booleans()):
            kwargs[name] = draw(seqs)
    for name in ("since", "until"):
        if draw(st.booleans()):
            kwargs[name] = draw(times)
    if draw(st.booleans()):
        kwargs["order"] = draw(st.sampled_from(["asc", "desc"]))
    if draw(st.booleans()):
        kwargs["limit"] = draw(st.one_of(st.integers(1, MAX_LIMIT), st.sampled_from([None, "", 0, MAX_LIMIT + 1, "7"])))
    if draw(st.booleans()):
        kwargs["errors_only"] = draw(st.booleans())
    try:
        return make_filter(**kwargs)
    except FilterError:
        reject()


PROPERTY = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


@PROPERTY
@given(flt=user_filters())
def test_the_wire_form_reads_back_as_the_same_filter(flt: LogFilter) -> None:
    """to_wire, as JSON text in UTF-8 (what a comm or a socket carries), then from_wire gives the filter back."""
    wire = flt.to_wire()
    text = json.dumps(wire, ensure_ascii=False, allow_nan=False)
    assert LogFilter.from_wire(json.loads(text.encode("utf-8").decode("utf-8"))) == flt
    assert LogFilter.from_wire(wire).to_wire() == wire
    assert None not in wire.values() and "" not in wire.values()  # what is not set is left out


@PROPERTY
@given(flt=user_filters())
def test_the_query_string_form_reads_back_as_the_same_filter_through_a_real_url(flt: LogFilter) -> None:
    """to_params, encoded in a URL and decoded as the server decodes it, then from_params gives the filter back."""
    from tornado.httputil import parse_qs_bytes

    from nbtasklog.server.rest import filter_from_query

    params = flt.to_params()
    assert from_params({name: [value] for name, value in params.items()}) == flt
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    arguments = parse_qs_bytes(query.encode("ascii"), keep_blank_values=True)
    assert filter_from_query(arguments, default_limit=None) == flt


@PROPERTY
@given(flt=user_filters())
def test_both_forms_of_a_filter_say_the_same(flt: LogFilter) -> None:
    """A filter sent as a message and as a URL is one filter on the other side."""
    params = {name: [value] for name, value in flt.to_params().items()}
    assert LogFilter.from_wire(flt.to_wire()) == from_params(params)


@pytest.mark.parametrize("case", CASES["cases"], ids=lambda case: json.dumps(case["spec"])[:60])
def test_the_shared_cases_write_what_the_viewer_writes(case: dict[str, Any]) -> None:
    """The cases js/test/protocol.test.ts runs too: both sides write the same message and query string."""
    flt = make_filter(**case["spec"])
    assert flt.to_wire() == case["wire"]
    assert flt.to_params() == case["params"]
    assert LogFilter.from_wire(case["wire"]) == flt
    assert from_params({name: [value] for name, value in case["params"].items()}) == flt


@pytest.mark.parametrize("case", CASES["refused"], ids=lambda case: json.dumps(case["spec"])[:60])
def test_the_shared_refusals_are_refused_with_the_same_words(case: dict[str, Any]) -> None:
    """What both make_filter twins refuse, with a part of the message both give."""
    with pytest.raises(FilterError) as info:
        make_filter(**case["spec"])
    assert case["error"] in str(info.value)


def test_the_wire_form_of_a_filter():
    """Defaults left out; sources a sorted list; metadata conditions as "KEY=VALUE" / "KEY"; times ISO in UTC."""
    flt = make_filter(level="warning", source=["b", "a"], search="x", meta={"a.b": 1, "c": None, "d": ""},
                      after=4, before=9, since=datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2))),
                      until=datetime(2024, 5, 1, 12, 0, 0, 7, tzinfo=timezone.utc), order="desc", limit=9)
    assert flt.to_wire() == {"level": "WARNING", "source": ["a", "b"], "search": "x", "meta": ["a.b=1", "c", "d="],
                             "after": 4, "before": 9, "limit": 9, "since": "2024-05-01T12:00:00+00:00",
                             "until": "2024-05-01T12:00:00.000007+00:00", "order": "desc"}
    assert make_filter().to_wire() == {}
    assert make_filter(errors_only=True).to_wire() == {"level": "ERROR"}


def test_from_wire_reads_what_the_viewers_have_always_sent():
    """The widget's filter (nulls for what is not set, errors_only false, meta as texts) and the socket's
    (meta as an object, after) read as make_filter reads the same arguments."""
    widget = {"level": "INFO", "source": None, "search": None, "meta": ["dashboard_id=12", "api"], "errors_only": False}
    assert LogFilter.from_wire(widget) == make_filter(level="INFO", meta=["dashboard_id=12", "api"])
    socket = {"level": None, "source": ["superset_api"], "search": "record 3 of", "meta": {"dashboard_id": 3, "api": None},
              "errors_only": True, "after": 5}
    assert LogFilter.from_wire(socket) == make_filter(source="superset_api", search="record 3 of", errors_only=True,
                                                      meta={"dashboard_id": 3, "api": None}, after=5)
    assert LogFilter.from_wire({}) == LogFilter()
    assert LogFilter.from_wire({"after": 3.0, "source": "a, b"}) == make_filter(after=3, source=["a", "b"])


@pytest.mark.parametrize(("message", "fragment"), [
    ([1, 2], "a filter must be an object of fields"),
    ("level=INFO", "a filter must be an object of fields"),
    ({"colour": "red", "level": "INFO"}, "unknown filter field(s) colour: use level, source"),
    ({"type": "filter"}, "unknown filter field(s) type"),
    ({"level": "loud"}, "unknown log level 'loud'"),
    ({"level": 20}, "level must be a level name (DEBUG, INFO, WARNING, ERROR), not 20"),
    ({"level": True}, "level must be a level name"),
    ({"source": 5}, "source must be a name or a list of names, not 5"),
    ({"source": {"a": 1}}, "source must be a name or a list of names"),
    ({"source": [1]}, "source must be a name or a list of names"),
    ({"source": ""}, "source is empty"),
    ({"search": 5}, "search must be text, not 5"),
    ({"search": ["x"]}, "search must be text"),
    ({"meta": "a=1"}, "meta must be a list of 'key=value' / 'key' texts or an object of key: value, not 'a=1'"),
    ({"meta": 3}, "meta must be a list"),
    ({"meta": [3]}, "metadata condition must be 'key=value' or 'key', not 3"),
    ({"meta": {"bad key": 1}}, "bad metadata key 'bad key'"),
    ({"meta": ["a.=1"]}, "bad metadata key 'a.'"),
    ({"meta": {"a": [1, 2]}}, "compare text, a number or true/false, not list"),
    ({"meta": {"a": {"b": 1}}}, "not dict"),
    ({"meta": ["k=a", "k=b"]}, "metadata key 'k' is compared with two values, 'a' and 'b'"),
    ({"after": "5"}, "after must be a whole number, not '5'"),
    ({"after": "x"}, "after must be a whole number, not 'x'"),
    ({"after": True}, "after must be a whole number, not True"),
    ({"after": 1.5}, "after must be a whole number, not 1.5"),
    ({"after": -1}, "after must be at least 0, not -1"),
    ({"after": 2**63}, "after must be between 0 and 9223372036854775807, not 9223372036854775808"),
    ({"before": 10**5000}, "before must be between 1 and 9223372036854775807, not (a number of 16610 bits)"),
    ({"before": 0}, "before must be at least 1, not 0"),
    ({"limit": 0}, "limit must be between 1 and 100000, not 0"),
    ({"limit": 100_001}, "limit must be between 1 and 100000, not 100001"),
    ({"limit": "10"}, "limit must be a whole number, not '10'"),
    ({"since": "yesterday"}, "since must be an ISO 8601 time, not 'yesterday'"),
    ({"since": "2024-05-01T12:00:00"}, "since needs a UTC offset (e.g. 2024-05-01T12:00:00+00:00"),
    ({"until": 1714564800000000}, "until must be ISO 8601 text with a UTC offset, not 1714564800000000"),
    ({"until": "\x00"}, "until must be an ISO 8601 time, not '\\x00'"),
    ({"since": "0001-01-01T00:00:00+00:01"}, "since must be a time between 0001-01-01 and 9999-12-31 in UTC"),
    ({"order": "newest"}, "order must be 'asc' or 'desc', not 'newest'"),
    ({"order": 1}, "order must be 'asc' or 'desc', not 1"),
    ({"errors_only": "false"}, "errors_only must be true or false, not 'false'"),
    ({"errors_only": 0}, "errors_only must be true or false, not 0"),
])
def test_from_wire_refuses_what_it_cannot_read_saying_which_field_and_why(message, fragment):
    """Every bad message raises FilterError (a ValueError), whose message names the field and the problem."""
    with pytest.raises(FilterError) as info:
        LogFilter.from_wire(message)
    assert fragment in str(info.value)
    assert len(str(info.value)) < 300


def test_times_past_what_a_datetime_holds_are_refused_not_a_crash_later():
    """A time the SQL face and both text forms could not write (an int, or an offset past year 1 or 9999)
    is a FilterError at once; the ends themselves travel."""
    for since in (MIN_US - 1, MAX_US + 1, 10**30, "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59.999999-00:01"):
        with pytest.raises(FilterError, match="between 0001-01-01 and 9999-12-31"):
            make_filter(since=since)
    ends = make_filter(since=MIN_US, until=MAX_US)
    assert (ends.since_us, ends.until_us) == (MIN_US, MAX_US)
    assert us_to_datetime(MAX_US) == datetime.max.replace(tzinfo=timezone.utc)
    assert LogFilter.from_wire(ends.to_wire()) == ends == from_params({k: [v] for k, v in ends.to_params().items()})


@pytest.mark.parametrize("case", CASES["cases"], ids=lambda case: json.dumps(case["spec"])[:60])
def test_the_widget_reads_the_wire_as_from_wire_does(case: dict[str, Any]) -> None:
    """The widget's filter is the wire form: what from_wire reads, without a limit (a stream goes on to the end)."""
    from nbtasklog.widget import filter_from_spec

    assert filter_from_spec(case["wire"]) == LogFilter.from_wire(case["wire"]).with_limit(None)


def test_the_widget_refuses_what_from_wire_refuses_in_the_same_words():
    from nbtasklog.widget import filter_from_spec

    assert filter_from_spec(None) == LogFilter()
    for message in ([1], {"colour": "red"}, {"after": "5"}, {"meta": ["k=1", "k=2"]}, {"errors_only": "yes"}):
        with pytest.raises(FilterError) as wire:
            LogFilter.from_wire(message)
        with pytest.raises(FilterError) as widget:
            filter_from_spec(message)
        assert str(widget.value) == str(wire.value)
