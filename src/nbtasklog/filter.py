"""LogFilter: one description of which records a reader wants, with two faces of one meaning.

`where()` compiles it to SQL for history; `matches()` evaluates it on live records in memory.
A property test (tests/test_filter_property.py) keeps the two faces equal.

It travels in two forms, each read back as the same filter (tests/test_filter_wire.py): `to_wire` /
`from_wire`, the JSON fields of the widget's and the log socket's filter messages, and `to_params` /
`from_params`, the query string of the REST and WebSocket URLs. `make_filter` checks what users give.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal

from .levels import LEVEL_NAMES, LEVEL_VALUES, Level, levels_at_or_above, parse_level
from .record import KEY_SEGMENT, LogRecord, datetime_to_us, us_to_datetime, valid_text
from .store.schema import json_exists, json_text

MAX_LIMIT = 100_000
MAX_SEQ = 2**63 - 1  # the seq column is a BIGINT: no record has a seq past it
# The times a datetime holds (0001-01-01 to 9999-12-31 in UTC): the SQL face and the text forms need one.
MIN_US = datetime_to_us(datetime.min.replace(tzinfo=timezone.utc))
MAX_US = datetime_to_us(datetime.max.replace(tzinfo=timezone.utc))


class FilterError(ValueError):
    """A filter that cannot be understood; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class MetaCondition:
    """`path` = value (compared as text, the way JSON-path extraction renders it), or `path` exists."""

    path: tuple[str, ...]
    value: str | None = None  # None: the key exists (with any value, null included); objects and arrays never equal a value

    @property
    def key(self) -> str:
        return ".".join(self.path)

    def matches(self, metadata: Any) -> bool:
        node = metadata
        for part in self.path:
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        if self.value is None:
            return True
        return node is not None and not isinstance(node, (dict, list)) and json_scalar_text(node) == self.value


# SQL's lower() maps each code point alone (Unicode simple case mapping); str.lower() applies the
# full mapping, which differs on exactly two: 'İ' becomes 'i' + U+0307 and a word-final 'Σ' becomes
# 'ς'. Mapping those two first makes str.lower() agree with DuckDB's lower() on every code point.
_SIMPLE_LOWER = str.maketrans({"\u0130": "i", "\u03a3": "\u03c3"})


def fold_case(text: str) -> str:
    """Lower case the way the search compares, in memory and in SQL (`lower()`)."""
    return text.lower() if text.isascii() else text.translate(_SIMPLE_LOWER).lower()


