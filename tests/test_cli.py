"""The `nbtasklog` command: every command in-process through cli.main (own DuckDB file per test), and real processes."""

from __future__ import annotations

import io
import json
import logging
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nbtasklog import belief, cli
from nbtasklog.plugins import registry
from nbtasklog.runner import os_username

LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) (DEBUG|INFO|WARNING|ERROR) +\[([^\]]+)\] +(.*)$")
LIVE = re.compile(r"^  (\d\d:\d\d:\d\d\.\d{3}) (DEBUG|INFO|WARNING|ERROR) +\[([^\]]+)\] +(.*)$")  # run --follow: time only
STARTED = re.compile(r"Started task ([0-9a-f]{21})")
SCRIPT = Path(sys.executable).parent / "nbtasklog"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "nbtasklog.cli"]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No running Jupyter server, default database or NO_COLOR leaks in; process-wide logging toggles restored."""
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "data"))
    for name in ("NBTASKLOG_SERVER_URL", "NBTASKLOG_DB", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    app_level = logging.getLogger("nbtasklog").level
    yield
    belief.app_enabled = True
    logging.getLogger("nbtasklog").setLevel(app_level)


@pytest.fixture
def db(tmp_path: Path) -> str:
    return str(tmp_path / "cli.duckdb")


@pytest.fixture
def cli_run(db: str, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """`cli_run(*args)`: main(["--db", db, *args]) in this process; returns (exit code, stdout, stderr)."""

    def call(*args: str) -> tuple[int, str, str]:
        code = cli.main(["--db", db, *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


@pytest.fixture
def backup(cli_run: Callable[..., tuple[int, str, str]]) -> str:
    """The id of a finished dashboard_backup of 8 dashboards (seed 7: an ERROR for 16, a slow WARNING for 17)."""
    code, out, _ = cli_run("run", "dashboard_backup", "-p", "dashboards=8", "-p", "delay=0")
    assert code == 0
    return STARTED.search(out).group(1)


@pytest.fixture
def plugin() -> Iterator[Callable[[Any], str]]:
    """`plugin(fn)`: register fn under a unique name in the default registry (removed afterwards); returns the name."""
    names: list[str] = []

    def add(fn: Any) -> str:
        name = f"cli_test_{uuid.uuid4().hex[:8]}"
        registry.register(fn, name=name)
        names.append(name)
        return name

    yield add
    for name in names:
        registry.unregister(name)


def jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def task_rows(cli_run: Callable[..., tuple[int, str, str]], *args: str) -> list[dict[str, Any]]:
    code, out, _ = cli_run("tasks", "--format", "jsonl", *args)
    assert code == 0
    return jsonl(out)


# ---- help and usage ------------------------------------------------------------------------------
def test_help_lists_the_commands_and_the_exit_codes(capsys):
    """--help exits 0 and documents every command and the exit-code table (also in the module docstring)."""
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "run", "tasks", "logs", "delete", "cleanup", "settings", "sql", "plugins", "health"):
        assert command in out
    assert "exit codes:" in out and "3    unknown task" in out and "130" in out
    assert "4    the database" in cli.__doc__ and "3    unknown task" in cli.__doc__


def test_usage_errors_exit_2_with_one_clear_line(cli_run):
    """A missing command, a missing argument or an unknown option: exit 2, `nbtasklog: error:` and no traceback."""
    for args, expected in [((), "required: COMMAND"), (("logs",), "required: TASK"),
                           (("tasks", "--bogus"), "unrecognized arguments: --bogus"),
                           (("logs", "x", "--tail", "0"), "--tail: must be between 1 and 100000")]:
        code, out, err = cli_run(*args)
        assert code == 2, args
        assert err.startswith("nbtasklog: error: ") and expected in err and "Traceback" not in err


# ---- run -------------------------------------------------------------------------------------------
def test_run_follow_prints_live_records_and_a_summary(cli_run):
    """run --follow prints every record with time, level and [source], then the final status; exit 0."""
    code, out, err = cli_run("run", "dashboard_backup", "-p", "dashboards=3", "-p", "delay=0", "--follow")
    assert code == 0, err
    task_id = STARTED.search(out).group(1)
    records = [LIVE.match(line) for line in out.splitlines() if line.startswith("  ")]
    assert records and all(records)
    assert {m.group(3) for m in records} == {"system", "plugin", "superset_api"}
    assert records[0].group(4).startswith("Task started: dashboard_backup")
    assert f"Task {task_id} SUCCESS in " in out.splitlines()[-1]


def test_run_without_follow_prints_the_id_and_final_status(cli_run):
    """run waits for the task and prints its id and status, not its records."""
    code, out, _ = cli_run("run", "dashboard_backup", "-p", "dashboards=2", "-p", "delay=0")
    assert code == 0
    lines = out.splitlines()
    task_id = STARTED.search(lines[0]).group(1)
    assert len(lines) == 2 and lines[1].startswith(f"Task {task_id} SUCCESS") and "9 records" in lines[1]


def test_run_params_are_json_when_valid_else_text(cli_run, plugin):
    """-p values: JSON numbers, booleans, null, lists and quoted strings, else the raw text; -p overrides --params-json."""
    name = plugin(lambda params, context: None)
    code, _, err = cli_run("run", name, "--params-json", '{"a": 1, "keep": "x"}', "-p", "a=2", "-p", "f=1.5",
                           "-p", "flag=true", "-p", "none=null", "-p", "ids=[1,2]", "-p", "word=hello",
                           "-p", 'quoted="7"', "-p", "empty=", "-p", "eq=a=b", "-p", "nan=NaN")
    assert code == 0, err
    params = task_rows(cli_run, "--plugin", name)[0]["params"]
    assert params == {"a": 2, "keep": "x", "f": 1.5, "flag": True, "none": None, "ids": [1, 2], "word": "hello",
                      "quoted": "7", "empty": "", "eq": "a=b", "nan": "NaN"}


def test_run_failed_task_exits_1_and_reports_the_error(cli_run, plugin):
    """A plugin that raises: status FAILED, exit 1, the error on stderr."""
    name = plugin(lambda params, context: 1 / 0)
    code, out, err = cli_run("run", name)
    assert code == 1
    task_id = STARTED.search(out).group(1)
    assert f"Task {task_id} FAILED" in out
    assert err.strip() == f"nbtasklog: error: task {task_id} FAILED: ZeroDivisionError: division by zero"


def test_run_failed_task_shows_its_traceback_below_the_record(cli_run, plugin):
    """In text output the traceback of an error record follows it, indented, instead of one escaped JSON string."""
    name = plugin(lambda params, context: 1 / 0)
    code, out, _ = cli_run("run", name, "--follow")
    assert code == 1
    error_line = next(line for line in out.splitlines() if " ERROR " in line)
    assert "Task failed after" in error_line and '"exc_type":"ZeroDivisionError"' in error_line
    assert "traceback" not in error_line
    assert any(line.strip() == "ZeroDivisionError: division by zero" for line in out.splitlines())


@pytest.mark.parametrize("args, message", [
    (("run", "no_such_plugin"), "unknown plugin 'no_such_plugin'; known plugins: dashboard_backup"),
    (("run", "dashboard_backup", "-p", "dashboards"), "bad parameter 'dashboards': use -p key=value"),
    (("run", "dashboard_backup", "-p", "=3"), "bad parameter '=3'"),
    (("run", "dashboard_backup", "--params-json", "{nope"), "--params-json is not valid JSON"),
    (("run", "dashboard_backup", "--params-json", "[1, 2]"), "--params-json must be a JSON object"),
    (("run", "dashboard_backup", "--log-level", "loud"), "--log-level: unknown log level 'loud'"),
])
def test_run_bad_input_exits_2(cli_run, args, message):
    """Unknown plugin, bad -p, bad --params-json, unknown level: exit 2 with the reason, no task created."""
    code, out, err = cli_run(*args)
    assert code == 2 and out == ""
    assert err.startswith("nbtasklog: error: ") and message in err
    assert task_rows(cli_run) == []


def test_run_log_level_overrides_what_the_task_persists(cli_run):
    """run --log-level warning keeps only WARNING and ERROR records of that task."""
    code, out, _ = cli_run("run", "dashboard_backup", "-p", "dashboards=8", "-p", "delay=0", "--log-level", "warning")
    assert code == 0
    code, out, _ = cli_run("logs", STARTED.search(out).group(1), "--format", "jsonl")
    assert sorted(r["level"] for r in jsonl(out)) == ["ERROR", "WARNING", "WARNING"]


# ---- logs ------------------------------------------------------------------------------------------
def test_logs_text_has_local_time_level_source_message_and_metadata(cli_run, backup):
    """Each text line: local time with ms, level, [source], message, compact metadata JSON; no colour off a TTY."""
    _, text, _ = cli_run("logs", backup)
    _, raw, _ = cli_run("logs", backup, "--format", "jsonl")
    records = jsonl(raw)
    lines = text.splitlines()
    assert len(lines) == len(records) == 23 and "\x1b[" not in text
    for line, record in zip(lines, records):
        match = LINE.match(line)
        assert match, line
        local = datetime.fromisoformat(record["timestamp"]).astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        assert match.group(1) == local
        assert (match.group(2), match.group(3)) == (record["level"], record["source"])
        expected = record["message"]
        if record["metadata"] is not None:
            expected += " " + json.dumps(record["metadata"], separators=(",", ":"))
        assert match.group(4) == expected


# What a record may carry that a terminal would act on: C0 controls but tab and newline, DEL, C1
# controls and the Unicode bidi controls.
RAW_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
HOSTILE = ("clear\x1b[2J title\x1b]0;owned\x07 back\rover nul\x00 csi\x9b31m del\x7f "
           "rtl\u202eevil\u202c lri\u2066x\u2069 lrm\u200e alm\u061c tab\tkept")
HOSTILE_SHOWN = (r"clear\x1b[2J title\x1b]0;owned\x07 back\rover nul\x00 csi\x9b31m del\x7f "
                 r"rtl\u202eevil\u202c lri\u2066x\u2069 lrm\u200e alm\u061c tab" "\tkept")


def test_logs_text_shows_terminal_controls_escaped_and_jsonl_keeps_them(cli_run, plugin):
    """Text output never hands a terminal the controls a record carries (in its message, source or metadata): they
    are shown as Python escapes; a newline still starts an indented continuation line, a tab stays. JSONL is exact."""
    def hostile(params, context):
        context.logger.with_source("api\x1b[8m\u202e").warning(HOSTILE + "\nnext\x1b[1A line", note="n\u202e\x9b")

    code, out, _ = cli_run("run", hostile_name := plugin(hostile))
    assert code == 0
    task_id = STARTED.search(out).group(1)
    _, text, _ = cli_run("logs", task_id)
    assert not RAW_CONTROLS.search(text)
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if " WARNING " in line)
    assert HOSTILE_SHOWN in lines[at] and r"[api\x1b[8m\u202e]" in lines[at]
    assert lines[at].endswith(r'{"note":"n\u202e\x9b"}')
    assert lines[at + 1].strip() == r"next\x1b[1A line" and lines[at + 1].startswith("    ")
    _, raw, _ = cli_run("logs", task_id, "--format", "jsonl")
    record = next(r for r in jsonl(raw) if r["level"] == "WARNING")
    assert record["message"] == HOSTILE + "\nnext\x1b[1A line" and record["source"] == "api\x1b[8m\u202e"
    assert record["metadata"] == {"note": "n\u202e\x9b"}
    _, live, _ = cli_run("run", hostile_name, "--follow")
    assert not RAW_CONTROLS.search(live) and HOSTILE_SHOWN in live


def test_run_params_task_errors_and_plugin_names_print_escaped(cli_run, plugin):
    """run's params, a task's error (stderr), plugin names in run, tasks, plugins and delete: controls escaped."""
    def fails(params, context):
        raise RuntimeError("bad\x1b]0;title\x07 \u202eevil")

    name = plugin(fails)
    evil_name = f"cli_test_{uuid.uuid4().hex[:8]}\x1b[2J\u202e"
    registry.register(lambda params, context: None, name=evil_name)
    try:
        code, out, err = cli_run("run", name, "-p", "x=\x1b[2J\u202e", "-p", "c1=\x9b")
        assert code == 1 and not RAW_CONTROLS.search(out + err)
        assert r'"x": "\u001b[2J\u202e", "c1": "\x9b"' in out  # json.dumps escapes C0 itself
        assert r"RuntimeError: bad\x1b]0;title\x07 \u202eevil" in err
        code, out, err = cli_run("run", evil_name)
        assert code == 0 and not RAW_CONTROLS.search(out + err) and r"\x1b[2J\u202e" in out
        task_id = STARTED.search(out).group(1)
        code, out, _ = cli_run("tasks")
        assert code == 0 and not RAW_CONTROLS.search(out) and r"\x1b[2J\u202e" in out
        code, out, _ = cli_run("plugins")
        assert code == 0 and not RAW_CONTROLS.search(out)
        code, out, _ = cli_run("delete", task_id)
        assert code == 0 and not RAW_CONTROLS.search(out)
    finally:
        registry.unregister(evil_name)


def test_logs_jsonl_is_the_record_wire_form(cli_run, backup):
    """--format jsonl: one LogRecord.to_dict() per line, seq 1..n in order."""
    _, out, _ = cli_run("logs", backup, "--format", "jsonl")
    records = jsonl(out)
    assert [r["seq"] for r in records] == list(range(1, 24))
    assert set(records[0]) == {"task_id", "seq", "timestamp", "level", "source", "message", "metadata"}
    assert all(r["task_id"] == backup for r in records)


def test_logs_filters_by_level_source_search_meta_and_after(cli_run, backup):
    """--level, --source, --search, --meta and --after each narrow the records as the filter says."""
    def get(*args: str) -> list[dict[str, Any]]:
        code, out, err = cli_run("logs", backup, "--format", "jsonl", *args)
        assert code == 0, err
        return jsonl(out)

    api = get("--source", "superset_api")
    assert len(api) == 10 and {r["source"] for r in api} == {"superset_api"}
    assert [r["message"] for r in get("--source", "superset_api", "--level", "warning")] == [
        "Export of dashboard 16 failed: 502 Bad Gateway", "Slow response for dashboard 17 (349 ms)"]
    assert {r["source"] for r in get("--source", "system,plugin")} == {"system", "plugin"}
    assert [r["message"] for r in get("--search", "BAD GATEWAY")] == ["Export of dashboard 16 failed: 502 Bad Gateway"]
    sixteen = get("--meta", "dashboard_id=16")
    assert len(sixteen) == 2 and all(r["metadata"]["dashboard_id"] == 16 for r in sixteen)
    assert [r["seq"] for r in get("--meta", "dashboard_id=16", "--meta", "status=502")] == [sixteen[1]["seq"]]
    assert [r["seq"] for r in get("--after", "20")] == [21, 22, 23]
    assert [r["seq"] for r in get("--limit", "2")] == [1, 2]


def test_logs_tail_gives_the_last_matching_records_in_order(cli_run, backup):
    """--tail N: the last N matching records, oldest first."""
    _, out, _ = cli_run("logs", backup, "--tail", "3", "--source", "plugin", "--format", "jsonl")
    records = jsonl(out)
    assert [r["message"] for r in records] == ["Saved dashboard 17 with 6 charts",
                                               "1 dashboard(s) could not be exported: [16]",
                                               "Backup finished: 7 saved, 1 failed"]
    assert records[0]["seq"] < records[1]["seq"] < records[2]["seq"]


def test_logs_follow_of_a_finished_task_prints_all_and_returns(cli_run, backup):
    """--follow on an ended task prints its matching history and exits 0; with --tail it starts from the last N."""
    code, out, _ = cli_run("logs", backup, "--follow", "--level", "error", "--format", "jsonl")
    assert code == 0 and [r["level"] for r in jsonl(out)] == ["ERROR"]
    code, out, _ = cli_run("logs", backup, "--follow", "--tail", "2", "--format", "jsonl")
    assert code == 0 and [r["seq"] for r in jsonl(out)] == [22, 23]


def test_logs_with_no_match_says_so_on_stderr(cli_run, backup):
    """An empty result prints nothing on stdout and a note on stderr; exit 0."""
    code, out, err = cli_run("logs", backup, "--search", "no such text")
    assert code == 0 and out == "" and "no matching records" in err


@pytest.mark.parametrize("args, message", [
    (("--level", "verbose"), "unknown log level 'verbose'"),
    (("--meta", "bad key=1"), "bad metadata key 'bad key'"),
    (("--after", "-1"), "after must be at least 0"),
    (("--after", "x"), "after must be a whole number"),
    (("--source", ","), "source is empty"),
    (("--follow", "--limit", "3"), "--limit cannot be combined with --follow"),
    (("--limit", "2", "--tail", "2"), "not allowed with argument"),
])
def test_logs_bad_filter_exits_2(cli_run, backup, args, message):
    """A filter that cannot be understood: exit 2 with the reason."""
    code, out, err = cli_run("logs", backup, *args)
    assert code == 2 and out == ""
    assert err.startswith("nbtasklog: error: ") and message in err


def test_task_prefix_unique_ambiguous_and_unknown(cli_run, backup):
    """TASK may be a unique prefix (any case); an ambiguous one exits 2 listing candidates; an unknown one exits 3."""
    code, out, _ = cli_run("logs", backup[:15].upper(), "--tail", "1", "--format", "jsonl")
    assert code == 0 and jsonl(out)[0]["task_id"] == backup
    code, out, _ = cli_run("run", "dashboard_backup", "-p", "dashboards=1", "-p", "delay=0")
    other = STARTED.search(out).group(1)
    common = next(i for i in range(21) if backup[i] != other[i])
    code, out, err = cli_run("logs", backup[:common])
    assert code == 2 and out == ""
    assert f"task prefix '{backup[:common]}' is ambiguous" in err and backup in err and other in err
    code, _, err = cli_run("logs", "ffffffffffff")
    assert code == 3 and err.startswith("nbtasklog: error: unknown task 'ffffffffffff'")
    code, _, err = cli_run("delete", "0123456789abcdef01234")
    assert code == 3 and "unknown task" in err


def test_colour_only_when_asked_or_on_a_terminal(cli_run, backup):
    """Levels are coloured with --color always, never in a pipe by default or with NO_COLOR."""
    _, out, _ = cli_run("--color", "always", "logs", backup, "--level", "warning")
    assert "\x1b[1;31mERROR  \x1b[0m" in out and "\x1b[33mWARNING\x1b[0m" in out
    _, out, _ = cli_run("logs", backup, "--level", "warning")
    assert "\x1b[" not in out


def test_colour_follows_the_terminal_after_a_task_wrapped_stdout(db, monkeypatch, backup):
    """Once a task ran, sys.stdout is nbtasklog's capture proxy; outside tasks it still reports the terminal."""
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert cli.main(["--db", db, "run", "dashboard_backup", "-p", "dashboards=1", "-p", "delay=0"]) == 0
    assert sys.stdout is not terminal and sys.stdout.isatty()  # the proxy, answering for the terminal
    assert cli.main(["--db", db, "logs", backup, "--level", "error"]) == 0
    assert "\x1b[1;31mERROR" in terminal.getvalue()


