"""LogRecord: timestamps in microseconds, metadata JSON that never fails, the wire form."""

from __future__ import annotations

import enum
import json
import math
import uuid
from datetime import date, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from nbtasklog.record import LogRecord, datetime_to_us, metadata_to_json, us_to_datetime


@given(st.integers(min_value=-(2**52), max_value=2**52))
def test_microseconds_round_trip_through_datetime_exactly(us):
    """us -> datetime -> us is the identity (no float rounding), across centuries."""
    assert datetime_to_us(us_to_datetime(us)) == us


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)))
def test_datetime_round_trip_keeps_the_microsecond(value):
    """datetime -> us -> datetime gives back the same instant, microseconds included."""
    assert us_to_datetime(datetime_to_us(value)) == value


def test_naive_datetimes_are_utc_and_aware_ones_are_converted():
    """A naive datetime counts as UTC; an aware one in another zone is converted to the same instant."""
    naive = datetime(2024, 5, 1, 12, 0, 0, 123456)
    aware = datetime(2024, 5, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert datetime_to_us(naive) == datetime_to_us(aware) == 1714564800123456
    assert us_to_datetime(1714564800123456).tzinfo == timezone.utc


def test_record_timestamp_and_metadata_properties():
    """timestamp is the UTC datetime of timestamp_us; metadata parses metadata_json (None stays None)."""
    record = LogRecord("t1", 3, 1714564800123456, "INFO", "plugin", "hello", '{"a":1}')
    assert record.timestamp == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    assert record.metadata == {"a": 1}
    assert record._replace(metadata_json=None).metadata is None


def test_to_dict_is_the_wire_form():
    """to_dict gives every field, the timestamp in ISO 8601 with microseconds and offset, metadata as an object."""
    record = LogRecord("t1", 3, 1714564800123456, "WARNING", "api", "slow", '{"ms":412.5,"nested":{"k":[1,null]}}')
    assert record.to_dict() == {
        "task_id": "t1",
        "seq": 3,
        "timestamp": "2024-05-01T12:00:00.123456+00:00",
        "level": "WARNING",
        "source": "api",
        "message": "slow",
        "metadata": {"ms": 412.5, "nested": {"k": [1, None]}},
    }
    json.dumps(record.to_dict())  # the wire form is plain JSON


def test_str_is_one_readable_line():
    """str(record) shows time, level, source, message and the metadata JSON."""
    record = LogRecord("t1", 1, 1714564800123456, "INFO", "plugin", "hello", '{"a":1}')
    assert str(record) == '2024-05-01T12:00:00.123+00:00 INFO    [plugin] hello {"a":1}'


def test_metadata_to_json_plain_values_are_compact_and_unicode():
    """Ordinary metadata becomes compact JSON that keeps non-ASCII text as is."""
    assert metadata_to_json({"name": "Zürich", "n": 1, "ok": True, "x": None}) == '{"name":"Zürich","n":1,"ok":true,"x":null}'


class Unserializable:
    def __repr__(self) -> str:
        return "<Unserializable thing>"


def test_metadata_to_json_stores_unserializable_objects_by_repr():
    """Objects JSON cannot hold (sets, custom classes, bytes) are stored as their repr."""
    text = metadata_to_json({"obj": Unserializable(), "b": b"\x00\xff", "s": {1}})
    assert json.loads(text) == {"obj": "<Unserializable thing>", "b": repr(b"\x00\xff"), "s": "{1}"}


def test_metadata_to_json_stores_non_finite_floats_as_strings():
    """NaN and infinities (invalid JSON) become strings; the result is strict JSON."""
    text = metadata_to_json({"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "ok": 1.5, "deep": [math.nan]})
    assert json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(AssertionError(c))) == {
        "nan": "nan", "inf": "inf", "ninf": "-inf", "ok": 1.5, "deep": ["nan"],
    }


def test_metadata_to_json_turns_tuple_keys_into_strings():
    """Non-string keys JSON refuses (tuples) are stored as their str; tuples as values become arrays."""
    text = metadata_to_json({(1, 2): "pair", "t": (1, "a")})
    assert json.loads(text) == {"(1, 2)": "pair", "t": [1, "a"]}


def test_metadata_to_json_survives_reference_cycles():
    """A dict or list that contains itself does not raise or recurse forever; the cycle ends as a repr."""
    cyclic: dict = {"name": "loop"}
    cyclic["self"] = cyclic
    items: list = [1]
    items.append(items)
    text = metadata_to_json({"d": cyclic, "l": items})
    loaded = json.loads(text)
    assert loaded["d"]["name"] == "loop"
    assert loaded["l"][0] == 1
    node = loaded["d"]
    while isinstance(node, dict):
        node = node["self"]
    assert isinstance(node, str)


@given(st.dictionaries(
    st.one_of(st.text(max_size=5), st.integers(), st.tuples(st.integers()), st.none(), st.floats()),
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.binary(max_size=4),
                  st.builds(object), st.sets(st.integers(), max_size=2)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                                st.dictionaries(st.text(max_size=3), inner, max_size=3)),
        max_leaves=10,
    ),
    max_size=5,
))
def test_metadata_to_json_never_raises_and_is_strict_json(metadata):
    """For any mix of keys and values metadata_to_json returns a JSON object text (no NaN/Infinity tokens)."""
    text = metadata_to_json(metadata)

    def refuse(constant: str) -> None:
        raise AssertionError(f"non-standard JSON constant {constant}")

    assert isinstance(json.loads(text, parse_constant=refuse), dict)


