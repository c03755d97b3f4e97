"""The `nbtasklog` command: run tasks, and read, follow, filter and manage their logs from a shell.

    nbtasklog demo                                   the example backup task, live, then a filtered view
    nbtasklog run PLUGIN [-p key=value ...] [--follow]
    nbtasklog tasks [--status S] [--plugin P] [--limit N] [--format text|jsonl]
    nbtasklog logs TASK [--level L] [--source a,b] [--search TEXT] [--meta key=value ...]
                        [--after SEQ] [--limit N | --tail N] [--follow] [--format text|jsonl]
    nbtasklog delete TASK | cleanup --older-than 30d | settings [...] | sql "SELECT ..." | plugins | health

TASK is a task id or a unique prefix of one (like git). `--db URL_OR_PATH` (before or after the
command) picks the store; without it NBTASKLOG_DB or the default DuckDB file under the Jupyter data
directory. When a Jupyter server with the extension owns that database, the command talks to the
server instead of opening the file.

Exit codes:
    0    success (for run and demo: the task ended SUCCESS)
    1    the task ended FAILED, CANCELLED or INTERRUPTED; or an unexpected internal error
    2    bad input: usage, unknown plugin/level/status, bad filter, bad -p or --params-json,
         bad duration, SQL refused, ambiguous task prefix, deleting a task that still runs
    3    unknown task
    4    the database (or server) cannot be opened or used, e.g. locked by another process
    130  interrupted with Ctrl-C (run: the task was cancelled and has ended)
    141  stdout closed early (a pipe such as `| head`)

Errors are printed as `nbtasklog: error: <message>` on stderr, without a traceback
(set NBTASKLOG_DEBUG=1 to see one for unexpected errors).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import re
import shlex
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import nbtasklog

from .engine import Engine, TaskActiveError, UnknownTaskError, default_database, parse_duration
from .filter import MAX_LIMIT, FilterError, make_filter
from .levels import LEVEL_NAMES, parse_level
from .plugins import UnknownPluginError
from .record import LogRecord
from .remote import ServerError, discover_server
from .store.store import SQLError, sql_json, sql_rows
from .task import Task
from .wire import json_default

OK, TASK_FAILED, USAGE, UNKNOWN_TASK, DATABASE, INTERRUPTED, BROKEN_PIPE = 0, 1, 2, 3, 4, 130, 141

EXIT_CODES_HELP = """\
exit codes:
  0    success (run, demo: the task ended SUCCESS)
  1    the task ended FAILED, CANCELLED or INTERRUPTED; or an unexpected internal error
  2    bad input (usage, unknown plugin/level/status, bad filter, -p, duration, SQL refused,
       ambiguous task prefix, deleting a task that still runs)
  3    unknown task
  4    the database or server cannot be opened or used (e.g. locked by another process)
  130  interrupted with Ctrl-C (run: the task was cancelled first)