# ---- tasks, delete, cleanup ---------------------------------------------------------------------------
def test_tasks_table_lists_newest_first_with_filters(cli_run, backup, plugin):
    """tasks: a table of id, plugin, status, local created time, duration, records and who started it;
    --status/--plugin/--user filter."""
    failing = plugin(lambda params, context: 1 / 0)
    assert cli_run("run", failing)[0] == 1
    code, out, _ = cli_run("tasks")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["ID", "PLUGIN", "STATUS", "CREATED", "DURATION", "RECORDS", "USER"]
    assert len(rows) == 2 and rows[0].split()[1:3] == [failing, "FAILED"]
    failing_id = rows[0].split()[0]
    first = rows[1].split()
    assert first[0] == backup and first[1:3] == ["dashboard_backup", "SUCCESS"] and first[-2:] == ["23", os_username()]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", first[3]) and first[6] == "s"
    assert [r["id"] for r in task_rows(cli_run, "--status", "success")] == [backup]
    assert [r["status"] for r in task_rows(cli_run, "--plugin", failing)] == ["FAILED"]
    assert len(task_rows(cli_run, "--limit", "1")) == 1
    assert [r["id"] for r in task_rows(cli_run, "--user", os_username())] == [failing_id, backup]
    assert task_rows(cli_run, "--user", "somebody-else") == []
    code, out, _ = cli_run("tasks", "--user", "somebody-else")
    assert code == 0 and out.strip() == "No tasks."


