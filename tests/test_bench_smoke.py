"""The benchmark code works: `bench/run.py --quick` runs every benchmark and prints a full table.

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
    "1. per call": 2,
    "2. end to end": 1,
    "3. task overhead": 1,
    "4. retrieval": 5,
    "5. memory": 2,
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