TASK is a task id or a unique prefix of one. Start with: nbtasklog demo"""

LEVEL_COLOURS = {"DEBUG": "2", "INFO": "32", "WARNING": "33", "ERROR": "1;31"}
STATUS_COLOURS = {"SUCCESS": "32", "FAILED": "1;31", "CANCELLED": "33", "INTERRUPTED": "33",
                  "RUNNING": "36", "PENDING": "2"}
SOURCE_WIDTH = 14  # "[superset_api]": messages of the usual sources line up


class CLIError(Exception):
    """A problem to report in one line, with the exit code it stands for."""

    def __init__(self, message: str, code: int = USAGE) -> None:
        super().__init__(message)
        self.code = code


# ---- argument parsing ---------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors are raised (reported as `nbtasklog: error: ...`, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise CLIError(f"{message} (see '{self.prog} --help')", USAGE)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_LIMIT}, not {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not 0 <= value <= 60:
        raise argparse.ArgumentTypeError(f"must be between 0 and 60 seconds, not {text}")
    return value


def build_parser() -> _Parser:
    common = argparse.ArgumentParser(add_help=False)
    # Also accepted after the command (`nbtasklog logs ID --db x.duckdb`); SUPPRESS keeps the value
    # given before the command when it is not repeated after it.
    common.add_argument("--db", metavar="URL_OR_PATH", default=argparse.SUPPRESS,
                        help="DuckDB file, SQLAlchemy URL or http(s) URL of a Jupyter server with the extension "
                             "(default: $NBTASKLOG_DB, else nbtasklog/nbtasklog.duckdb in the Jupyter data directory)")
    common.add_argument("--color", choices=("auto", "always", "never"), default=argparse.SUPPRESS,
                        help="colour levels and statuses: auto (when stdout is a terminal and NO_COLOR is unset)")

    parser = _Parser(
        prog="nbtasklog", parents=[common],
        description="Run nbtasklog tasks and read, follow and filter their logs.",
        epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"nbtasklog {nbtasklog.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    def command(name: str, handler: Callable[[argparse.Namespace, _Session], int], help: str) -> _Parser:
        sub = commands.add_parser(name, parents=[common], help=help, description=help,
                                  epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(handler=handler)
        return sub

    p = command("demo", cmd_demo, "run the example dashboard_backup task with live output, then show a filtered view")
    p.add_argument("--dashboards", type=_positive, default=8, help="how many dashboards to back up (default 8)")
    p.add_argument("--delay", type=_seconds, default=0.1, help="seconds per simulated API call (default 0.1)")

    p = command("run", cmd_run, "run a plugin as a task in this process and wait for it")
    p.add_argument("plugin", metavar="PLUGIN", help="registered plugin name (see: nbtasklog plugins)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter; VALUE is parsed as JSON when it is JSON (3, true, null, [1,2]), else text")
    p.add_argument("--params-json", metavar="JSON", help="parameters as one JSON object (-p values override)")
    p.add_argument("--log-level", metavar="LEVEL", help="what this task persists (overrides the task_log_level setting)")
    p.add_argument("-f", "--follow", action="store_true", help="print the task's records as they come")

    p = command("tasks", cmd_tasks, "list tasks, newest first")
    p.add_argument("--status", help="only these statuses (comma-separated: SUCCESS,FAILED,...)")
    p.add_argument("--plugin", help="only tasks of this plugin")
    p.add_argument("--limit", type=_positive, default=50, help="at most N tasks (default 50)")
    p.add_argument("--format", choices=("text", "jsonl"), default="text")

    p = command("logs", cmd_logs, "print a task's log records, filtered")
    p.add_argument("task", metavar="TASK", help="task id or a unique prefix of it")
    p.add_argument("--level", help="that level and above: DEBUG, INFO, WARNING, ERROR")
    p.add_argument("--source", metavar="A,B", help="only these sources (comma-separated)")
    p.add_argument("--search", metavar="TEXT", help="only messages containing TEXT (case-insensitive)")
    p.add_argument("--meta", action="append", metavar="KEY=VALUE",
                   help="metadata condition: key=value, nested a.b=value, or a bare key (it exists); repeatable")
    p.add_argument("--after", metavar="SEQ", help="only records after sequence number SEQ")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--limit", type=_positive, help="the first N matching records")
    group.add_argument("--tail", type=_positive, metavar="N", help="the last N matching records")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new records until the task ends")
    p.add_argument("--format", choices=("text", "jsonl"), default="text",
                   help="text: one line per record; jsonl: one JSON object per record")

    p = command("delete", cmd_delete, "delete a finished task and all its log records")
    p.add_argument("task", metavar="TASK", help="task id or a unique prefix of it")

    p = command("cleanup", cmd_cleanup, "delete finished tasks (and their logs) older than a duration")
    p.add_argument("--older-than", required=True, metavar="DURATION", help="e.g. 30d, 12h, 15m, 45s, 1w")

    p = command("settings", cmd_settings, "show the logging settings, or change them (effective at once)")
    p.add_argument("--log-level", metavar="LEVEL", help="nbtasklog's own application log level")
    p.add_argument("--task-log-level", metavar="LEVEL", help="what tasks persist; below it a call is dropped")
    p.add_argument("--belief-scope", choices=("on", "off"), help="belief_scope traces (DEBUG level) on or off")

    p = command("sql", cmd_sql, "run one read-only SQL query over the tables tasks and task_logs")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")
    p.add_argument("--max-rows", type=_positive, default=1000, help="at most N rows (default 1000)")

    command("plugins", cmd_plugins, "list the registered plugins")

    p = command("health", cmd_health, "show the state of the way to the database (pending, spilled, errors)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    return parser


# ---- the session: engine, output, colour ------------------------------------------------------------
class _Session:
    """What a command works with: the engine (opened on first use, closed by main) and the output."""

    def __init__(self, db: str | None, colour: bool) -> None:
        self.db = db
        self.colour = colour
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

    def paint(self, text: str, code: str | None) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.colour and code else text

    def level(self, name: str, width: int = 0) -> str:
        return self.paint(name.ljust(width), LEVEL_COLOURS.get(name))

    def status(self, name: str, width: int = 0) -> str:
        return self.paint(name.ljust(width), STATUS_COLOURS.get(name))

    def command_hint(self, *words: str) -> str:
        """A command line the user can paste (with --db when one was given)."""
        prefix = ["nbtasklog"] + (["--db", self.db] if self.db else [])
        return " ".join(shlex.quote(w) for w in prefix + list(words))


def out(text: str = "", *, flush: bool = False) -> None:
    # sys.stdout is looked up each time: nbtasklog's capture may have wrapped it (writes from this,
    # the main thread, are outside any task and pass straight through).
    print(text, flush=flush)


def note(text: str) -> None:
    # Notes and errors quote task errors, plugin names and the user's own input: printable() them all.
    print(printable(text, newlines=True), file=sys.stderr)


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
            engine = nbtasklog.connect(target, token=token)
        except Exception as error:
            raise CLIError(f"cannot open the database {target}: {_one_line(error)}", DATABASE) from None
        health = engine.health()
        if not health.database_available and require_available:
            engine.close(timeout=0)
            hint = ""
            if "lock" in (health.last_error or "").lower():
                hint = (" (another process has it open, and a DuckDB file has one writer: stop that process, "
                        "or run Jupyter with the nbtasklog extension on this database and the CLI goes through it)")
            raise CLIError(f"cannot use the database {where(engine)}: {health.last_error}{hint}", DATABASE)
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


def where(engine: Engine) -> str:
    """Where the engine's records live, for people: a file path, a server URL or a database URL."""
    url = engine.store.url
    if engine.remote:
        return "the Jupyter server at " + url.render_as_string(hide_password=True).removeprefix("nbtasklog+")
    if url.get_backend_name() == "duckdb" and url.database:
        return url.database
    return url.render_as_string(hide_password=True)