def test_tasks_unknown_status_exits_2(cli_run):
    """An unknown status is bad input: exit 2 naming it and the known ones."""
    code, _, err = cli_run("tasks", "--status", "DONE")
    assert code == 2 and "unknown status DONE" in err and "SUCCESS" in err


def test_tasks_on_an_empty_database_suggests_the_demo(cli_run):
    """With no tasks, the text listing says so and points at the demo."""
    code, out, _ = cli_run("tasks")
    assert code == 0 and "No tasks yet" in out and "demo" in out


def test_delete_removes_the_task_and_its_logs(cli_run, backup):
    """delete TASK (a prefix works) removes the task and its records; afterwards it is unknown (exit 3)."""
    code, out, _ = cli_run("delete", backup[:16])
    assert code == 0 and out.strip() == f"Deleted task {backup} (dashboard_backup, SUCCESS) and its 23 log records."
    code, _, err = cli_run("logs", backup)
    assert code == 3 and f"unknown task '{backup}'" in err
    code, out, _ = cli_run("sql", "SELECT count(*) AS n FROM task_logs", "--format", "jsonl")
    assert jsonl(out) == [{"n": 0}]


def test_cleanup_removes_old_finished_tasks(cli_run, backup):
    """cleanup --older-than: a long duration keeps the task, 0s removes it; the count is printed."""
    code, out, _ = cli_run("cleanup", "--older-than", "30d")
    assert code == 0 and "Removed 0 finished tasks" in out
    code, out, _ = cli_run("cleanup", "--older-than", "0s")
    assert code == 0 and "Removed 1 finished task " in out
    assert task_rows(cli_run) == []


