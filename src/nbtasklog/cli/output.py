"""What the command prints and how: text made safe for a terminal, colours, times, record lines and tables."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..record import LogRecord

LEVEL_COLOURS = {"DEBUG": "2", "INFO": "32", "WARNING": "33", "ERROR": "1;31"}
STATUS_COLOURS = {"SUCCESS": "32", "FAILED": "1;31", "CANCELLED": "33", "INTERRUPTED": "33",
                  "RUNNING": "36", "PENDING": "2"}
SOURCE_WIDTH = 14  # "[superset_api]": messages of the usual sources line up


def out(text: str = "", *, flush: bool = False) -> None:
    # sys.stdout is looked up each time: nbtasklog's capture may have wrapped it (writes from this,
    # the main thread, are outside any task and pass straight through).
    print(text, flush=flush)


def note(text: str) -> None:
    # Notes and errors quote task errors, plugin names and the user's own input: printable() them all.
    print(printable(text, newlines=True), file=sys.stderr)


# What a terminal acts on instead of showing: C0 controls (ESC starts sequences that repaint the screen or
# retitle the window, CR and BS overwrite), DEL, C1 controls (CSI, OSC), and the Unicode bidi controls that
# reorder what follows (text that reads one way and is another). Tab is harmless; newline, where kept,
# is laid out by the caller.
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNPRINTABLE = re.compile(f"[{_CONTROLS}\n]")
_UNPRINTABLE_BUT_NEWLINE = re.compile(f"[{_CONTROLS}]")


def printable(text: str, *, newlines: bool = False) -> str:
    """`text` safe to print to a terminal: each control character shown as its Python escape (\\x1b, \\r,
    \\x00, \\u202e), as repr() shows it; tabs stay, and newlines too with `newlines`.

    Every text from users or records that the CLI prints (not JSON, which escapes it) goes through here.
    """
    if text.isascii() and text.isprintable():  # the usual text, at C speed: nothing to escape
        return text
    return (_UNPRINTABLE_BUT_NEWLINE if newlines else _UNPRINTABLE).sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


class Colours:
    """ANSI colours for levels, statuses and emphasis, or plain text when colour is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def paint(self, text: str, code: str | None) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled and code else text

    def level(self, name: str, width: int = 0) -> str:
        return self.paint(name.ljust(width), LEVEL_COLOURS.get(name))

    def status(self, name: str, width: int = 0) -> str:
        return self.paint(name.ljust(width), STATUS_COLOURS.get(name))


def local_time(value: datetime | None) -> str:
    """A UTC datetime as local time to the second, for tables."""
    return "" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


_last_second: tuple[int, bool, str] = (-1, True, "")


def record_time(timestamp_us: int, with_date: bool) -> str:
    """Local time of a record with milliseconds; the formatted second is reused (a busy log has many records per second)."""
    global _last_second
    second, micros = divmod(timestamp_us, 1_000_000)
    if _last_second[:2] != (second, with_date):
        text = datetime.fromtimestamp(second).strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
        _last_second = (second, with_date, text)
    return f"{_last_second[2]}.{micros // 1000:03d}"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def task_duration(info: dict[str, Any]) -> float | None:
    started = info.get("started_at")
    if started is None:
        return None
    end = info.get("finished_at") or datetime.now(timezone.utc)
    return (end - started).total_seconds()


def format_record(colours: Colours, record: LogRecord, with_date: bool = True) -> str:
    """One line: local time, level, [source], message, metadata as compact JSON.

    Continuation lines of a message, and a traceback in the metadata, follow indented.
    """
    stamp = record_time(record.timestamp_us, with_date)
    source = printable(record.source)
    head = f"{stamp} {colours.level(printable(record.level), 7)} {('[' + source + ']').ljust(SOURCE_WIDTH)} "
    indent = " " * (len(stamp) + 1 + 7 + 1 + SOURCE_WIDTH + 1)
    first, *more = record.message.split("\n")
    line = head + printable(first)
    extra: list[str] = [indent + printable(text) for text in more]
    metadata_json = record.metadata_json
    if metadata_json is not None and '"traceback"' in metadata_json:
        metadata = json.loads(metadata_json)
        traceback = metadata.pop("traceback", None) if isinstance(metadata, dict) else None
        if isinstance(traceback, str):
            extra += [indent + printable(text) for text in traceback.rstrip("\n").split("\n")]
            metadata_json = json.dumps(metadata, ensure_ascii=False, separators=(",", ":")) if metadata else None
    if metadata_json is not None:
        line += " " + printable(metadata_json)
    return "\n".join([line, *extra])


def record_json(record: LogRecord) -> str:
    return json.dumps(record.to_dict(), ensure_ascii=False)


def table(headers: list[str], rows: list[list[str]],
          paint: dict[int, Callable[[str, int], str]] | None = None) -> None:
    """Columns padded to their widest cell, shown printable(); `paint` colours a column after padding (ANSI
    codes take no width)."""
    headers = [printable(h) for h in headers]
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    out("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in rows:
        cells = []
        for i, (cell, width) in enumerate(zip(row, widths)):
            cells.append(paint[i](cell, width) if paint and i in paint else cell.ljust(width))
        out("  ".join(cells).rstrip())
