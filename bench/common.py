"""What every benchmark shares: the Row it reports and the table of rows, medians, a temporary directory, number formatting.

Timing is always time.perf_counter over a repeated measurement, reported as the median. Nothing here
(or anywhere under bench/) asserts on time: a benchmark raises only when the code it measures gave a
wrong answer (records missing, counts that differ), never because it was slow.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
from typing import Any
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Row:
    """One line of the results table. `ratio` is measured / reference unless given."""

    key: str  # stable id, e.g. "logger.info" (the smoke test looks for these)
    what: str
    measured: float
    reference: float | None
    unit: str
    target: str
    met: bool | None  # None: reported, no target
    ratio: float | None = None
    ratio_text: str | None = None  # how to show the ratio, when "1.23×" is not the clearest

    def __post_init__(self) -> None:
        if self.ratio is None and self.reference:
            self.ratio = self.measured / self.reference

    def to_dict(self) -> dict:
        return asdict(self)


def median(values: list[float]) -> float:
    return statistics.median(values)


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory, deleted afterwards whatever happens."""
    path = Path(tempfile.mkdtemp(prefix=f"nbtasklog-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fmt(value: float | None) -> str:
    """About three significant digits, thousands separated."""
    if value is None:
        return "—"
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    if size >= 100:
        return f"{value:.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def check(condition: bool, message: str) -> None:
    """A correctness check (never a timing one): the benchmark is void when it fails."""
    if not condition:
        raise AssertionError(message)


def persisted_plugin_records(engine: Any, task_id: str) -> int:
    """How many of a task's "plugin" records the store holds (benchmarks check their work with it)."""
    return int(engine.sql(
        f"SELECT count(*) AS n FROM task_logs WHERE task_id = '{task_id}' AND source = 'plugin'"
    )["n"][0])


HEADER = ["what", "measured", "reference (same run)", "ratio", "target", "met"]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: list[Row]) -> str:
    """The Markdown table the README shows: one line per row."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---"] * len(HEADER)) + "|"]
    for row in rows:
        ratio = row.ratio_text or (f"{row.ratio:.2f}×" if row.ratio is not None else "—")
        reference = f"{fmt(row.reference)} {row.unit}" if row.reference is not None else "—"
        met = "—" if row.met is None else ("yes" if row.met else "**no**")
        cells = [row.what, f"{fmt(row.measured)} {row.unit}", reference, ratio, row.target, met]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)
