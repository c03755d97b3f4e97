"""The tables (tasks, task_logs, settings, instances) as queries see them, and the per-dialect JSON functions
filters compile to. The schema itself is made and changed by the migrations (store/migrations/), which
a test keeps equal to these declarations.

Tables are declared in code, never reflected: duckdb-engine's reflection fails on SQLAlchemy 2.1.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Integer,
    MetaData,
    Sequence,
    String,
    Table,
    Text,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import Boolean, UserDefinedType

from ..record import KEY_SEGMENT

metadata = MetaData()


class JSONText(UserDefinedType):
    """JSON kept as text: DuckDB's JSON, PostgreSQL's JSONB, TEXT elsewhere. Values go in as str."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "TEXT"


@compiles(JSONText, "duckdb")
def _json_duckdb(element: JSONText, compiler: object, **kw: object) -> str:
    return "JSON"


@compiles(JSONText, "postgresql")
def _json_postgresql(element: JSONText, compiler: object, **kw: object) -> str:
    return "JSONB"


# DuckDB needs an explicit sequence for an integer key (it has no SERIAL).
task_log_id = Sequence("task_logs_id_seq", metadata=metadata)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("plugin", String(255), nullable=False),
    Column("params", JSONText),
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
    Column("error", Text),
    Column("progress", Float),
    Column("progress_message", Text),
    Column("log_level", String(16)),
    Column("record_count", BigInteger),
    Column("username", String(255)),  # who started it: the Jupyter user, or the OS user outside a server
    Column("owner", String(64)),  # the instance running it (instances.id) while it is active
    Column("heartbeat_at", DateTime(timezone=True)),  # its owner's last sign of life, by the database's clock
    Column("cancel_requested_at", DateTime(timezone=True)),  # another process asked its owner to cancel it
)

task_logs = Table(
    "task_logs",
    metadata,
    Column("id", BigInteger, task_log_id, primary_key=True, server_default=task_log_id.next_value()),
    Column("task_id", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("timestamp", DateTime(timezone=True), nullable=False),
    Column("level", String(16), nullable=False),
    Column("source", String(255), nullable=False),
    Column("message", Text, nullable=False),
    Column("metadata", JSONText),
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

instances = Table(
    "instances",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # server, cli, kernel, engine
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True), nullable=False),
)

LOG_COLUMNS = ("task_id", "seq", "timestamp", "level", "source", "message", "metadata")


# ---- JSON paths, per dialect -----------------------------------------------------------------
# The path is part of the statement's cache key: SQLAlchemy reuses a compiled statement for an equal
# key, and without it `meta.a=1` then `meta.b=1` ran the first path twice (seen on PostgreSQL).
_PATH_IN_CACHE_KEY = [*FunctionElement._traverse_internals, ("path", InternalTraversal.dp_plain_obj)]


class _JsonPath(FunctionElement):
    """A key path into a JSON column; each key is checked here too, since the path is written into SQL."""

    inherit_cache = True
    _traverse_internals = _PATH_IN_CACHE_KEY

    def __init__(self, column: ColumnElement, path: tuple[str, ...]) -> None:
        if not path or not all(isinstance(key, str) and KEY_SEGMENT.fullmatch(key) for key in path):
            raise ValueError(f"bad metadata key path {path!r}")
        self.path = path
        super().__init__(column)


class json_text(_JsonPath):
    """The scalar at a key path of a JSON column as text (NULL when absent, JSON null, an object or an array)."""

    type = Text()
    inherit_cache = True


class json_exists(_JsonPath):
    """True when a key path is present in a JSON column."""

    type = Boolean()
    inherit_cache = True


def _dollar_path(path: tuple[str, ...]) -> str:
    # Keys are [A-Za-z0-9_-]+ (checked by _JsonPath), so quoting each one is enough.
    return "$" + "".join(f'."{part}"' for part in path)


def _column(element: FunctionElement, compiler: object, **kw: object) -> str:
    return compiler.process(list(element.clauses)[0], **kw)  # type: ignore[attr-defined]


def _literal(compiler: object, value: str, **kw: object) -> str:
    from sqlalchemy import literal

    return compiler.process(literal(value), **kw)  # type: ignore[attr-defined]


@compiles(json_text)
def _json_text_default(element: json_text, compiler: object, **kw: object) -> str:
    # json_value gives NULL for objects and arrays (their text form differs between databases).
    return f"json_extract_string(json_value({_column(element, compiler, **kw)}, {_literal(compiler, _dollar_path(element.path), **kw)}), '$')"


@compiles(json_exists)
def _json_exists_default(element: json_exists, compiler: object, **kw: object) -> str:
    return f"json_exists({_column(element, compiler, **kw)}, {_literal(compiler, _dollar_path(element.path), **kw)})"


def _text_array(path: tuple[str, ...]) -> str:
    # Written into the SQL: a bound parameter would be sent as VARCHAR, and #> takes text[]. The
    # keys are [A-Za-z0-9_-]+ (checked by _JsonPath), so nothing needs escaping.
    return "'{" + ",".join(path) + "}'::text[]"


@compiles(json_text, "postgresql")
def _json_text_postgresql(element: json_text, compiler: object, **kw: object) -> str:
    path = _text_array(element.path)
    column = _column(element, compiler, **kw)
    return f"(CASE WHEN jsonb_typeof({column} #> {path}) IN ('object', 'array') THEN NULL ELSE {column} #>> {path} END)"


@compiles(json_exists, "postgresql")
def _json_exists_postgresql(element: json_exists, compiler: object, **kw: object) -> str:
    return f"({_column(element, compiler, **kw)} #> {_text_array(element.path)} IS NOT NULL)"
