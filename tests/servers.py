"""Real `jupyter server` subprocesses for the tests that need whole servers: `JupyterServer` (its own Jupyter
directories, on 127.0.0.1, REST with its token) and the `make_server` fixture, which stops every server
it started."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from procs import free_port

VENV_BIN = Path(sys.executable).parent
START_TIMEOUT = 45.0  # a cold `jupyter server` with JupyterLab installed starts in a few seconds


class JupyterServer:
    """A `jupyter server` subprocess with its own Jupyter directories, on 127.0.0.1."""

    def __init__(self, home: Path, db: Path, args: list[str] | None = None) -> None:
        self.home = home
        self.db = db
        self.args = args or []
        self.token = uuid.uuid4().hex
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.env = {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_DATA_DIR": str(home / "data"),
            "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
            "IPYTHONDIR": str(home / "ipython"),
            "NBTASKLOG_DB": str(db),
        }
        for name in ("NBTASKLOG_SERVER_URL", "NBTASKLOG_SERVER_TOKEN", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH"):
            self.env.pop(name, None)
        (home / "root").mkdir(parents=True, exist_ok=True)
        self.log_path = home / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> JupyterServer:
        jupyter = shutil.which("jupyter", path=str(VENV_BIN)) or "jupyter"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [jupyter, "server", "--no-browser", "--ip", "127.0.0.1", "--port", str(self.port), "--port-retries", "0",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.home / 'root'}", "--allow-root", *self.args],
            env=self.env, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.home,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"jupyter server exited ({self.proc.returncode}):\n{self.output()}")
            try:
                health = self.get("nbtasklog/api/health")
                assert health["database"].endswith(str(self.db)), health
                return self
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"jupyter server did not answer within {START_TIMEOUT} s:\n{self.output()}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server and wait for it to exit; returns its exit code (kills it past the timeout)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"jupyter server ignored signal {sig} for {timeout} s:\n{self.output()}") from None
        finally:
            self.log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    # -- REST (blocking; these tests have no server in their own loop) --
    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise ConnectionError(f"GET {path}: {status} {body[:300]!r}")
        return json.loads(body)

    def post(self, path: str, body: Any) -> Any:
        status, data = self.request("POST", path, body)
        assert status in (200, 201), (path, status, data)
        return json.loads(data)

    def wait_finished(self, task_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            row = self.get(f"nbtasklog/api/tasks/{task_id}")
            if row["status"] not in ("PENDING", "RUNNING"):
                return row
            assert time.monotonic() < deadline, f"task {task_id} still {row['status']} after {timeout} s"
            time.sleep(0.05)

    def all_logs(self, task_id: str) -> list[dict[str, Any]]:
        """Every record of the task, walking the keyset pages."""
        records: list[dict[str, Any]] = []
        while True:
            page = self.get(f"nbtasklog/api/tasks/{task_id}/logs?limit=100000&after={records[-1]['seq'] if records else 0}")
            records += page["records"]
            if not page["has_more"]:
                return records


@pytest.fixture
def make_server(tmp_path: Path) -> Any:
    """Start `jupyter server` subprocesses; every one is stopped at the end of the test."""
    started: list[JupyterServer] = []

    def make(db: Path, home: Path | None = None, args: list[str] | None = None) -> JupyterServer:
        server = JupyterServer(home or tmp_path / "jupyter", db, args)
        started.append(server)
        return server.start()

    yield make
    for server in started:  # SIGTERM first, so that the server shuts its kernels down too
        if server.proc is not None and server.proc.poll() is None:
            try:
                server.stop(signal.SIGTERM, timeout=20)
            except AssertionError:
                pass  # stop() killed it