# ---- formatting -------------------------------------------------------------------------------------
# What a terminal acts on instead of showing: C0 controls (ESC starts sequences that repaint the screen or
# retitle the window, CR and BS overwrite), DEL, C1 controls (CSI, OSC), and the Unicode bidi controls that
# reorder what follows (text that reads one way and is another). Tab is harmless; newline, where kept,
# is laid out by the caller.
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNPRINTABLE = re.compile(f"[{_CONTROLS}\n]")
_UNPRINTABLE_BUT_NEWLINE = re.compile(f"[{_CONTROLS}]")


def printable(text: str, *, newlines: bool = False) -> str:
    """`text` safe to print to a terminal: each control character shown as its Python escape (\\x1b, \\r,
    \\x00, \\u202e), as repr() shows it; tabs stay, and newlines too with `newlines`.

    Every text from users or records that the CLI prints (not JSON, which escapes it) goes through here.
    """
    if text.isascii() and text.isprintable():  # the usual text, at C speed: nothing to escape
        return text
    return (_UNPRINTABLE_BUT_NEWLINE if newlines else _UNPRINTABLE).sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    return repr(match.group())[1:-1]


def local_time(value: datetime | None) -> str:
    """A UTC datetime as local time to the second, for tables."""
    return "" if value is None else value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


_last_second: tuple[int, bool, str] = (-1, True, "")


def record_time(timestamp_us: int, with_date: bool) -> str:
    """Local time of a record with milliseconds; the formatted second is reused (a busy log has many records per second)."""
    global _last_second
    second, micros = divmod(timestamp_us, 1_000_000)
    if _last_second[:2] != (second, with_date):
        text = datetime.fromtimestamp(second).strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
        _last_second = (second, with_date, text)
    return f"{_last_second[2]}.{micros // 1000:03d}"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def task_duration(info: dict[str, Any]) -> float | None:
    started = info.get("started_at")
    if started is None:
        return None
    end = info.get("finished_at") or datetime.now(timezone.utc)
    return (end - started).total_seconds()


