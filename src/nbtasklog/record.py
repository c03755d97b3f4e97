"""The log record: an immutable tuple made once at emission and shared by the live and stored paths."""

from __future__ import annotations

import enum
import json
import math
import re
import uuid
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, NamedTuple

import orjson

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_US = timedelta(microseconds=1)


class LogRecord(NamedTuple):
    """One log line of one task.

    `timestamp_us` is UTC microseconds since the epoch and `metadata_json` a JSON object text
    (or None): both are what the store keeps, so a record costs no conversion on its way there.
    """

    task_id: str
    seq: int
    timestamp_us: int
    level: str
    source: str
    message: str
    metadata_json: str | None

    @property
    def timestamp(self) -> datetime:
        return us_to_datetime(self.timestamp_us)

    @property
    def metadata(self) -> dict[str, Any] | None:
        return None if self.metadata_json is None else json.loads(self.metadata_json)

    def to_dict(self) -> dict[str, Any]:
        """The wire form: ISO timestamp, metadata as an object."""
        return {
            "task_id": self.task_id,
            "seq": self.seq,
            "timestamp": self.timestamp.isoformat(),
            "level": self.level,
            "source": self.source,
            "message": self.message,
            "metadata": self.metadata,
        }

    def __str__(self) -> str:
        line = f"{self.timestamp.isoformat(timespec='milliseconds')} {self.level:<7} [{self.source}] {self.message}"
        return line if self.metadata_json is None else f"{line} {self.metadata_json}"


# A LogRecord from a plain row, skipping NamedTuple's Python-level __new__: new_tuple(LogRecord, row).
new_tuple = tuple.__new__


def us_to_datetime(us: int) -> datetime:
    """The UTC datetime of `us` microseconds since the epoch."""
    return _EPOCH + us * _ONE_US


def datetime_to_us(value: datetime) -> int:
    """UTC microseconds since the epoch, exact (no float rounding); naive datetimes are UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return (value - _EPOCH) // _ONE_US



# Metadata as orjson writes it (0.2 µs for three keys, against 1.8 µs for json's encoder): compact, UTF-8,
# keys in their order, UUIDs, enums, datetimes (ISO 8601) and numpy values as JSON, any other object
# by its repr. Dataclasses by their repr too, as json's default=repr wrote them.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_SERIALIZE_NUMPY
# For ints past 64 bits and lone surrogates, which orjson refuses even in a JSON-safe copy. Built once:
# json.dumps with non-default options builds a new encoder on every call (~1.5 µs).
_ENCODE_PLAIN = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode

# One metadata key a filter can name (a path joins them with "."); whole-string match only (fullmatch).
KEY_SEGMENT = re.compile(r"[A-Za-z0-9_\-]+")
REPLACEMENT = "\ufffd"  # what text no store can hold (a lone surrogate) becomes: Unicode's own marker
_SURROGATE = re.compile("[\ud800-\udfff]")
# Deeper than any real metadata, and far from the ~1,000 frames at which json.loads, repr and most
# JSON readers give up: a record nested 980 deep was stored, then no face could read its task's log.
MAX_METADATA_DEPTH = 50
# sys.get_int_max_str_digits() (4,300) digits: int's str and json refuse more; a bound on bits keeps below it.
_MAX_INT_BITS = 14_000


def valid_text(text: str) -> str:
    """`text` itself when UTF-8 can hold it, else with each lone surrogate replaced by U+FFFD.

    Lone surrogates come from os.fsdecode / surrogateescape (a file name that is not UTF-8) and from
    broken JSON escapes; no database, socket or file takes them. ASCII text is known valid in O(1).
    """
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(REPLACEMENT, text)
    return text


def safe_str(value: object) -> str:
    """str(value), or a placeholder naming its type when its __str__ raises; always valid text."""
    try:
        return valid_text(str(value))
    except Exception as error:
        return f"<{type(value).__name__}: str() failed with {type(error).__name__}>"


def safe_repr(value: object) -> str:
    """repr(value), or a placeholder naming its type when its __repr__ raises; always valid text."""
    try:
        return valid_text(repr(value))
    except Exception as error:
        return f"<{type(value).__name__}: repr() failed with {type(error).__name__}>"


def metadata_to_json(metadata: dict[str, Any]) -> str:
    """Compact JSON object text for a metadata mapping; never raises, always valid text.

    Values JSON cannot hold are stored by repr, non-finite floats as strings ("nan", "inf"), keys
    JSON refuses as their str, and nesting deeper than MAX_METADATA_DEPTH as a marker string, so that
    a logging call never fails because of its metadata and every reader can parse what was stored.
    """
    try:
        data = orjson.dumps(metadata, default=repr, option=_ORJSON_OPTIONS)
    except Exception:  # big ints, odd keys, surrogates, a cycle, a repr that raises, nesting past 254
        return _encoded_safely(metadata)
    # orjson writes NaN and infinities as null: only text with a null can hold one.
    if b"null" in data and _has_non_finite(metadata, 0):
        return _encoded_safely(metadata)
    # Each level of nesting takes a bracket: text with few brackets cannot be too deep (C-speed count).
    if len(data) > 2 * MAX_METADATA_DEPTH and data.count(b"{") + data.count(b"[") > MAX_METADATA_DEPTH:
        return _encoded_safely(metadata)
    return data.decode()  # orjson writes only valid UTF-8 (it refuses lone surrogates)


def _encoded_safely(metadata: dict[str, Any]) -> str:
    """Metadata orjson refused as given: a JSON-safe copy, by orjson again where it can (the same
    number formats as the fast path), else by json (ints past 64 bits, lone surrogates)."""
    safe = _json_safe(metadata, 0)
    try:
        return orjson.dumps(safe).decode()
    except Exception:
        return valid_text(_ENCODE_PLAIN(safe))


def _has_non_finite(value: Any, depth: int) -> bool:
    """Whether a NaN or an infinity is somewhere in `value` (within the depth that is stored)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if depth < MAX_METADATA_DEPTH and isinstance(value, (dict, list, tuple)):
        values = value.values() if isinstance(value, dict) else value
        return any(_has_non_finite(v, depth + 1) for v in values)
    return False