class Colour(enum.Enum):
    RED = "red"
    GREEN = 2


_JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
              st.floats(allow_nan=False, allow_infinity=False), st.text(), st.binary(max_size=4),
              st.uuids(), st.datetimes(), st.dates(), st.sampled_from(list(Colour)),
              st.sets(st.integers(), max_size=2)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.tuples(inner, inner),
                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=5), _JSON_VALUES, max_size=5))
def test_metadata_fast_path_and_fallback_write_the_same_text(metadata):
    """Whatever orjson writes, the fallback (taken when orjson refuses a value elsewhere in the
    mapping) writes the same text: a record's metadata does not depend on which of the two wrote it."""
    from nbtasklog.record import _encoded_safely

    fast = metadata_to_json(metadata)
    assert fast == _encoded_safely(metadata)
    assert isinstance(json.loads(fast), dict)


def test_metadata_to_json_writes_common_types_as_their_json_value():
    """UUIDs, enums, datetimes (ISO 8601) and numpy values are stored as what they mean, not as a repr,
    whichever path writes them (a huge int next to them sends the whole mapping down the fallback)."""
    import numpy as np

    value = {"id": uuid.UUID(int=5), "colour": Colour.RED, "n": Colour.GREEN,
             "at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc), "day": date(2026, 1, 2),
             "f": np.float64(1.5), "i": np.int64(7), "a": np.arange(3)}
    expected = {"id": "00000000-0000-0000-0000-000000000005", "colour": "red", "n": 2,
                "at": "2026-01-02T03:04:05.000006+00:00", "day": "2026-01-02", "f": 1.5, "i": 7, "a": [0, 1, 2]}
    assert json.loads(metadata_to_json(value)) == expected
    big = 2**80
    assert json.loads(metadata_to_json({**value, "big": big})) == {**expected, "big": big}


def test_metadata_to_json_null_and_nan_side_by_side():
    """orjson writes NaN as null: a record with None values keeps them as null, one with a NaN as "nan"."""
    assert metadata_to_json({"a": None, "b": "null"}) == '{"a":null,"b":"null"}'
    assert metadata_to_json({"a": None, "b": [1.0, math.nan]}) == '{"a":null,"b":[1.0,"nan"]}'


def test_what_orjson_refuses_still_becomes_valid_json():
    """What orjson cannot write (ints past 64 bits, non-string keys, lone surrogates, a repr that
    raises) still becomes valid JSON text by the fallback, never an error."""

    class BadRepr:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    text = metadata_to_json({"big": -(2**64), 1: "one", None: 0, "s": "a\ud800b", "bad": BadRepr()})
    assert json.loads(text) == {"big": -(2**64), "1": "one", "null": 0, "s": "a\ufffdb",
                                "bad": "<BadRepr: repr() failed with RuntimeError>"}
