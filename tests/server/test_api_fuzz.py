"""The HTTP API keeps to its OpenAPI document under schemathesis: a real `jupyter server`, the served
document, every check, and no failure or server error allowed.

schemathesis (`st`) runs as a subprocess against the server: it generates requests from the
document (valid ones and ones that break it), checks each answer against the document, and follows
the links between operations (a task created, then read, cancelled, deleted). Its JSON report gives
the figures and its JUnit report the failures, each with the curl command that reproduces it.

NBTASKLOG_FUZZ_SEED picks another seed (the default one keeps CI runs alike, as Hypothesis' CI
profile does); NBTASKLOG_FUZZ_SECONDS another time budget. The figures go to tests/reliability.py's
report under "api_fuzz" (written when NBTASKLOG_RELIABILITY_REPORT names a file).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import reliability
import schemathesis
from servers import JupyterServer

pytestmark = pytest.mark.slow

ST = Path(sys.executable).parent / "st"
SECONDS = int(os.environ.get("NBTASKLOG_FUZZ_SECONDS", "100"))  # st's budget; the server takes ~10 s more
SEED = os.environ.get("NBTASKLOG_FUZZ_SEED", "20261201")
MIN_CASES = 1000

# Where a schema-valid request may still be refused, and why (schemathesis' positive_data_acceptance
# otherwise wants 2xx there; a 5xx is left to not_a_server_error). Every other check runs on these
# operations as on the rest.
CONFIG = """
# The fuzzer's HTTP client cannot open a WebSocket: every request it sends to a socket path is a
# plain GET, which is refused with the documented 400 ("open this path with a WebSocket client").
[[operations]]
include-path-regex = "/stream$"
checks.positive_data_acceptance.expected-statuses = [400, "5xx"]

# No schema tells a query that parses from one that does not: a query the document allows may be
# refused as bad SQL (400), or while as many queries as the server allows are running (429).
[[operations]]
include-path = "/nbtasklog/api/sql"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400, 429, "5xx"]
"""

# A request line of the server's log (jupyter-server logs each request it answered, with its status).
REQUEST_LOG = re.compile(r"\] (\d{3}) ([A-Z]+) (/nbtasklog/api/\S*)")


def seed_tasks(server: JupyterServer) -> None:
    """Tasks for the generated ids and the links to find: two finished, one cancelled, one still running.

    Only dashboard_backup: the fuzzer reuses the plugin names it reads in answers, and a task of
    high_volume or legacy_cleanup with the parameters it makes up would keep both cores busy.
    """
    for seed in (1, 2):
        task = server.post("nbtasklog/api/tasks", {"plugin": "dashboard_backup", "params": {"dashboards": 3, "delay": 0, "seed": seed}})
        server.wait_finished(task["id"])
    for cancel in (True, False):
        task = server.post("nbtasklog/api/tasks", {"plugin": "dashboard_backup", "params": {"dashboards": 1_000_000, "delay": 0.5}})
        if cancel:
            server.post(f"nbtasklog/api/tasks/{task['id']}/cancel", {})
            server.wait_finished(task["id"])


def served_document(server: JupyterServer) -> dict[str, Any]:
    request = urllib.request.Request(server.url + "nbtasklog/api/openapi.json",
                                     headers={"Authorization": f"token {server.token}"})
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


def junit_failures(path: Path) -> list[str]:
    """Each failure of the JUnit report: the operation, then schemathesis' text (what, the answer, the curl command)."""
    return [f"{case.get('name')}:\n{failure.text or failure.get('message')}"
            for case in ET.parse(path).getroot().iter("testcase") for failure in case.iter("failure")]


def operations_run(path: Path) -> set[str]:
    return {case.get("name") for case in ET.parse(path).getroot().iter("testcase")}


def server_requests(log: str) -> list[tuple[int, str, str]]:
    return [(int(status), method, path) for status, method, path in REQUEST_LOG.findall(log)]


@pytest.fixture
def fuzzed_server(tmp_path: Path) -> Any:
    # DEBUG: the server logs every request it answers, so the count of 5xx is the server's own.
    # max_workers: the tasks the fuzzer starts (with parameters it makes up) take at most two threads.
    server = JupyterServer(tmp_path / "jupyter", tmp_path / "store" / "logs.duckdb",
                           ["--ServerApp.log_level=DEBUG", "--NbTaskLogApp.max_workers=2"])
    try:
        yield server.start()
    finally:
        server.stop()


def test_api_keeps_to_its_openapi_document(fuzzed_server: JupyterServer, tmp_path: Path) -> None:
    """schemathesis, every check, ≥ 1,000 generated cases against a real server: no failure, no 5xx, no traceback."""
    server = fuzzed_server
    document = served_document(server)
    schemathesis.openapi.from_dict(document).validate()  # a valid OpenAPI 3.0 document, or this raises
    seed_tasks(server)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    reports = tmp_path / "reports"
    command = [
        str(ST if ST.exists() else shutil.which("st")), "--no-color", "--config-file", str(config), "run",
        server.url + "nbtasklog/api/openapi.json", "--header", f"Authorization: token {server.token}",
        "--checks", "all",
        # An Arrow IPC body the document cannot describe; tests/server/test_rest.py covers ingest.
        "--exclude-path", "/nbtasklog/api/ingest",
        "--max-examples", "30", "--max-time", str(SECONDS), "--seed", SEED, "--request-timeout", "20",
        "--report", "json,junit", "--report-dir", str(reports),
    ]
    started = time.monotonic()
    # cwd: schemathesis keeps its example database and cache in the working directory.
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=SECONDS + 120)
    seconds = time.monotonic() - started
    output = run.stdout + run.stderr
    (summary_path,) = reports.glob("json-*.json")
    (junit_path,) = reports.glob("junit-*.xml")
    summary = json.loads(summary_path.read_text())
    failures = junit_failures(junit_path)
    log = server.log_path.read_text(errors="replace")
    requests = server_requests(log)
    server_errors = [f"{status} {method} {path}" for status, method, path in requests if status >= 500]
    figures = {
        "schemathesis": summary["schemathesis_version"],
        "seed": str(summary["seed"]),
        "operations": summary["operations"]["tested"],
        "cases": summary["test_cases"]["generated"],
        "requests": len(requests),
        "failures": summary["test_cases"]["unique_failures"],
        "errors": len(summary["errors"]),
        "server_errors": len(server_errors),
        "seconds": round(seconds, 1),
    }
    reliability.record("api_fuzz", **figures)
    print(json.dumps(figures))

    assert not failures and summary["test_cases"]["unique_failures"] == 0, (
        f"{len(failures)} disagreement(s) between the API and its document (seed {summary['seed']}):\n\n"
        + "\n\n".join(failures))
    assert not summary["errors"], f"schemathesis could not test everything:\n{json.dumps(summary['errors'], indent=1)}\n{output[-4000:]}"
    assert not server_errors, f"server errors: {server_errors[:20]}"
    assert "Traceback" not in log and "Uncaught exception" not in log, server.output()
    assert run.returncode == 0, output[-4000:]
    # Every operation but ingest, and the document's own (schemathesis leaves out the URL it loads).
    documented = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item
                  if method != "parameters" and not path.endswith(("/ingest", "/openapi.json"))}
    assert documented <= operations_run(junit_path), documented - operations_run(junit_path)
    assert figures["cases"] >= MIN_CASES, f"only {figures['cases']} cases in {SECONDS} s:\n{output[-2000:]}"
