"""The store's schema brought to this release's revision on first open, by Alembic (store/migrations/).

A store of release 0.1.0 (before Alembic: its own `nbtasklog_schema` table) is taken as revision 0001
and upgraded in place; a store written by a newer release than this one is refused, since this code
would misread what it does not know.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.ddl.impl import DefaultImpl
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect, text

MIGRATIONS = Path(__file__).with_name("migrations")
# PostgreSQL: one process migrates at a time (two servers starting at once on a new store).
_LOCK_KEY = 0x6E62746C  # "nbtl"


class AlembicDuckDBImpl(DefaultImpl):
    """Alembic's operations for DuckDB (duckdb-engine): standard DDL, in a transaction."""

    __dialect__ = "duckdb"
    transactional_ddl = True


class StoreVersionError(RuntimeError):
    """The store's schema is newer than this release knows (or unknown): it is not opened."""


def _config(conn: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head() -> str:
    """The revision this release writes."""
    revision = _script().get_current_head()
    assert revision is not None
    return revision


def upgrade(conn: Any) -> None:
    """Bring the schema behind `conn` (a connection in a transaction) to this release's revision."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    config = _config(conn)
    current = MigrationContext.configure(conn).get_current_revision()
    if current is None and inspect(conn).has_table("tasks"):
        command.stamp(config, "0001")  # a 0.1.0 store: its tables are revision 0001's
        current = "0001"
    if current is not None:
        try:
            _script().get_revision(current)
        except CommandError:
            raise StoreVersionError(
                f"the store's schema is at revision {current!r}, written by a newer nbtasklog than this one "
                f"(which knows up to {head()!r}); upgrade nbtasklog to open it"
            ) from None
    if current != head():
        command.upgrade(config, "head")