def format_record(session: _Session, record: LogRecord, with_date: bool = True) -> str:
    """One line: local time, level, [source], message, metadata as compact JSON.

    Continuation lines of a message, and a traceback in the metadata, follow indented.
    """
    stamp = record_time(record.timestamp_us, with_date)
    source = printable(record.source)
    head = f"{stamp} {session.level(printable(record.level), 7)} {('[' + source + ']').ljust(SOURCE_WIDTH)} "
    indent = " " * (len(stamp) + 1 + 7 + 1 + SOURCE_WIDTH + 1)
    first, *more = record.message.split("\n")
    line = head + printable(first)
    extra: list[str] = [indent + printable(text) for text in more]
    metadata_json = record.metadata_json
    if metadata_json is not None and '"traceback"' in metadata_json:
        metadata = json.loads(metadata_json)
        traceback = metadata.pop("traceback", None) if isinstance(metadata, dict) else None
        if isinstance(traceback, str):
            extra += [indent + printable(text) for text in traceback.rstrip("\n").split("\n")]
            metadata_json = json.dumps(metadata, ensure_ascii=False, separators=(",", ":")) if metadata else None
    if metadata_json is not None:
        line += " " + printable(metadata_json)
    return "\n".join([line, *extra])


def record_json(record: LogRecord) -> str:
    return json.dumps(record.to_dict(), ensure_ascii=False)