@pytest.mark.parametrize("value", ["30", "thirty days", "-1d", "1y"])
def test_cleanup_bad_duration_exits_2(cli_run, value):
    """A duration without a unit or with an unknown one: exit 2 with an example of the right form."""
    code, _, err = cli_run("cleanup", f"--older-than={value}")
    assert code == 2 and f"bad duration {value!r}" in err and "30d" in err


# ---- settings, sql, plugins, health -------------------------------------------------------------------
def test_settings_show_update_and_persist(cli_run):
    """settings prints the current values; options change them, effective and stored for the next process."""
    code, out, _ = cli_run("settings")
    assert code == 0 and re.search(r"^task_log_level +INFO ", out, re.M) and re.search(r"^belief_scope_enabled +on ", out, re.M)
    code, out, _ = cli_run("settings", "--task-log-level", "debug", "--log-level", "WARN", "--belief-scope", "off")
    assert code == 0 and out.startswith("Settings updated")
    assert re.search(r"^task_log_level +DEBUG ", out, re.M) and re.search(r"^log_level +WARNING ", out, re.M)
    code, out, _ = cli_run("settings")
    assert re.search(r"^task_log_level +DEBUG ", out, re.M) and re.search(r"^belief_scope_enabled +off ", out, re.M)
    code, out, _ = cli_run("run", "dashboard_backup", "-p", "dashboards=1", "-p", "delay=0")
    _, logs, _ = cli_run("logs", STARTED.search(out).group(1), "--level", "debug", "--format", "jsonl")
    assert "DEBUG" in {r["level"] for r in jsonl(logs)}  # the new task_log_level is in force


