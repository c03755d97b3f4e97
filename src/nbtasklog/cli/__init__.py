"""The `nbtasklog` command: run tasks, and read, follow, filter and manage their logs from a shell.

    nbtasklog demo                                   the example backup task, live, then a filtered view
    nbtasklog run PLUGIN [-p key=value ...] [--follow]
    nbtasklog tasks [--status S] [--plugin P] [--user U] [--limit N] [--format text|jsonl]
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

import os
import sys

from .exits import BROKEN_PIPE, INTERRUPTED, OK, CLIError, one_line, report_unexpected
from .output import note, printable
from .parser import build_parser
from .session import Session

__all__ = ["CLIError", "build_parser", "main", "printable"]


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
    session = Session(getattr(args, "db", None), _use_colour(getattr(args, "color", "auto")))
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
        code = report_unexpected(error)
    finally:
        try:
            session.close()
        except Exception as error:  # records that cannot be written now are spilled for the next start
            note(f"nbtasklog: warning: closing the database: {one_line(error)}")
    return code
