"""A throwaway PostgreSQL server for the tests: Debian's binaries, initdb into a temporary folder,
reached only through a Unix socket in that folder (no TCP port: nothing to race for, nothing
reachable from outside), stopped by whoever started it. `./dev test` installs PostgreSQL when it is
missing. As root, the server runs as the `postgres` user (initdb refuses root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (./dev test does)")
    return Path(initdb).resolve().parent


class PostgresServer:
    """One PostgreSQL cluster; `url()` makes a fresh database on it."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.home = Path(tempfile.mkdtemp(prefix="nbtasklog-pg-"))
        self.data = self.home / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.home, "postgres", "postgres")

    def _run(self, *args: str) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.home / "server.log"
            raise RuntimeError(f"{' '.join(args[:2])} failed:\n{done.stdout}\n{done.stderr}\n"
                               f"{log.read_text() if log.exists() else ''}")

    def init(self) -> PostgresServer:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-locale")
        return self.start()

    def start(self) -> PostgresServer:
        # -h '': no TCP; -k: the Unix socket in our folder, not /var/run/postgresql; -F: no fsync
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.home / "server.log"), "-w", "-t", "60",
                  "-o", f"-h '' -k {self.home} -F", "start")
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.home}"

    def new_database(self, role: str | None = None) -> str:
        """The URL of a new, empty database on this server: as the superuser `postgres`, or as `role`
        (made if new: a login without superuser or file rights), which then owns the database."""
        import sqlalchemy

        name = "t_" + uuid.uuid4().hex[:12]
        engine = sqlalchemy.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                if role is not None and conn.exec_driver_sql("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).first() is None:
                    conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
                conn.exec_driver_sql(f"CREATE DATABASE {name}" + (f" OWNER {role}" if role else ""))
        finally:
            engine.dispose()
        url = self.url(name)
        return url.replace("//postgres@", f"//{role}@") if role else url

    def remove(self) -> None:
        """Stop the server (if it runs) and delete its files."""
        try:
            self.stop()
        except RuntimeError:
            pass  # not running
        shutil.rmtree(self.home, ignore_errors=True)


def mark_interrupted(url: str, task_id: str) -> None:
    """Mark the task INTERRUPTED in the database `url` names, as another process's Store.recover does once
    the task's owner was silent past its lease; the owner is not told."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("update tasks set status = 'INTERRUPTED', finished_at = now() where id = %s",
                                 (task_id,))
    finally:
        engine.dispose()