@pytest.mark.parametrize("args, message", [
    (("--task-log-level", "chatty"), "task_log_level: unknown log level 'chatty'"),
    (("--belief-scope", "maybe"), "invalid choice: 'maybe'"),
])
def test_settings_bad_values_exit_2(cli_run, args, message):
    """An unknown level or on/off value: exit 2, nothing changed."""
    code, _, err = cli_run("settings", *args)
    assert code == 2 and message in err
    _, out, _ = cli_run("settings")
    assert re.search(r"^task_log_level +INFO ", out, re.M)


def test_sql_formats_table_csv_and_jsonl(cli_run, backup):
    """sql: a padded table, CSV with a header, or JSON lines; --max-rows cuts and says so."""
    query = "SELECT source, count(*) AS n FROM task_logs GROUP BY source ORDER BY source"
    code, out, err = cli_run("sql", query)
    assert code == 0 and out.splitlines()[0].split() == ["source", "n"]
    assert [line.split() for line in out.splitlines()[1:]] == [["plugin", "10"], ["superset_api", "10"], ["system", "3"]]
    assert "(3 rows)" in err
    _, out, _ = cli_run("sql", query, "--format", "csv")
    assert out.splitlines() == ["source,n", "plugin,10", "superset_api,10", "system,3"]
    _, out, _ = cli_run("sql", "SELECT id, created_at FROM tasks", "--format", "jsonl")
    row = jsonl(out)[0]
    assert row["id"] == backup and datetime.fromisoformat(row["created_at"])
    code, out, err = cli_run("sql", "SELECT seq FROM task_logs ORDER BY seq", "--format", "csv", "--max-rows", "2")
    assert code == 0 and out.splitlines() == ["seq", "1", "2"] and "cut to the first 2 rows" in err


