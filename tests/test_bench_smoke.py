"""The benchmark code works: `bench/run.py --quick` runs every benchmark and prints a full table; the viewer's runs alone too.

This checks that each benchmark runs and reports numbers, never how fast anything was.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Row label prefix -> how many rows carry it.
EXPECTED = {
    "1. per call": 3,
    "2. end to end": 1,
    "3. task overhead": 1,
    "4. retrieval": 10,  # five filters, on DuckDB and on PostgreSQL
    "5. memory": 2,
    "6. viewer": 4,  # one size (10,000 records) in --quick
    "9. ": 4,  # a store for teams: ingest on PostgreSQL, one and two processes; live latency across servers
}
NUMBER = re.compile(r"\d")


@pytest.mark.slow
def test_quick_benchmarks_print_every_row_with_numbers(tmp_path: Path) -> None:
    out = tmp_path / "quick.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "FAILED" not in done.stdout
    assert out.read_text().strip() == done.stdout.strip()

    lines = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    header, rows = lines[0], lines[1:]
    assert header == "| what | measured | reference (same run) | ratio | target | met |"
    cells = [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in rows]
    assert all(len(row) == 6 for row in cells), rows
    for prefix, count in EXPECTED.items():
        ours = [row for row in cells if row[0].startswith(prefix)]
        assert len(ours) == count, f"{prefix}: {len(ours)} rows, expected {count}"
        for what, measured, reference, ratio, target, met in ours:
            assert NUMBER.search(measured) and NUMBER.search(reference) and NUMBER.search(ratio), what
            assert met in ("yes", "**no**", "—"), what
    for row in cells:  # rows other benchmarks add must carry a measurement too
        assert NUMBER.search(row[1]), row[0]


def _table_rows(stdout: str) -> list[list[str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("| ")]
    assert lines and lines[0] == "| what | measured | reference (same run) | ratio | target | met |", stdout[-3000:]
    return [[cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[1:]]


@pytest.mark.slow
def test_viewer_benchmark_runs_alone_in_chromium() -> None:
    """bench/viewer/bench_viewer.py --quick drives the real viewer in chromium and prints its four rows."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "viewer" / "bench_viewer.py"), "--quick"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = _table_rows(done.stdout)
    prefixes = ["6. viewer: source filter change", "6. viewer: the same click's own work",
                "6. viewer: frame rate while following", "6. viewer: JS heap held"]
    assert len(rows) == len(prefixes), rows
    assert all(row[0].startswith(prefix) for row, prefix in zip(rows, prefixes)), rows
    for what, measured, reference, ratio, target, met in rows:
        assert NUMBER.search(measured) and NUMBER.search(reference) and NUMBER.search(ratio), what
