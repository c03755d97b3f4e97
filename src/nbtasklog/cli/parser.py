"""The command line's grammar: every command with its options, help and exit-code epilog, and the handler it runs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

import nbtasklog

from ..filter import MAX_LIMIT
from . import commands, running
from .exits import USAGE, CLIError
from .session import Session

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
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    # Handlers are read from their modules each time a parser is built, so a replaced one is the one that runs.
    def command(name: str, handler: Callable[[argparse.Namespace, Session], int], help: str) -> _Parser:
        sub = subparsers.add_parser(name, parents=[common], help=help, description=help,
                                    epilog=EXIT_CODES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(handler=handler)
        return sub

    p = command("demo", running.cmd_demo, "run the example dashboard_backup task with live output, then show a filtered view")
    p.add_argument("--dashboards", type=_positive, default=8, help="how many dashboards to back up (default 8)")
    p.add_argument("--delay", type=_seconds, default=0.1, help="seconds per simulated API call (default 0.1)")

    p = command("run", running.cmd_run, "run a plugin as a task in this process and wait for it")
    p.add_argument("plugin", metavar="PLUGIN", help="registered plugin name (see: nbtasklog plugins)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a parameter; VALUE is parsed as JSON when it is JSON (3, true, null, [1,2]), else text")
    p.add_argument("--params-json", metavar="JSON", help="parameters as one JSON object (-p values override)")
    p.add_argument("--log-level", metavar="LEVEL", help="what this task persists (overrides the task_log_level setting)")
    p.add_argument("-f", "--follow", action="store_true", help="print the task's records as they come")

    p = command("tasks", commands.cmd_tasks, "list tasks, newest first")
    p.add_argument("--status", help="only these statuses (comma-separated: SUCCESS,FAILED,...)")
    p.add_argument("--plugin", help="only tasks of this plugin")
    p.add_argument("--user", help="only tasks this user started")
    p.add_argument("--limit", type=_positive, default=50, help="at most N tasks (default 50)")
    p.add_argument("--format", choices=("text", "jsonl"), default="text")

    p = command("logs", commands.cmd_logs, "print a task's log records, filtered")
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

    p = command("delete", commands.cmd_delete, "delete a finished task and all its log records")
    p.add_argument("task", metavar="TASK", help="task id or a unique prefix of it")

    p = command("cleanup", commands.cmd_cleanup, "delete finished tasks (and their logs) older than a duration")
    p.add_argument("--older-than", required=True, metavar="DURATION", help="e.g. 30d, 12h, 15m, 45s, 1w")
    p.add_argument("--user", help="only tasks this user started")

    p = command("settings", commands.cmd_settings, "show the logging settings, or change them (effective at once)")
    p.add_argument("--log-level", metavar="LEVEL", help="nbtasklog's own application log level")
    p.add_argument("--task-log-level", metavar="LEVEL", help="what tasks persist; below it a call is dropped")
    p.add_argument("--belief-scope", choices=("on", "off"), help="belief_scope traces (DEBUG level) on or off")

    p = command("sql", commands.cmd_sql, "run one read-only SQL query over the tables tasks and task_logs")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--format", choices=("table", "csv", "jsonl"), default="table")
    p.add_argument("--max-rows", type=_positive, default=1000, help="at most N rows (default 1000)")

    command("plugins", commands.cmd_plugins, "list the registered plugins")

    p = command("health", commands.cmd_health, "show the state of the way to the database (pending, spilled, errors)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    return parser