def test_sql_keeps_repeated_column_names_and_exact_values(cli_run):
    """Every column comes out, in order, in every format; JSON lines need distinct keys, so a repeated name gets the
    first free suffix _2, _3...; NaN and infinities are strings there, integers and decimals keep every digit."""
    query = ("SELECT 1 AS a, 2 AS a, 3 AS a_2, 'NaN'::DOUBLE AS x, '-inf'::DOUBLE AS y, "
             "170141183460469231731687303715884105727::HUGEINT AS h, 12345678901234567890.123456789::DECIMAL(38, 9) AS d")
    code, out, _ = cli_run("sql", query)
    assert code == 0 and [line.split() for line in out.splitlines()] == [
        ["a", "a", "a_2", "x", "y", "h", "d"],
        ["1", "2", "3", "nan", "-inf", "170141183460469231731687303715884105727", "12345678901234567890.123456789"]]
    _, out, _ = cli_run("sql", query, "--format", "csv")
    assert out.splitlines() == ["a,a,a_2,x,y,h,d",
                                "1,2,3,nan,-inf,170141183460469231731687303715884105727,12345678901234567890.123456789"]
    _, out, _ = cli_run("sql", query, "--format", "jsonl")
    (line,) = out.splitlines()
    assert json.loads(line, parse_float=Decimal, parse_constant=_no_constant) == {
        "a": 1, "a_3": 2, "a_2": 3, "x": "NaN", "y": "-Infinity", "h": 170141183460469231731687303715884105727,
        "d": Decimal("12345678901234567890.123456789")}


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


EVERY_TYPE = "SELECT * EXCLUDE (medium_enum, large_enum) FROM test_all_types()"  # DuckDB's own edge values, NULLs too


