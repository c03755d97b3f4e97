"""The hostile corpus: what a plugin may hand its logger that nobody expects, and the plugin that logs it.

Every face (Python API, REST, both WebSockets, widget, CLI, export, SQL) is checked against it in
tests/test_hostile_faces.py and tests/server/test_hostile_faces.py. The invariant is the same for all:
the logging call does not raise, the task goes on, every face shows the same stored record (repaired
with a marker where no store can hold the text as given), and nothing else stops.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

BIG = 10 * 1024 * 1024  # 10 MB, ten times the default max_message_bytes
DEEP = 10_000


class RaisingStr(Exception):
    """An error class whose __str__ reads what its __init__ never set (a common bug in custom errors)."""

    def __str__(self) -> str:
        return self.missing  # type: ignore[attr-defined]


class RaisingRepr:
    """An object whose repr and str both raise."""

    def __repr__(self) -> str:
        raise ValueError("no repr")

    __str__ = __repr__


def deep(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth - 1):
        node["d"] = {}
        node = node["d"]
    return root


# Messages, each logged as it is (a plain info call).
MESSAGES = [
    "lone surrogates \ud800 and \udc80x (os.fsdecode of a name that is not UTF-8)",
    "NUL a\x00b",
    "terminal controls \x1b[2J\x1b[H\rover\x07\x08written\x9b31m",
    "bidi \u202eevil\u202c and \u2066isolate\u2069 \u200f\u061c",
    "astral 😀, combining e\u0301, İ, final Σ, zero width \u200b",
    "",
    "\n\n",
    '{"looks": "like JSON"} <script>alert(1)</script> &amp; %s %d %(x)s',
    "tab\there, CRLF\r\nnext",
]

# (metadata, what it tests), each logged as the value of the key "value" with the message "meta: <what>".
METADATA = [
    ({"path": "a\ud800b", "k\udfff": 1}, "surrogates in keys and values"),
    ({"nul": "x\x00y", "ctl": "\x1b[31m"}, "NUL and controls in values"),
    ({"nan": math.nan, "inf": math.inf, "ninf": -math.inf}, "non-finite floats"),
    ({"big": 2**200, "neg": -(2**100), "i64": 2**63 - 1}, "huge ints"),
    ({(1, 2): "tuple key", None: "none key", True: "bool key", 1.5: "float key"}, "non-string keys"),
    ({"obj": RaisingRepr(), "items": [RaisingRepr()], "set": {1, 2}, "bytes": b"\x00\xff"}, "unserializable values"),
    ({"deep": deep(DEEP)}, "10,000 deep"),
    ({"blob": "x" * BIG, "small": 1}, "10 MB value"),
]


def hostile_plugin(params: dict[str, Any], context: Any) -> str:
    """Logs the whole corpus through every way a plugin can log, then succeeds."""
    log = context.logger
    for message in MESSAGES:
        log.info(message)
    for metadata, what in METADATA:
        log.info("meta: %s", what, value=metadata)
    log.info("y" * BIG)  # a 10 MB message
    log.info(RaisingRepr())
    log.info("arg %s", RaisingRepr())
    log.info("%d of %s", "not a number")
    try:
        raise RaisingStr()
    except RaisingStr:
        log.exception("exception with a raising __str__")
    log.error("exc_info=", exc_info=RaisingStr())
    stdlib = logging.getLogger("hostile.lib")
    stdlib.warning("stdlib \ud800 %s", RaisingRepr())
    stdlib.error("stdlib extra", extra={"payload": RaisingRepr(), "deep": deep(2_000)})
    print("print \x00\ud800 \x1b[31mred")
    sys.stderr.write("stderr \udcff line\n")
    context.progress(0.5, "progress \udc80")
    return "done"


@contextmanager
def only_nbtasklog_on_the_root_logger() -> Iterator[None]:
    """pytest's log capture handlers on the root logger re-raise a record's formatting error (stdlib's own
    handlers print it and go on): take them off while the corpus is logged, so that what is tested is
    nbtasklog's handler, as in an application."""
    from nbtasklog import capture

    root = logging.getLogger()
    others = [h for h in root.handlers if h is not capture._handler]
    for handler in others:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in others:
            root.addHandler(handler)


# Each logging call of hostile_plugin, its progress message and a task's params: the cases every face sees.
CASES = len(MESSAGES) + len(METADATA) + 12


def record_key(record: Any) -> tuple[Any, ...]:
    """What every face must agree on for a record: seq, level, source, message and metadata (parsed)."""
    return (record["seq"], record["level"], record["source"], record["message"], record["metadata"])
