"""The commands that read and manage what the store holds: tasks, logs, delete, cleanup, settings, sql,
plugins and health."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import warnings
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from ..engine import parse_duration
from ..errors import TaskActiveError
from ..filter import make_filter
from ..record import LogRecord
from ..store.store import SQLError, sql_json, sql_rows
from ..wire import json_default
from .exits import DATABASE, INTERRUPTED, OK, CLIError
from .inputs import filter_args, resolve_task
from .output import (
    format_record,
    human_duration,
    local_time,
    note,
    out,
    printable,
    record_json,
    table,
    task_duration,
)
from .session import Session


def cmd_tasks(args: argparse.Namespace, session: Session) -> int:
    statuses = [s.strip().upper() for s in args.status.split(",") if s.strip()] if args.status else None
    engine = session.engine()
    try:
        infos = engine.task_page(status=statuses, plugin=args.plugin, limit=args.limit, user=args.user)["tasks"]
    except ValueError as error:
        raise CLIError(f"{error} (statuses: PENDING, RUNNING, SUCCESS, FAILED, CANCELLED, INTERRUPTED)") from None
    if args.format == "jsonl":
        for info in infos:
            out(json.dumps(dict(info, duration=task_duration(info)), ensure_ascii=False, default=json_default))
        return OK
    if not infos:
        out("No tasks." if statuses or args.plugin or args.user
            else f"No tasks yet. Try: {session.command_hint('demo')}")
        return OK
    rows = [[info["id"], info["plugin"], info["status"], local_time(info["created_at"]),
             human_duration(task_duration(info)), str(info.get("record_count") or 0), info.get("username") or "-"]
            for info in infos]
    table(["ID", "PLUGIN", "STATUS", "CREATED", "DURATION", "RECORDS", "USER"], rows,
          paint={2: lambda cell, width: session.colours.status(cell, width),
                 5: lambda cell, width: cell.rjust(width)})
    if len(infos) == args.limit:
        note(f"(the newest {args.limit} shown; --limit N for more)")
    return OK


def cmd_logs(args: argparse.Namespace, session: Session) -> int:
    if args.follow and args.limit:
        raise CLIError("--limit cannot be combined with --follow (use --tail N to start from the last N)")
    make_filter(**filter_args(args))  # bad filters fail before the database is opened
    engine = session.engine()
    task_id = resolve_task(session, args.task)
    emit = (lambda r: out(record_json(r), flush=args.follow)) if args.format == "jsonl" else \
        (lambda r: out(format_record(session.colours, r), flush=args.follow))
    last = 0
    shown = 0
    if args.tail:
        flt = make_filter(order="desc", limit=args.tail, **filter_args(args))
        records: Iterable[LogRecord] = reversed(engine.logs(task_id, flt))
    elif args.limit:
        records = engine.logs(task_id, make_filter(limit=args.limit, **filter_args(args)))
    elif args.follow:
        records = engine.follow(task_id, make_filter(**filter_args(args)))
    else:
        flt = make_filter(**filter_args(args))
        records = engine.history(task_id, flt, flt.after_seq or 0)  # page by page: any size of log
    try:
        for record in records:
            last = record.seq
            shown += 1
            emit(record)
        if args.follow and args.tail:
            for record in engine.follow(task_id, make_filter(**dict(filter_args(args), after=last or args.after))):
                shown += 1
                emit(record)
    except KeyboardInterrupt:
        return INTERRUPTED  # stop following; the task itself goes on
    if not shown and args.format == "text":
        note("(no matching records)")
    return OK


def cmd_delete(args: argparse.Namespace, session: Session) -> int:
    engine = session.engine()
    task_id = resolve_task(session, args.task)
    info = engine.task_info(task_id)
    try:
        engine.delete_task(task_id)
    except TaskActiveError as error:
        raise CLIError(str(error)) from None
    except RuntimeError as error:  # the database went away between opening and deleting
        raise CLIError(str(error), DATABASE) from None
    count = info.get("record_count") or 0
    out(printable(f"Deleted task {task_id} ({info['plugin']}, {info['status']}) and its {count} log record{'s' * (count != 1)}."))
    return OK


def cmd_cleanup(args: argparse.Namespace, session: Session) -> int:
    try:
        duration = parse_duration(args.older_than)
    except ValueError as error:
        raise CLIError(f"--older-than: {error}") from None
    removed = session.engine().cleanup(duration, args.user)
    out(f"Removed {len(removed)} finished task{'s' * (len(removed) != 1)} (with their logs) "
        f"that ended more than {args.older_than} ago.")
    return OK


def cmd_settings(args: argparse.Namespace, session: Session) -> int:
    changes: dict[str, Any] = {}
    if args.log_level is not None:
        changes["log_level"] = args.log_level
    if args.task_log_level is not None:
        changes["task_log_level"] = args.task_log_level
    if args.belief_scope is not None:
        changes["belief_scope_enabled"] = args.belief_scope == "on"
    engine = session.engine()
    if changes:
        try:
            settings = engine.update_settings(**changes)
        except ValueError as error:
            raise CLIError(str(error)) from None
        out("Settings updated (effective at once, also for running tasks):")
    else:
        settings = engine.settings
    rows = [
        ("log_level", settings.log_level.name, "nbtasklog's own application log (--log-level)"),
        ("task_log_level", settings.task_log_level.name, "what tasks persist; below it a call is dropped (--task-log-level)"),
        ("belief_scope_enabled", "on" if settings.belief_scope_enabled else "off",
         "belief_scope Entry/Exit/Coherence traces, at DEBUG (--belief-scope)"),
    ]
    for name, value, what in rows:
        out(f"{name:<21} {value:<8} {what}")
    return OK


def cmd_sql(args: argparse.Namespace, session: Session) -> int:
    engine = session.engine()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = engine.sql(args.query, arrow=True, max_rows=args.max_rows)
        except SQLError as error:
            raise CLIError(f"SQL refused: {error}") from None
    truncated = any("cut to the first" in str(w.message) for w in caught)
    names = result.column_names
    rows = sql_rows(result)  # lists: a repeated column name keeps its column
    if args.format == "jsonl":
        keys = [json.dumps(key, ensure_ascii=False) for key in distinct_names(names)]
        for row in rows:
            out("{" + ", ".join(f"{key}: {sql_json(value)}" for key, value in zip(keys, row)) + "}")
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(names)
        for row in rows:
            writer.writerow(["" if value is None else _cell(value, None) for value in row])
    else:
        table(list(names), [[_cell(value, 80) for value in row] for row in rows])
        note(f"({len(rows)} row{'s' * (len(rows) != 1)})")
    if truncated:
        note(f"(cut to the first {args.max_rows} rows; --max-rows N for more)")
    return OK


def distinct_names(names: list[str]) -> list[str]:
    """Column names as JSON object keys: a name seen before gets the first free suffix _2, _3, ...
    (free: no column has it and no earlier one got it), so SELECT 1 AS a, 2 AS a, 3 AS a_2 gives a, a_3, a_2."""
    taken = set(names)
    keys: list[str] = []
    for name in names:
        key, number = name, 2
        while key in keys:
            while f"{name}_{number}" in taken or f"{name}_{number}" in keys:
                number += 1
            key = f"{name}_{number}"
        keys.append(key)
    return keys


def _cell(value: Any, width: int | None) -> str:
    """A value of sql_rows() as table or CSV text; for the table (`width`) printable and cut to that width."""
    if value is None:
        text = "NULL"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, datetime):
        text = value.isoformat(sep=" ")
    elif isinstance(value, (bytes, bytearray)):
        text = bytes(value).hex()
    elif isinstance(value, (dict, list, tuple)):  # MAPs, STRUCTs, lists, INTERVALs: their JSON
        text = sql_json(value)
    else:
        text = str(value)
    if width is not None:
        text = printable(text)
        if len(text) > width:
            text = text[: width - 3] + "..."
    return text


def cmd_plugins(args: argparse.Namespace, session: Session) -> int:
    engine = session.engine()
    plugins = engine.plugins()
    if not plugins:
        out("No plugins registered.")
        return OK
    width = max(len(printable(p["name"])) for p in plugins)
    for plugin in plugins:
        name = printable(plugin["name"])
        out(f"{session.colours.paint(name.ljust(width), '1')}  {printable(plugin.get('description') or '')}".rstrip())
        properties = (plugin.get("params_schema") or {}).get("properties") or {}
        if properties:
            described = []
            for name, spec in properties.items():
                default = f"={json.dumps(spec['default'])}" if isinstance(spec, dict) and "default" in spec else ""
                described.append(f"{name}{default}")
            out(f"{'':{width}}  params: {printable(', '.join(described))}")
    return OK


def cmd_health(args: argparse.Namespace, session: Session) -> int:
    engine = session.engine(require_available=False)
    health = engine.health()
    values = dict(health.to_dict(), database=engine.control.where())
    if args.format == "json":
        out(json.dumps(values, ensure_ascii=False))
    else:
        paint = session.colours.paint
        available = paint("yes", "32") if health.database_available else paint("no", "1;31")
        rows = [("database", values["database"])]
        if health.server is not None:  # the server's own database, which this process's records go to
            rows.append(("server's database", str(health.server.get("database", "?"))))
        rows += [
            ("available", available),
            ("pending records", str(health.pending)),
            ("spilled to disk", str(health.spilled)),
            ("written (this process)", str(health.flushed_total)),
            ("last write", local_time(health.last_flush_at) or "-"),
            ("last error", f"{health.last_error} ({local_time(health.last_error_at)})" if health.last_error else "-"),
        ]
        for name, value in rows:
            out(f"{name:<23} {value if name == 'available' else printable(value)}")
    return OK if health.database_available else DATABASE