@pytest.mark.parametrize("fmt", ["table", "csv", "jsonl"])
def test_sql_prints_every_duckdb_type(cli_run, fmt):
    """Each type DuckDB has, at its extremes (infinite dates, 24:00:00, NaN, the largest HUGEINT and UHUGEINT), prints
    without an error; in JSON lines as valid JSON, nothing rounded or cut."""
    code, out, err = cli_run("sql", EVERY_TYPE, "--format", fmt)
    assert code == 0, err
    if fmt != "jsonl":
        return
    low, high, null = [json.loads(line, parse_float=Decimal, parse_constant=_no_constant) for line in out.splitlines()]
    assert set(null.values()) == {None}
    assert (low["hugeint"], high["hugeint"]) == (-(2**127), 2**127 - 1)
    assert high["uhugeint"] == str(2**128 - 1) and high["ubigint"] == 2**64 - 1
    assert high["time_tz"] == "24:00:00-15:59:59" and high["time"] == "24:00:00" and high["bit"] == "10101"
    assert high["date"] == "5881580-07-10" and low["timestamp_tz"] == "-290308-12-22T00:00:00+00:00"
    assert high["date_array"] == ["1970-01-01", "infinity", "-infinity", None, "2022-05-12"]
    assert high["double_array"] == [42.0, "NaN", "Infinity", "-Infinity", None, -42.0]
    assert high["dec38_10"] == Decimal("9999999999999999999999999999.9999999999")
    assert high["interval"] == {"months": 999, "days": 999, "nanoseconds": 999999999000}
    assert high["map"] == [["key1", "🦆🦆🦆🦆🦆🦆"], ["key2", "goose"]] and high["union"] == 5
    assert high["blob"] == "00000061" and high["uuid"] == "ffffffff-ffff-ffff-ffff-ffffffffffff"
    assert int(low["bignum"]) == -int(high["bignum"]) and len(high["bignum"]) > 300


def test_sql_table_cells_and_names_print_escaped(cli_run):
    """sql --format table shows controls in names and values escaped, newlines as \\n; csv and jsonl keep them."""
    query = "SELECT 'a' || chr(27) || '[2J' || chr(8238) || chr(10) || 'b' AS \"n\x1b[1m\""
    code, out, _ = cli_run("sql", query)
    assert code == 0 and not RAW_CONTROLS.search(out)
    assert out.splitlines() == [r"n\x1b[1m", r"a\x1b[2J\u202e\nb"]
    _, out, _ = cli_run("sql", query, "--format", "jsonl")
    assert jsonl(out) == [{"n\x1b[1m": "a\x1b[2J\u202e\nb"}]


@pytest.mark.parametrize("query, message", [
    ("DELETE FROM tasks", "only read-only queries (SELECT) are allowed, not DELETE"),
    ("SELECT 1; SELECT 2", "give exactly one SQL statement, not 2"),
    ("SELEKT", "SQL syntax error"),
    ("SELECT * FROM read_csv('/etc/passwd')", "SQL refused"),
])
def test_sql_refused_exits_2(cli_run, query, message):
    """Writes, several statements, syntax errors and file access are refused: exit 2 with the reason."""
    code, out, err = cli_run("sql", query)
    assert code == 2 and out == "" and err.startswith("nbtasklog: error: SQL refused") and message in err


def test_plugins_lists_names_descriptions_and_params(cli_run):
    """plugins: each registered plugin with its description and parameters with defaults."""
    code, out, _ = cli_run("plugins")
    assert code == 0
    assert re.search(r"^dashboard_backup +Back up dashboards from a \(simulated\) Superset", out, re.M)
    assert "params: dashboards=5, delay=0.05, seed=7" in out
    assert re.search(r"^legacy_cleanup +An old-style plugin", out, re.M)


def test_health_reports_an_available_database(cli_run, db):
    """health: the database path, available, nothing pending; --format json gives the same as an object."""
    code, out, _ = cli_run("health")
    assert code == 0 and re.search(r"^available +yes$", out, re.M) and db in out
    code, out, _ = cli_run("health", "--format", "json")
    values = json.loads(out)
    assert values["database_available"] is True and values["pending"] == 0 and values["database"] == db