def table(session: _Session, headers: list[str], rows: list[list[str]],
          paint: dict[int, Callable[[str, int], str]] | None = None) -> None:
    """Columns padded to their widest cell, shown printable(); `paint` colours a column after padding (ANSI
    codes take no width)."""
    headers = [printable(h) for h in headers]
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    out("  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip())
    for row in rows:
        cells = []
        for i, (cell, width) in enumerate(zip(row, widths)):
            cells.append(paint[i](cell, width) if paint and i in paint else cell.ljust(width))
        out("  ".join(cells).rstrip())


def _one_line(error: BaseException) -> str:
    """An error's message without SQLAlchemy's wrapping and 'Background on this error' lines."""
    original = getattr(error, "orig", None)
    text = str(original if original is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# ---- input -----------------------------------------------------------------------------------------
def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def parse_value(text: str) -> Any:
    """A -p value: JSON when it is JSON (numbers, true, null, lists, objects, "quoted"), else the text itself."""
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return text
    if isinstance(value, float) and not math.isfinite(value):  # 1e999: not storable as JSON
        return text
    return value


def parse_params(params_json: str | None, pairs: Iterable[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if params_json is not None:
        try:
            value = json.loads(params_json, parse_constant=_reject_constant)
        except ValueError as error:
            raise CLIError(f"--params-json is not valid JSON: {error}") from None
        if not isinstance(value, dict):
            raise CLIError(f"--params-json must be a JSON object like '{{\"dashboards\": 3}}', not {type(value).__name__}")
        params.update(value)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"bad parameter {pair!r}: use -p key=value")
        params[key.strip()] = parse_value(raw)
    return params


def resolve_task(session: _Session, text: str) -> str:
    """The id of the task `text` names: the id itself or a prefix only one task id starts with."""
    engine = session.engine()
    prefix = text.strip().lower()
    if not prefix:
        raise CLIError("give a task id (or a unique prefix of one)")
    try:
        engine.task_info(prefix)
        return prefix
    except UnknownTaskError:
        pass
    # Ids are lowercase hex, so every id starting with `prefix` is below prefix + "g" and above every
    # other id that is: newest first under that bound, the matches come first.
    candidates = [t for t in engine.tasks(before=prefix + "g", limit=11) if t.id.startswith(prefix)]
    if not candidates:
        raise CLIError(f"unknown task {text!r} (see: {session.command_hint('tasks')})", UNKNOWN_TASK)
    if len(candidates) > 1:
        listing = []
        for task in candidates[:10]:
            try:
                info = task.info()
                listing.append(f"{task.id} ({info['plugin']}, {info['status']}, {local_time(info['created_at'])})")
            except UnknownTaskError:
                continue
        more = " and more" if len(candidates) > 10 else ""
        raise CLIError(f"task prefix {text!r} is ambiguous; it matches: {'; '.join(listing)}{more}")
    return candidates[0].id


def _filter_args(args: argparse.Namespace) -> dict[str, Any]:
    return {"level": args.level, "source": args.source, "search": args.search, "meta": args.meta, "after": args.after}


# ---- commands -----------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace, session: _Session) -> int:
    params = parse_params(args.params_json, args.param)
    level = None
    if args.log_level is not None:
        try:
            level = parse_level(args.log_level)
        except ValueError as error:
            raise CLIError(f"--log-level: {error}") from None
    engine = session.engine()
    task = start(engine, args.plugin, params, level)
    out(printable(f"Started task {task.id}: {args.plugin} {json.dumps(params, ensure_ascii=False)}"), flush=True)
    return watch(session, task, follow=args.follow)


def start(engine: Engine, plugin: str, params: dict[str, Any], level: Any = None) -> Task:
    try:
        return engine.run_task(plugin, params, log_level=level)
    except UnknownPluginError as error:
        raise CLIError(str(error)) from None
    except (TypeError, ValueError) as error:
        raise CLIError(str(error)) from None


def watch(session: _Session, task: Task, follow: bool) -> int:
    """Wait for the task (printing its records with `follow`); Ctrl-C cancels it and waits for its end."""
    last = 0

    def show_from(after: int) -> None:
        nonlocal last
        for record in task.follow(after=after or None):
            last = record.seq
            out("  " + format_record(session, record, with_date=False), flush=True)

    interrupted = False
    try:
        if follow:
            show_from(0)
        else:
            task.wait()
    except KeyboardInterrupt:
        interrupted = True
        note(f"nbtasklog: cancelling task {task.id}; waiting for it to stop (Ctrl-C again to stop waiting)")
        try:
            task.cancel()
            if follow:
                show_from(last)
            else:
                task.wait()
        except KeyboardInterrupt:
            return INTERRUPTED  # closing the engine cancels the task and marks it if it does not stop
    info = task.info()
    summary = f"Task {task.id} {session.status(info['status'])} in {human_duration(task_duration(info))}"
    try:
        stats = task.stats()
        counts = ", ".join(f"{stats['levels'][name]} {session.level(name)}"
                           for name in ("WARNING", "ERROR") if stats["levels"].get(name))
        summary += f", {stats['total']} records" + (f" ({counts})" if counts else "")
    except Exception:  # the summary is a courtesy; the status above is what matters
        pass
    out(summary, flush=True)
    if interrupted:
        return INTERRUPTED
    if info["status"] == "SUCCESS":
        return OK
    reason = f": {info['error']}" if info.get("error") else ""
    note(f"nbtasklog: error: task {task.id} {info['status']}{reason}")
    return TASK_FAILED


def cmd_demo(args: argparse.Namespace, session: _Session) -> int:
    engine = session.engine()
    params = {"dashboards": args.dashboards, "delay": args.delay, "seed": 7}
    bold = lambda text: session.paint(text, "1")  # noqa: E731
    out(bold("nbtasklog demo"))
    out(f"The example plugin dashboard_backup backs up {args.dashboards} dashboards from a simulated Superset.")
    out("It logs from three sources: plugin (its own logger), superset_api (a sub-logger made with")
    out("context.logger.with_source(\"superset_api\")) and system (the task runner). Every record goes to")
    out("this task's own log, persisted in the database, and is printed here as it comes.")
    out()
    task = start(engine, "dashboard_backup", params)
    out(f"Started task {task.id}: dashboard_backup {json.dumps(params)}", flush=True)
    code = watch(session, task, follow=True)
    if code == INTERRUPTED:
        return code

    stats = task.stats()
    out()
    levels = "   ".join(f"{session.level(name)} {stats['levels'][name]}" for name in LEVEL_NAMES if stats["levels"].get(name))
    sources = "   ".join(f"{printable(name)} {count}" for name, count in sorted(stats["sources"].items(), key=lambda kv: (-kv[1], kv[0])))
    out(f"{bold('By level ')}   {levels}")
    out(f"{bold('By source')}   {sources}")
    out()
    shown = task.logs(source="superset_api", level="WARNING")
    out(bold(f"Filtered: source superset_api, WARNING and above ({len(shown)} of {stats['total']} records)"))
    for record in shown:
        out("  " + format_record(session, record, with_date=False))
    if not shown:
        out("  (none this time)")
    dashboard = next((r.metadata["dashboard_id"] for r in shown if r.metadata and "dashboard_id" in r.metadata), 10)
    out()
    out(f"The logs are stored in {where(engine)}")
    out(bold("Next:"))
    hints = [
        (session.command_hint("logs", task.id, "--source", "superset_api"), "only the Superset API calls"),
        (session.command_hint("logs", task.id, "--level", "warning"), "warnings and errors"),
        (session.command_hint("logs", task.id, "--meta", f"dashboard_id={dashboard}"), "one dashboard's records"),
        (session.command_hint("logs", task.id, "--tail", "5", "--format", "jsonl"), "the last 5 records as JSON lines"),
        (session.command_hint("tasks"), "all tasks"),
        (session.command_hint("sql", "SELECT source, level, count(*) AS n FROM task_logs GROUP BY ALL ORDER BY ALL"),
         "SQL over every task's logs"),
    ]
    width = max(len(hint) for hint, _ in hints[:-1])
    for hint, what in hints[:-1]:
        out(f"  {hint.ljust(width)}   {what}")
    out(f"  {hints[-1][0]}")
    return code


def cmd_tasks(args: argparse.Namespace, session: _Session) -> int:
    statuses = [s.strip().upper() for s in args.status.split(",") if s.strip()] if args.status else None
    engine = session.engine()
    try:
        infos = engine.task_page(status=statuses, plugin=args.plugin, limit=args.limit)["tasks"]
    except ValueError as error:
        raise CLIError(f"{error} (statuses: PENDING, RUNNING, SUCCESS, FAILED, CANCELLED, INTERRUPTED)") from None
    if args.format == "jsonl":
        for info in infos:
            out(json.dumps(dict(info, duration=task_duration(info)), ensure_ascii=False, default=json_default))
        return OK
    if not infos:
        out("No tasks." if statuses or args.plugin else f"No tasks yet. Try: {session.command_hint('demo')}")
        return OK
    rows = [[info["id"], info["plugin"], info["status"], local_time(info["created_at"]),
             human_duration(task_duration(info)), str(info.get("record_count") or 0)] for info in infos]
    table(session, ["ID", "PLUGIN", "STATUS", "CREATED", "DURATION", "RECORDS"], rows,
          paint={2: lambda cell, width: session.status(cell, width),
                 5: lambda cell, width: cell.rjust(width)})
    if len(infos) == args.limit:
        note(f"(the newest {args.limit} shown; --limit N for more)")
    return OK


def cmd_logs(args: argparse.Namespace, session: _Session) -> int:
    if args.follow and args.limit:
        raise CLIError("--limit cannot be combined with --follow (use --tail N to start from the last N)")
    make_filter(**_filter_args(args))  # bad filters fail before the database is opened
    engine = session.engine()
    task_id = resolve_task(session, args.task)
    emit = (lambda r: out(record_json(r), flush=args.follow)) if args.format == "jsonl" else \
        (lambda r: out(format_record(session, r), flush=args.follow))
    last = 0
    shown = 0
    if args.tail:
        flt = make_filter(order="desc", limit=args.tail, **_filter_args(args))
        records: Iterable[LogRecord] = reversed(engine.logs(task_id, flt))
    elif args.limit:
        records = engine.logs(task_id, make_filter(limit=args.limit, **_filter_args(args)))
    elif args.follow:
        records = engine.follow(task_id, make_filter(**_filter_args(args)))
    else:
        flt = make_filter(**_filter_args(args))
        records = engine.history(task_id, flt, flt.after_seq or 0)  # page by page: any size of log
    try:
        for record in records:
            last = record.seq
            shown += 1
            emit(record)
        if args.follow and args.tail:
            for record in engine.follow(task_id, make_filter(**dict(_filter_args(args), after=last or args.after))):
                shown += 1
                emit(record)
    except KeyboardInterrupt:
        return INTERRUPTED  # stop following; the task itself goes on
    if not shown and args.format == "text":
        note("(no matching records)")
    return OK


def cmd_delete(args: argparse.Namespace, session: _Session) -> int:
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


def cmd_cleanup(args: argparse.Namespace, session: _Session) -> int:
    try:
        duration = parse_duration(args.older_than)
    except ValueError as error:
        raise CLIError(f"--older-than: {error}") from None
    removed = session.engine().cleanup(duration)
    out(f"Removed {len(removed)} finished task{'s' * (len(removed) != 1)} (with their logs) "
        f"that ended more than {args.older_than} ago.")
    return OK


def cmd_settings(args: argparse.Namespace, session: _Session) -> int:
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


def cmd_sql(args: argparse.Namespace, session: _Session) -> int:
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
        table(session, list(names), [[_cell(value, 80) for value in row] for row in rows])
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


def cmd_plugins(args: argparse.Namespace, session: _Session) -> int:
    engine = session.engine()
    plugins = engine.plugins()
    if not plugins:
        out("No plugins registered.")
        return OK
    width = max(len(printable(p["name"])) for p in plugins)
    for plugin in plugins:
        name = printable(plugin["name"])
        out(f"{session.paint(name.ljust(width), '1')}  {printable(plugin.get('description') or '')}".rstrip())
        properties = (plugin.get("params_schema") or {}).get("properties") or {}
        if properties:
            described = []
            for name, spec in properties.items():
                default = f"={json.dumps(spec['default'])}" if isinstance(spec, dict) and "default" in spec else ""
                described.append(f"{name}{default}")
            out(f"{'':{width}}  params: {printable(', '.join(described))}")
    return OK


def cmd_health(args: argparse.Namespace, session: _Session) -> int:
    engine = session.engine(require_available=False)
    health = engine.health()
    values = dict(health.to_dict(), database=where(engine))
    if args.format == "json":
        out(json.dumps(values, ensure_ascii=False))
    else:
        available = session.paint("yes", "32") if health.database_available else session.paint("no", "1;31")
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


# ---- entry point ---------------------------------------------------------------------------------------
def _use_colour(choice: str) -> bool:
    if choice == "always":
        return True
    if choice == "never":
        return False
    # Decided before anything runs: nbtasklog's capture may wrap sys.stdout later.
    return not os.environ.get("NO_COLOR") and hasattr(sys.stdout, "isatty") and sys.stdout.isatty()


def main(argv: list[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except CLIError as error:
        note(f"nbtasklog: error: {error}")
        return error.code
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else OK
    session = _Session(getattr(args, "db", None), _use_colour(getattr(args, "color", "auto")))
    code = OK
    try:
        code = args.handler(args, session)
    except CLIError as error:
        note(f"nbtasklog: error: {error}")
        code = error.code
    except KeyboardInterrupt:
        code = INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly; point stdout at nothing so the exit flush cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        code = BROKEN_PIPE
    except Exception as error:
        code = _report_unexpected(error)
    finally:
        try:
            session.close()
        except Exception as error:  # records that cannot be written now are spilled for the next start
            note(f"nbtasklog: warning: closing the database: {_one_line(error)}")
    return code


def _report_unexpected(error: Exception) -> int:
    """Map the errors the library raises to exit codes; anything else is an internal error (exit 1)."""
    if isinstance(error, UnknownTaskError):
        note(f"nbtasklog: error: {error}")
        return UNKNOWN_TASK
    if isinstance(error, (FilterError, UnknownPluginError, SQLError, TaskActiveError)):
        note(f"nbtasklog: error: {error}")
        return USAGE
    if isinstance(error, ServerError):
        note(f"nbtasklog: error: the server answered {error.status}: {error}")
        return USAGE if error.status == 400 else UNKNOWN_TASK if error.status == 404 else DATABASE
    if isinstance(error, (ConnectionError, PermissionError)) or _is_database_error(error):
        note(f"nbtasklog: error: database unavailable: {_one_line(error)}")
        return DATABASE
    if os.environ.get("NBTASKLOG_DEBUG"):
        import traceback

        traceback.print_exception(error)
    note(f"nbtasklog: error: unexpected {type(error).__name__}: {_one_line(error)} (NBTASKLOG_DEBUG=1 shows the traceback)")
    return TASK_FAILED


def _is_database_error(error: Exception) -> bool:
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(error, SQLAlchemyError):
        return True
    try:
        import duckdb
    except ImportError:
        return False
    return isinstance(error, duckdb.Error)


if __name__ == "__main__":
    sys.exit(main())
