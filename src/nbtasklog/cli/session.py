"""What a command works with: the engine for the database it names (through the Jupyter server that owns
it, when one runs), opened on first use."""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbtasklog

from ..engine import Engine, default_database
from ..remote import discover_server
from .exits import DATABASE, CLIError, one_line
from .output import Colours


class Session:
    """The engine (opened on first use, closed by main), the colours of the output and the --db given."""

    def __init__(self, db: str | None, colour: bool) -> None:
        self.db = db
        self.colours = Colours(colour)
        self._engine: Engine | None = None

    def engine(self, require_available: bool = True) -> Engine:
        """The engine, opened on first use; unless `require_available` is False (health reports it
        instead), a database that cannot be used is a CLIError with exit code 4."""
        if self._engine is None:
            self._engine = open_engine(self.db, require_available)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.close()

    def command_hint(self, *words: str) -> str:
        """A command line the user can paste (with --db when one was given)."""
        prefix = ["nbtasklog"] + (["--db", self.db] if self.db else [])
        return " ".join(shlex.quote(w) for w in prefix + list(words))


@contextmanager
def _quiet_buffer_log() -> Iterator[None]:
    """Keep the write buffer's retry warnings off the terminal while we find out whether the database opens.

    When it does not, the user gets one clear error from us instead of the flusher's retry chatter.
    """
    logger = logging.getLogger("nbtasklog.buffer")
    saved = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = saved


def open_engine(db: str | None, require_available: bool = True) -> Engine:
    """The engine for `db`: a running Jupyter server that owns the database if there is one, else the store itself."""
    target = db
    if target is None or not target.startswith(("http://", "https://")):
        database = target or default_database()
        try:
            connection = discover_server(database) if _servers_may_run() else None
        except Exception:  # discovery is a convenience; a broken runtime dir must not stop the command
            connection = None
        if connection is not None:
            target = connection.url
            token = connection.token
        else:
            target, token = database, None
    else:
        token = None
    with _quiet_buffer_log():
        try:
            engine = nbtasklog.connect(target, token=token, instance_kind="cli")
        except Exception as error:
            raise CLIError(f"cannot open the database {target}: {one_line(error)}", DATABASE) from None
        health = engine.health()
        if not health.database_available and require_available:
            engine.close(timeout=0)
            hint = ""
            if "lock" in (health.last_error or "").lower():
                hint = (" (another process has it open, and a DuckDB file has one writer: stop that process, "
                        "or run Jupyter with the nbtasklog extension on this database and the CLI goes through it)")
            raise CLIError(f"cannot use the database {engine.control.where()}: {health.last_error}{hint}", DATABASE)
    return engine


def _servers_may_run() -> bool:
    """False when no Jupyter server can be running: saves importing jupyter_server (over a second)."""
    if os.environ.get("NBTASKLOG_SERVER_URL"):
        return True
    from jupyter_core.paths import jupyter_runtime_dir

    try:
        return any(Path(jupyter_runtime_dir()).glob("jpserver-*.json"))
    except OSError:
        return True