# ---- the database cannot be used -----------------------------------------------------------------------
def test_a_database_locked_by_another_process_exits_4(cli_run, db):
    """While another process holds the DuckDB file, commands exit 4 with DuckDB's lock message and a hint."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(60)", db],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        for args in (("tasks",), ("run", "dashboard_backup"), ("logs", "abc")):
            code, out, err = cli_run(*args)
            assert code == 4 and out == "", args
            assert err.startswith(f"nbtasklog: error: cannot use the database {db}: ") and "lock" in err
            assert "another process has it open" in err and "Traceback" not in err
            assert len(err.strip().splitlines()) == 1
    finally:
        holder.kill()
        holder.wait()
    assert cli_run("tasks")[0] == 0  # free again: it works


def test_a_file_that_is_not_a_database_exits_4(tmp_path, capsys):
    """--db naming a file that is not a DuckDB database, or an unreachable server: exit 4, one line."""
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database")
    assert cli.main(["--db", str(junk), "tasks"]) == 4
    err = capsys.readouterr().err
    assert err.startswith("nbtasklog: error: cannot use the database") and "not a valid DuckDB database" in err
    assert cli.main(["--db", "http://127.0.0.1:9", "tasks"]) == 4
    assert "no nbtasklog server answers at http://127.0.0.1:9" in capsys.readouterr().err


def test_errors_inside_a_command_map_to_exit_codes(cli_run, monkeypatch):
    """A database error in the middle of a command exits 4; anything unexpected exits 1; one line, no traceback."""
    from sqlalchemy.exc import OperationalError

    def database_gone(args, session):
        session.engine()
        raise OperationalError("SELECT 1", {}, RuntimeError("IO Error: disk I/O error"))

    monkeypatch.setattr(cli.commands, "cmd_tasks", database_gone)
    code, _, err = cli_run("tasks")
    assert code == 4 and err == "nbtasklog: error: database unavailable: IO Error: disk I/O error\n"

    def bug(args, session):
        raise KeyError("oops")

    monkeypatch.setattr(cli.commands, "cmd_tasks", bug)
    code, _, err = cli_run("tasks")
    assert code == 1 and err.startswith("nbtasklog: error: unexpected KeyError: 'oops'") and "Traceback" not in err


# ---- demo ----------------------------------------------------------------------------------------------
def test_demo_runs_the_backup_live_then_summarises_and_filters(cli_run, db):
    """demo: live records, counts by level and source, the superset_api WARNING+ view, the database and next commands."""
    code, out, err = cli_run("demo", "--dashboards", "8", "--delay", "0")
    assert code == 0, err
    task_id = STARTED.search(out).group(1)
    assert re.search(r"By level +INFO 20 +WARNING 2 +ERROR 1", out)
    assert re.search(r"By source +plugin 10 +superset_api 10 +system 3", out)
    section = out.split("Filtered: source superset_api, WARNING and above (2 of 23 records)")[1]
    filtered = [line for line in section.splitlines() if line.startswith("  ") and "[superset_api]" in line]
    assert len(filtered) == 2 and "ERROR" in filtered[0] and "WARNING" in filtered[1]
    assert f"The logs are stored in {db}" in out
    assert f"nbtasklog --db {db} logs {task_id} --source superset_api" in out
    assert "--meta dashboard_id=16" in out


# ---- real processes -------------------------------------------------------------------------------------
def test_run_in_one_process_then_read_it_filtered_in_another(db):
    """`run --follow` in a process, then `logs ID --source superset_api --format jsonl` in a second one."""
    first = subprocess.run([*COMMAND, "--db", db, "run", "dashboard_backup", "-p", "dashboards=3", "-p", "delay=0", "--follow"],
                           capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    task_id = STARTED.search(first.stdout).group(1)
    assert "[superset_api]" in first.stdout and f"Task {task_id} SUCCESS" in first.stdout
    second = subprocess.run([*COMMAND, "--db", db, "logs", task_id, "--source", "superset_api", "--format", "jsonl"],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and second.stderr == ""
    records = [json.loads(line) for line in second.stdout.splitlines()]
    assert len(records) == 3 and all(r["source"] == "superset_api" and r["task_id"] == task_id for r in records)
    assert [r["metadata"]["dashboard_id"] for r in records] == [10, 11, 12]


def test_ctrl_c_during_run_follow_cancels_the_task_and_exits_130(db, cli_run):
    """SIGINT during `run --follow`: the task is cancelled cooperatively, its last records printed, exit 130."""
    process = subprocess.Popen(
        [*COMMAND, "--db", db, "run", "dashboard_backup", "-p", "dashboards=500", "-p", "delay=0.02", "--follow"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while "GET /api/v1/dashboard/12" not in process.stdout.readline():
            assert time.monotonic() < deadline and process.poll() is None
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130, err
    assert "cancelling task" in err
    assert "[system]       Task cancelled after" in out and " CANCELLED in " in out.splitlines()[-1]
    (row,) = task_rows(cli_run)
    assert row["status"] == "CANCELLED" and row["progress"] < 0.5
