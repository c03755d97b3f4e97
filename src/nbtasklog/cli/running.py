"""The commands that run a task in this process and watch it to its end: `run` and `demo`."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..engine import Engine
from ..levels import LEVEL_NAMES, parse_level
from ..plugins import UnknownPluginError
from ..task import Task
from .exits import INTERRUPTED, OK, TASK_FAILED, CLIError
from .inputs import parse_params
from .output import format_record, human_duration, note, out, printable, task_duration
from .session import Session


def cmd_run(args: argparse.Namespace, session: Session) -> int:
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


def watch(session: Session, task: Task, follow: bool) -> int:
    """Wait for the task (printing its records with `follow`); Ctrl-C cancels it and waits for its end."""
    colours = session.colours
    last = 0

    def show_from(after: int) -> None:
        nonlocal last
        for record in task.follow(after=after or None):
            last = record.seq
            out("  " + format_record(colours, record, with_date=False), flush=True)

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
    summary = f"Task {task.id} {colours.status(info['status'])} in {human_duration(task_duration(info))}"
    try:
        stats = task.stats()
        counts = ", ".join(f"{stats['levels'][name]} {colours.level(name)}"
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


def cmd_demo(args: argparse.Namespace, session: Session) -> int:
    engine = session.engine()
    colours = session.colours
    params = {"dashboards": args.dashboards, "delay": args.delay, "seed": 7}
    bold = lambda text: colours.paint(text, "1")  # noqa: E731
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
    levels = "   ".join(f"{colours.level(name)} {stats['levels'][name]}" for name in LEVEL_NAMES if stats["levels"].get(name))
    sources = "   ".join(f"{printable(name)} {count}" for name, count in sorted(stats["sources"].items(), key=lambda kv: (-kv[1], kv[0])))
    out(f"{bold('By level ')}   {levels}")
    out(f"{bold('By source')}   {sources}")
    out()
    shown = task.logs(source="superset_api", level="WARNING")
    out(bold(f"Filtered: source superset_api, WARNING and above ({len(shown)} of {stats['total']} records)"))
    for record in shown:
        out("  " + format_record(colours, record, with_date=False))
    if not shown:
        out("  (none this time)")
    dashboard = next((r.metadata["dashboard_id"] for r in shown if r.metadata and "dashboard_id" in r.metadata), 10)
    out()
    out(f"The logs are stored in {engine.control.where()}")
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