def json_scalar_text(value: Any) -> str:
    """The text a JSON scalar compares as: strings raw, numbers as DuckDB's JSON functions render them."""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return _float_text(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _float_text(value: float) -> str:
    """A float the way DuckDB's json_extract_string renders it (yyjson), so that both faces compare the same text.

    The shortest round-trip digits, as repr, but positional for exponents -7 < e < 21 (integral values
    with ".0") and "1.5e21" / "1e-7" outside: 1e16 -> "10000000000000000.0", 1e-07 -> "1e-7".
    """
    text = repr(value)
    if not math.isfinite(value):
        return text
    sign = "-" if text.startswith("-") else ""
    mantissa, _, exponent = text.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    stripped = digits.lstrip("0")
    if not stripped:
        return sign + "0.0"
    point = len(whole) + int(exponent or 0) - (len(digits) - len(stripped))  # value = 0.<digits> * 10**point
    digits = stripped.rstrip("0")
    if not -7 < point - 1 < 21:
        return f"{sign}{digits[0]}{'.' + digits[1:] if len(digits) > 1 else ''}e{point - 1}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}.0"
    return f"{sign}{digits[:point]}.{digits[point:]}"


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which records of a task to return, in which order, how many, and after which cursor."""

    min_level: Level = Level.DEBUG
    sources: frozenset[str] | None = None
    search: str | None = None
    meta: tuple[MetaCondition, ...] = ()
    after_seq: int | None = None
    before_seq: int | None = None
    since_us: int | None = None
    until_us: int | None = None
    order: Literal["asc", "desc"] = "asc"
    limit: int | None = None
    _levels: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _search_lower: str | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_levels", levels_at_or_above(self.min_level))
        object.__setattr__(self, "_search_lower", fold_case(self.search) if self.search else None)

    # ---- the in-memory face -------------------------------------------------------------
    def matches(self, record: LogRecord) -> bool:
        """True when `record` passes every condition except order and limit."""
        if LEVEL_VALUES[record.level] < self.min_level:
            return False
        if self.sources is not None and record.source not in self.sources:
            return False
        if self.after_seq is not None and record.seq <= self.after_seq:
            return False
        if self.before_seq is not None and record.seq >= self.before_seq:
            return False
        if self.since_us is not None and record.timestamp_us < self.since_us:
            return False
        if self.until_us is not None and record.timestamp_us >= self.until_us:
            return False
        if self._search_lower is not None and self._search_lower not in fold_case(record.message):
            return False
        if self.meta:
            if record.metadata_json is None:
                return False
            metadata = json.loads(record.metadata_json)
            if not all(condition.matches(metadata) for condition in self.meta):
                return False
        return True

    def apply(self, records: Iterable[LogRecord]) -> list[LogRecord]:
        """Filter, order by seq and cut to the limit: the in-memory twin of a store query."""
        kept = sorted((r for r in records if self.matches(r)), key=_seq, reverse=self.order == "desc")
        return kept if self.limit is None else kept[: self.limit]

    # ---- the SQL face ----------------------------------------------------------------------
    def where(self, table: Any) -> list[Any]:
        """SQLAlchemy conditions on a `task_logs`-shaped table (task selection is the caller's)."""
        from sqlalchemy import func

        c = table.c
        conditions: list[Any] = []
        if self.min_level > Level.DEBUG:
            conditions.append(c.level.in_(self._levels))
        if self.sources is not None:
            conditions.append(c.source.in_(sorted(self.sources)))
        if self.after_seq is not None:
            conditions.append(c.seq > self.after_seq)
        if self.before_seq is not None:
            conditions.append(c.seq < self.before_seq)
        if self.since_us is not None:
            conditions.append(c.timestamp >= us_to_datetime(self.since_us))
        if self.until_us is not None:
            conditions.append(c.timestamp < us_to_datetime(self.until_us))
        if self.search:
            conditions.append(func.strpos(func.lower(c.message), func.lower(self.search)) > 0)
        for condition in self.meta:
            if condition.value is None:
                conditions.append(json_exists(c.metadata, condition.path))
            else:
                conditions.append(json_text(c.metadata, condition.path) == condition.value)
        return conditions

    def order_by(self, table: Any) -> Any:
        return table.c.seq.desc() if self.order == "desc" else table.c.seq.asc()

    # ---- paging ------------------------------------------------------------------------------
    def next_page(self, records: list[LogRecord]) -> LogFilter:
        """The same filter moved past `records` (keyset paging on seq, never OFFSET)."""
        if not records:
            return self
        last = records[-1].seq
        return replace(self, before_seq=last) if self.order == "desc" else replace(self, after_seq=last)

    def with_limit(self, limit: int | None) -> LogFilter:
        return replace(self, limit=limit)

    def to_params(self) -> dict[str, str]:
        """The query-string form that the REST and WebSocket APIs parse back (`from_params`), equal to this filter.

        A metadata condition is `meta.KEY=VALUE` (an empty VALUE is the empty string); keys that must
        exist are `has=KEY,KEY` (keys cannot hold commas); times are ISO 8601 in UTC.
        """
        params: dict[str, str] = {}
        if self.min_level > Level.DEBUG:
            params["level"] = self.min_level.name
        if self.sources is not None:
            params["source"] = ",".join(sorted(self.sources))
        if self.search:
            params["search"] = self.search
        for condition in self.meta:
            if condition.value is not None:
                params[f"meta.{condition.key}"] = condition.value
        exists = [condition.key for condition in self.meta if condition.value is None]
        if exists:
            params["has"] = ",".join(exists)
        for name, value in (("after", self.after_seq), ("before", self.before_seq), ("limit", self.limit)):
            if value is not None:
                params[name] = str(value)
        for name, value in (("since", self.since_us), ("until", self.until_us)):
            if value is not None:
                params[name] = us_to_datetime(value).isoformat()
        if self.order != "asc":
            params["order"] = self.order
        return params

    def to_wire(self) -> dict[str, Any]:
        """The JSON form the widget and the log socket exchange (`from_wire` reads it back), equal to this filter.

        Defaults are left out. `source` is a sorted list of names; `meta` a list of "KEY=VALUE" (an
        empty VALUE is the empty string) and "KEY" (the key exists); seqs and the limit are integers;
        times are ISO 8601 in UTC.
        """
        wire: dict[str, Any] = {}
        if self.min_level > Level.DEBUG:
            wire["level"] = self.min_level.name
        if self.sources is not None:
            wire["source"] = sorted(self.sources)
        if self.search:
            wire["search"] = self.search
        if self.meta:
            wire["meta"] = [c.key if c.value is None else f"{c.key}={c.value}" for c in self.meta]
        for name, value in (("after", self.after_seq), ("before", self.before_seq), ("limit", self.limit)):
            if value is not None:
                wire[name] = value
        for name, value in (("since", self.since_us), ("until", self.until_us)):
            if value is not None:
                wire[name] = us_to_datetime(value).isoformat()
        if self.order != "asc":
            wire["order"] = self.order
        return wire

    @classmethod
    def from_wire(cls, message: Any) -> LogFilter:
        """The filter a JSON filter message describes (the inverse of to_wire), as the widget and the log socket get it.

        A field that is null is left out. Each field must have its JSON type: `level` a level name,
        `source` a name, a comma-separated list or a list of names, `search` text, `meta` a list of
        "KEY=VALUE" / "KEY" or an object of KEY: value (null: the key exists), `after`, `before` and
        `limit` integers, `since` and `until` ISO 8601 text with a UTC offset (the reader of a
        message cannot know its sender's local time), `order` "asc" or "desc", `errors_only` true or
        false. Anything else raises FilterError saying which field and why.
        """
        if not isinstance(message, Mapping):
            raise FilterError(f"a filter must be an object of fields ({', '.join(WIRE_FIELDS)}), not {type(message).__name__}")
        fields = {name: value for name, value in message.items() if value is not None}
        unknown = sorted(str(name) for name in fields if name not in WIRE_FIELDS)
        if unknown:
            raise FilterError(f"unknown filter field(s) {', '.join(unknown)}: use {', '.join(WIRE_FIELDS)}")
        for name, value in fields.items():
            what, types = _WIRE_TYPES[name]
            if not _is_one_of(value, types):
                raise FilterError(f"{name} must be {what}, not {_shown(value)}")
        for name in ("since", "until"):
            if name in fields:
                _require_offset(name, fields[name])
        return make_filter(**fields)


def _is_one_of(value: Any, types: tuple[type, ...]) -> bool:
    """Whether `value` has one of the JSON types a wire field takes (true and false are never numbers)."""
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, float):  # JSON has one kind of number: 5.0 is the integer 5 as another writer wrote it
        return int in types and value.is_integer()
    return isinstance(value, types)


def _shown(value: Any) -> str:
    """A value as an error message shows it: its repr, cut short (a huge int by its size: past 4,300
    digits Python refuses to write one out)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"{'-' if value < 0 else ''}(a number of {value.bit_length()} bits)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


_WIRE_TYPES: dict[str, tuple[str, tuple[type, ...]]] = {  # field: (what it must be, the types json.loads gives for that)
    "level": (f"a level name ({', '.join(LEVEL_NAMES)})", (str,)),
    "source": ("a name or a list of names", (str, list)),
    "search": ("text", (str,)),
    "meta": ("a list of 'key=value' / 'key' texts or an object of key: value", (Mapping, list)),
    "after": ("a whole number", (int,)),
    "before": ("a whole number", (int,)),
    "since": ("ISO 8601 text with a UTC offset", (str,)),
    "until": ("ISO 8601 text with a UTC offset", (str,)),
    "order": ("'asc' or 'desc'", (str,)),
    "limit": ("a whole number", (int,)),
    "errors_only": ("true or false", (bool,)),
}
WIRE_FIELDS = tuple(_WIRE_TYPES)


def _require_offset(name: str, text: str) -> None:
    """A time sent by another process needs its UTC offset: the reader cannot know the sender's local time."""
    if not text:
        return
    try:
        naive = datetime.fromisoformat(text).tzinfo is None
    except ValueError:
        raise FilterError(f"{name} must be an ISO 8601 time, not {_shown(text)}") from None
    if naive:
        raise FilterError(f"{name} needs a UTC offset (e.g. {text}+00:00 or {text}Z): the reader cannot know your local time")


QUERY_PARAMS = ("level", "source", "search", "has", "after", "before", "since", "until", "limit", "order", "errors_only")


def from_params(params: Mapping[str, Iterable[str]], default_limit: int | None = None) -> LogFilter:
    """The filter a query string describes (the inverse of LogFilter.to_params), as REST and WebSocket URLs give it.

    `params` maps each name to its values (a name may repeat: `source` and `has` values add up; for
    the others the last counts). An empty value is the parameter left out, except that
    `meta.KEY=VALUE` compares KEY with VALUE, the empty VALUE included; `has=KEY,KEY` asks that the
    keys exist. Times need a UTC offset: the server cannot know the caller's local time.
    `errors_only` is a yes or no word. Unknown names raise FilterError.
    """
    values: dict[str, Any] = {}
    meta: list[str] = []  # make_filter's "key=value" / "key" form: one key may have both conditions
    sources: list[str] = []
    for name, texts in params.items():
        texts = list(texts) if name.startswith("meta.") else [t for t in texts if t]
        if not texts:
            continue
        if name.startswith("meta."):
            meta.append(f"{name[5:]}={texts[-1]}")
        elif name == "has":
            meta.extend(key for text in texts for key in text.split(",") if key.strip())
        elif name == "source":
            sources.extend(texts)
        elif name in QUERY_PARAMS:
            values[name] = texts[-1]
        else:
            raise FilterError(f"unknown query parameter {name!r}: use {', '.join(QUERY_PARAMS[:-1])}, meta.KEY or errors_only")
    for name in ("since", "until"):
        if name in values:
            _require_offset(name, values[name])
    if sources:
        values["source"] = ",".join(sources)
    if meta:
        values["meta"] = meta
    if "errors_only" in values:
        word = values["errors_only"].lower()
        if word not in _YES + _NO:  # a misspelt value must not silently mean "every record"
            raise FilterError(f"errors_only must be true or false, not {values['errors_only'][:50]!r}")
        values["errors_only"] = word in _YES
    values.setdefault("limit", default_limit)
    return make_filter(**values)


_YES, _NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _seq(record: LogRecord) -> int:
    return record.seq


def make_filter(
    level: object = None,
    source: str | Iterable[str] | None = None,
    search: str | None = None,
    meta: Mapping[str, Any] | Iterable[str] | None = None,
    after: int | None = None,
    before: int | None = None,
    since: datetime | int | None = None,
    until: datetime | int | None = None,
    order: str = "asc",
    limit: int | None = None,
    errors_only: bool = False,
) -> LogFilter:
    """Build a LogFilter from user-facing arguments, checking each one.

    `level` means that level and above; `source` is a name, a comma-separated list or an
    iterable of those; `meta` maps dotted keys to values (None: the key exists) or is a list of
    "key=value" / "key" strings, one value per key at most; seqs and times stay within what a
    BIGINT and a datetime hold. Raises FilterError saying what was wrong.
    """
    try:
        given = Level.DEBUG if level in (None, "") else parse_level(level)  # checked even when errors_only wins
    except ValueError as error:
        raise FilterError(str(error)) from None
    min_level = Level.ERROR if errors_only else given
    sources = _parse_sources(source)
    if search is not None and not isinstance(search, str):
        raise FilterError(f"search must be text, not {type(search).__name__}")
    if order not in ("asc", "desc"):
        raise FilterError(f"order must be 'asc' or 'desc', not {order!r}")
    return LogFilter(
        min_level=min_level,
        sources=sources,
        search=valid_text(search) if search else None,
        meta=parse_meta(meta),
        after_seq=_parse_int("after", after, minimum=0, maximum=MAX_SEQ),
        before_seq=_parse_int("before", before, minimum=1, maximum=MAX_SEQ),
        since_us=_parse_time("since", since),
        until_us=_parse_time("until", until),
        order=order,  # type: ignore[arg-type]
        limit=_parse_int("limit", limit, minimum=1, maximum=MAX_LIMIT),
    )


def _parse_sources(source: str | Iterable[str] | None) -> frozenset[str] | None:
    if source is None:
        return None
    names = [source] if isinstance(source, str) else list(source)
    if not all(isinstance(name, str) for name in names):
        raise FilterError("source must be a name or a list of names")
    # A comma separates names in every form (no source name holds one), so that a list and its
    # comma-joined text are one filter, as the query string carries it.
    cleaned = frozenset(valid_text(part.strip()) for name in names for part in name.split(",") if part.strip())
    if not cleaned:
        raise FilterError("source is empty: give at least one source name")
    return cleaned


def parse_meta(meta: Mapping[str, Any] | Iterable[str] | None) -> tuple[MetaCondition, ...]:
    """Metadata conditions from {"a.b": value} or ["a.b=value", "key"] (a bare key: it exists)."""
    if meta is None:
        return ()
    if isinstance(meta, str):
        meta = [meta]
    items: list[tuple[str, Any]] = []
    if isinstance(meta, Mapping):
        items = list(meta.items())
    else:
        for text in meta:
            if not isinstance(text, str):
                raise FilterError(f"metadata condition must be 'key=value' or 'key', not {text!r}")
            key, sep, value = text.partition("=")
            items.append((key, value if sep else None))
    conditions = []
    for key, value in items:
        path = tuple(str(key).strip().split("."))
        if not all(KEY_SEGMENT.fullmatch(part) for part in path):
            raise FilterError(
                f"bad metadata key {key!r}: use letters, digits, '_' or '-', with '.' between nested keys"
            )
        if isinstance(value, (Mapping, list, tuple)):
            raise FilterError(
                f"metadata condition {key!r}: compare text, a number or true/false, not {type(value).__name__} "
                "(objects and arrays never match; name a nested key with '.')"
            )
        if value is not None and not isinstance(value, (str, int, float)):
            raise FilterError(f"metadata condition {key!r}: compare text, a number or true/false, not {type(value).__name__}")
        try:
            text = None if value is None else valid_text(json_scalar_text(value))
        except ValueError:  # an int past 4,300 digits, which Python writes out for no one
            raise FilterError(f"metadata condition {key!r}: a number too long to compare") from None
        conditions.append(MetaCondition(path, text))
    # All must hold, so their order means nothing and a repeat adds nothing: sorted and unique, equal
    # filters compare equal however given.
    unique = sorted(set(conditions), key=lambda c: (c.path, c.value is None, c.value or ""))
    compared: dict[tuple[str, ...], str] = {}
    for condition in unique:
        if condition.value is not None and compared.setdefault(condition.path, condition.value) != condition.value:
            # No record holds two values at one key; and the query string carries one value per key.
            raise FilterError(
                f"metadata key {condition.key!r} is compared with two values, {_shown(compared[condition.path])} and "
                f"{_shown(condition.value)}: a record holds one"
            )
    return tuple(unique)


def _parse_int(name: str, value: Any, minimum: int, maximum: int) -> int | None:
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):  # int(True) is 1: a flag is no seq number
            raise ValueError
        number = int(value)
        if isinstance(value, float) and number != value:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise FilterError(f"{name} must be a whole number, not {_shown(value)}") from None
    if not minimum <= number <= maximum:
        # Below a seq's minimum, its maximum (the BIGINT's) is no bound a user has in mind.
        bound = f"at least {minimum}" if number < minimum and maximum == MAX_SEQ else f"between {minimum} and {maximum}"
        raise FilterError(f"{name} must be {bound}, not {_shown(number)}")
    return number


def _parse_time(name: str, value: datetime | int | str | None) -> int | None:
    """UTC microseconds of a time; a datetime or ISO text without a UTC offset is local time, as in Python."""
    if value is None or value == "":
        return None
    given = value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise FilterError(f"{name} must be an ISO 8601 time, not {_shown(given)}") from None
    if isinstance(value, datetime):
        try:
            us = datetime_to_us(value if value.tzinfo is not None else value.astimezone())
        except (OverflowError, ValueError):  # local time of a naive datetime at the ends of the range
            us = None
    elif isinstance(value, int) and not isinstance(value, bool):
        us = value
    else:
        raise FilterError(f"{name} must be a datetime or ISO 8601 text, not {_shown(given)}")
    if us is None or not MIN_US <= us <= MAX_US:
        raise FilterError(f"{name} must be a time between 0001-01-01 and 9999-12-31 in UTC, not {_shown(given)}")
    return us
