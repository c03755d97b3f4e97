"""The figures of the adversarial suites (cases tried, kills survived, records lost), for the README's
Reliability table.

A suite calls `record("faults", kills=24, lost=0, ...)`; with NBTASKLOG_RELIABILITY_REPORT naming a JSON
file (./dev test sets it), the figures are merged into it under that name, else nothing is written.
`python tests/reliability.py FILE` prints the table from such a file.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path
from typing import Any


def record(section: str, **figures: Any) -> None:
    """Merge `figures` into the report under `section`: counts of the same name add up across calls,
    lists are joined, anything else is replaced."""
    path = os.environ.get("NBTASKLOG_RELIABILITY_REPORT")
    if not path:
        return
    report_path = Path(path)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    with open(report_path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # suites in other processes may write at the same time
        report = json.loads(report_path.read_text()) if report_path.exists() else {}
        merged = report.setdefault(section, {})
        for name, value in figures.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool) and name in merged \
                    and name not in _NOT_SUMMED:
                merged[name] = merged[name] + value
            elif isinstance(value, list) and isinstance(merged.get(name), list):
                merged[name] = merged[name] + [v for v in value if v not in merged[name]]
            else:
                merged[name] = value
        report_path.write_text(json.dumps(report, indent=2, sort_keys=True))


# Figures that describe a run rather than count its cases: the last value stands.
_NOT_SUMMED = {"seconds", "server_peak_rss_mb", "seed", "duckdb", "schemathesis"}

ROWS = [
    ("hostile", "Hostile input (lone surrogates, NUL, controls, bidi, 10 MB, 10,000 deep, raising repr/str, odd keys, "
                "NaN, huge ints) through every face", ["cases", "faces"], "lost"),
    ("model", "Model-based runs: tasks, readers coming and going, filter changes, flushes, disk full, restarts",
     ["examples", "steps", "records", "readers", "disk_full", "restarts"], "violations"),
    ("model_owners", "Model-based runs of two servers on one PostgreSQL: tasks, live followers on the other, cancels "
                     "and deletes from either, settings changes", ["examples", "steps", "records", "followers",
                                                                  "followed_records", "cancels_by_other",
                                                                  "deletes_by_other", "settings"], "violations"),
    ("faults", "Faults in real processes: SIGKILL during flush, spill and replay; disk full; read-only; "
               "database gone during replay; PostgreSQL gone", ["kills", "records_checked", "disk_full_cases",
                                                              "read_only_cases", "postgresql_cases"], "records_lost"),
    ("api_fuzz", "API fuzzing from the OpenAPI document (schemathesis, every check)",
     ["cases", "failures", "server_errors"], "failures"),
    ("load", "Load: 50 tasks × 10,000 records, 10 WebSocket readers", ["records_stored", "records_streamed",
                                                                       "server_peak_rss_mb", "seconds"], "lost"),
]


def _figure(name: str, value: Any) -> str:
    label = name.replace("_", " ")
    if isinstance(value, list):
        return f"{label} {len(value)} ({', '.join(map(str, value))})"
    return f"{label} {value:,}" if isinstance(value, (int, float)) and not isinstance(value, bool) else f"{label} {value}"


def table(report: dict[str, Any]) -> str:
    """The README's Reliability table: one row a suite, with the figures of this run."""
    lines = ["| suite | this run | records lost or wrong |", "|---|---|---|"]
    for section, what, names, lost in ROWS:
        figures = report.get(section)
        if figures is None:
            lines.append(f"| {what} | not run | |")
            continue
        shown = "; ".join(_figure(name, figures[name]) for name in names if name in figures)
        lines.append(f"| {what} | {shown} | {figures.get(lost, '?')} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads(Path(sys.argv[1]).read_text())))