def _json_safe(value: Any, depth: int) -> Any:
    """A copy of `value` holding only JSON's types, each value as orjson writes it where orjson can."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_INT_BITS:
        return f"<int of {value.bit_length()} bits>"  # Python refuses to write ints past 4,300 digits as text
    if isinstance(value, enum.Enum):
        return _json_safe(value.value, depth)
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):  # an array or a numpy scalar
        return _json_safe(value.tolist(), depth)
    if isinstance(value, (dict, list, tuple)):
        if depth >= MAX_METADATA_DEPTH:  # also ends reference cycles
            return f"<{type(value).__name__} nested deeper than {MAX_METADATA_DEPTH} levels>"
        if isinstance(value, dict):
            return {_json_key(k): _json_safe(v, depth + 1) for k, v in value.items()}
        return [_json_safe(v, depth + 1) for v in value]
    return safe_repr(value)


def _json_key(key: Any) -> str:
    """A key as json spells it (true, null, 1, 1.5); other keys, which json refuses, as their str."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool) or (isinstance(key, float) and math.isfinite(key)) \
            or (isinstance(key, int) and key.bit_length() <= _MAX_INT_BITS):
        return _ENCODE_PLAIN(key)
    return _json_safe(key, 0) if isinstance(key, int) else safe_str(key)


def cut_metadata(text: str, max_bytes: int) -> str:
    """Metadata JSON over `max_bytes` in UTF-8, cut to fit with its shape kept: keys and items stay in
    order while they fit, the first value that does not fit is cut inside (a string keeps its start, an
    object or a list what fits of it) with a marker, and what comes after is dropped and counted. The
    original size goes into the metadata, so small keys stay filterable and nothing is silently lost."""
    size = len(text.encode("utf-8"))
    if size <= max_bytes:
        return text
    cutter = _Cutter()
    # Room for the size fields (and a cut message's) and JSON punctuation.
    kept = cutter.fit(json.loads(text), max(0, max_bytes - 160))
    kept["metadata_original_bytes"] = size
    if cutter.dropped:
        kept["metadata_dropped"] = cutter.dropped
    return _encoded_safely(kept)


def _utf8_len(value: Any) -> int:
    return len(_ENCODE_PLAIN(value).encode("utf-8"))


class _Cutter:
    """Fits a JSON value into a byte budget, counting the keys and items it drops."""

    MARKER_ROOM = 48  # " … [value cut: 10485762 bytes]" and its quotes

    def __init__(self) -> None:
        self.dropped = 0

    def fit(self, value: Any, room: int) -> Any:
        size = _utf8_len(value)
        if size <= room:
            return value
        if isinstance(value, dict):
            # The small entries stay whole (they are what filters look for); the large ones share what is
            # left, each cut inside; what even a marker no longer fits in is dropped and counted.
            costs = {key: _utf8_len(key) + 2 + _utf8_len(item) for key, item in value.items()}
            left = room - 2
            whole: set[str] = set()
            for key in sorted(costs, key=costs.__getitem__):
                if costs[key] + self.MARKER_ROOM > left:  # keep room for at least one cut value
                    break
                whole.add(key)
                left -= costs[key] + 1
            large = [key for key in value if key not in whole]
            share = left // len(large) if large else 0
            out: dict[str, Any] = {}
            for key, item in value.items():
                if key in whole:
                    out[key] = item
                elif share - _utf8_len(key) - 3 >= self.MARKER_ROOM:
                    out[key] = self.fit(item, share - _utf8_len(key) - 3)
                else:
                    self.dropped += 1
            return out
        if isinstance(value, list):
            items: list[Any] = []
            used = 2
            for index, item in enumerate(value):
                left = room - used - 1
                if left < self.MARKER_ROOM:
                    self.dropped += len(value) - index
                    break
                items.append(self.fit(item, left))
                used += 1 + _utf8_len(items[-1])
            return items
        marker = f" … [value cut: {size} bytes]"
        start = value if isinstance(value, str) else _ENCODE_PLAIN(value)
        keep = max(0, room - len(marker.encode()) - 2)
        start = start.encode("utf-8")[:keep].decode("utf-8", "ignore")
        # json escapes some characters (quotes, controls) into several: shrink until it fits.
        while start and _utf8_len(start + marker) > room:
            start = start[: len(start) * 3 // 4]
        return start + marker
