"""The viewer in the browser (issue 4, §5): filter click-to-rendered, live append fps, heap per 100,000 records.

Builds bench/viewer/page.ts with esbuild and drives it in Debian's chromium (headless) through Playwright.
    python bench/viewer/bench_viewer.py [--records 100000]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--enable-precise-memory-info", "--js-flags=--expose-gc"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        subprocess.run(["npx", "--no-install", "esbuild", "bench/viewer/page.ts", "--bundle", "--format=iife",
                        f"--outfile={out / 'page.js'}"], cwd=ROOT, check=True, capture_output=True)
        (out / "index.html").write_text('<!doctype html><html><body style="margin:0"><div id="host" style="width:1200px;height:760px" class="ntl-fill"></div>'
                                        '<script src="page.js"></script></body></html>')
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto((out / "index.html").as_uri())
            page.wait_for_function("window.bench !== undefined")
            page.evaluate("gc()")
            before = page.evaluate("bench.heap()")
            load = page.evaluate(f"bench.load({args.records})")
            page.evaluate("gc()")
            after = page.evaluate("bench.heap()")
            flt = page.evaluate("bench.sourceFilter(15)")
            live = page.evaluate("bench.live(10000, 5)")
            browser.close()
    n = args.records
    print(f"| viewer in headless chromium | {n:,} records |")
    print("|---|---|")
    print(f"| load {n:,} records (10,000 per batch) to first frame | {load['ms']:.0f} ms, {load['rows']} rows in the DOM |")
    print(f"| source filter change: script work, median | {flt['workMedian']:.1f} ms |")
    print(f"| source filter change: click to painted (next frame + 1), median | narrowing {flt['narrowMedian']:.1f} ms, widening {flt['widenMedian']:.1f} ms |")
    print(f"| live append 10,000 records/s while following, 5 s | {live['fps']:.0f} fps (worst frame {live['worstFrameMs']:.0f} ms), "
          f"{live['rows']} rows in the DOM, newest shown: {live['lastShown'] == live['newest']} |")
    if before is not None and after is not None:
        print(f"| JS heap held per 100,000 records | {(after - before) / n * 100_000 / 1e6:.1f} MB |")


if __name__ == "__main__":
    main()
