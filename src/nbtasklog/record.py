"""The log record: an immutable tuple made once at emission and shared by the live and stored paths."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

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



# Built once: json.dumps with non-default options builds a new encoder on every call (~1.5 µs).
_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=repr).encode


def metadata_to_json(metadata: dict[str, Any]) -> str:
    """JSON text for a metadata mapping; never raises.

    Values JSON cannot hold are stored by repr, non-finite floats as strings, and
    non-string keys as their str, so that a logging call never fails because of its metadata.
    """
    try:
        return _ENCODE(metadata)
    except (TypeError, ValueError):
        return json.dumps(_json_safe(metadata, 0), ensure_ascii=False, separators=(",", ":"))


def _json_safe(value: Any, depth: int) -> Any:
    if depth > 50:  # deeper than any real metadata; also ends reference cycles
        return repr(value)
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, depth + 1) for v in value]
    return repr(value)
