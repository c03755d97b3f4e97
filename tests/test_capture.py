"""Capture: stdlib logging and print inside a task land in that task (and only there); outside, nothing changes."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import threading

import pytest
from conftest import TIMEOUT

from nbtasklog import capture

pytestmark = pytest.mark.usefixtures("open_root_logger")


def mine(task):
    """(level, source, message) of a task's records without the runner's system records."""
    return [(r.level, r.source, r.message) for r in task.logs() if r.source != "system"]


# ---- stdlib logging -----------------------------------------------------------------------------
def test_stdlib_logging_lands_with_the_logger_name_as_source_and_extra_as_metadata(run):
    """logging calls inside a task become records with source = logger name, level mapped, extra= fields as metadata."""

    def plugin(params, context):
        log = logging.getLogger("myapp.db")
        log.info("connected to %s", "warehouse", extra={"db": "warehouse", "pool": {"size": 4}})
        log.warning("slow query")
        log.critical("gone")
        logging.getLogger("other").debug("below the task level")

    task = run(plugin)
    assert mine(task) == [
        ("INFO", "myapp.db", "connected to warehouse"),
        ("WARNING", "myapp.db", "slow query"),
        ("ERROR", "myapp.db", "gone"),
    ]
    first = task.logs(source="myapp.db")[0]
    assert first.metadata == {"db": "warehouse", "pool": {"size": 4}}
    assert task.logs(source="myapp.db", meta={"db": "warehouse"}) == [first]


def test_stdlib_exceptions_stack_info_and_bad_formats_are_kept(run):
    """logging.exception stores exc_type and traceback; stack_info is kept; a bad %-format is logged, not raised."""

    def plugin(params, context):
        log = logging.getLogger("errs")
        try:
            {}["missing"]
        except KeyError:
            log.exception("lookup failed")
        log.info("with stack", stack_info=True)
        # Straight to nbtasklog's handler: pytest's own capture handler re-raises formatting errors.
        capture._handler.handle(logging.LogRecord("errs", logging.INFO, __file__, 1, "%d items", ("many",), None))
        return "finished"

    task = run(plugin)
    assert task.result == "finished"
    failed, stacked, bad = task.logs(source="errs")
    assert (failed.level, failed.message) == ("ERROR", "lookup failed")
    assert failed.metadata["exc_type"] == "KeyError" and "Traceback" in failed.metadata["traceback"]
    assert "Stack (most recent call last)" in stacked.metadata["stack"]
    # Recorded as a TaskLogger call with a bad format is: the raw format, the error and the args in metadata.
    assert "'%d items'" in bad.message and bad.metadata["format_error"].startswith("TypeError")
    assert bad.metadata["format_args"] == ["'many'"]


def test_stdlib_debug_follows_the_task_level(run):
    """A stdlib DEBUG call lands when the task runs at DEBUG."""
    task = run(lambda params: logging.getLogger("dbg").debug("fine detail"), log_level="DEBUG")
    assert ("DEBUG", "dbg", "fine detail") in mine(task)


# ---- print --------------------------------------------------------------------------------------
def test_print_to_stdout_and_stderr_lands_as_their_sources(run):
    """print() lines become INFO records from stdout; stderr lines WARNING records from stderr; empty lines are skipped."""

    def plugin(params):
        print("hello", "world")
        print("oops", file=sys.stderr)
        print()
        sys.stdout.write("two\nlines\n")

    task = run(plugin)
    assert mine(task) == [
        ("INFO", "stdout", "hello world"),
        ("WARNING", "stderr", "oops"),
        ("INFO", "stdout", "two"),
        ("INFO", "stdout", "lines"),
    ]


def test_partial_lines_join_and_the_last_one_is_emitted_at_task_end(run):
    """Writes without newline join into one line; an unterminated last line is emitted when the task ends, before the end record."""

    def plugin(params):
        sys.stdout.write("progress: ")
        sys.stdout.write("50%")
        sys.stdout.write(" then 100%\nno newline at the end")
        sys.stderr.write("err tail")

    task = run(plugin)
    assert mine(task) == [
        ("INFO", "stdout", "progress: 50% then 100%"),
        ("INFO", "stdout", "no newline at the end"),
        ("WARNING", "stderr", "err tail"),
    ]
    assert task.logs()[-1].message.startswith("Task succeeded")


def test_partial_line_of_a_failing_task_is_emitted_before_the_failure(run):
    """A failing task's unterminated output is still recorded, before the failure record."""

    def plugin(params):
        sys.stdout.write("half a line")
        raise RuntimeError("stop")

    task = run(plugin)
    assert task.status == "FAILED"
    messages = [r.message for r in task.logs()]
    assert messages.index("half a line") < len(messages) - 1
    assert messages[-1].startswith("Task failed")


def test_carriage_return_redraws_keep_the_last_segment(run):
    """A progress bar redrawn with \\r is recorded as what a terminal would show last."""

    def plugin(params):
        for pct in (10, 50, 100):
            sys.stdout.write(f"\rloading {pct}%")
        sys.stdout.write("\n")
        print("a\rb\rfinal")

    task = run(plugin)
    assert mine(task) == [("INFO", "stdout", "loading 100%"), ("INFO", "stdout", "final")]


# ---- threads, asyncio, concurrency --------------------------------------------------------------
def test_a_thread_with_a_copied_context_is_attributed_and_a_plain_thread_is_not(run, capsys):
    """Code in a thread started with copy_context().run belongs to the task; a plain thread's output does not."""

    def plugin(params, context):
        def work(tag):
            print(f"print from {tag}")
            logging.getLogger("worker").warning("log from %s", tag)

        copied = threading.Thread(target=contextvars.copy_context().run, args=(work, "copied"))
        plain = threading.Thread(target=work, args=("plain",))
        for thread in (copied, plain):
            thread.start()
            thread.join()

    task = run(plugin)
    assert mine(task) == [("INFO", "stdout", "print from copied"), ("WARNING", "worker", "log from copied")]
    assert "print from plain" in capsys.readouterr().out  # went to the real stdout


def test_asyncio_gather_inside_an_async_execute_is_attributed(run):
    """Coroutines gathered by an async execute log into the task through the logger, stdlib logging and print."""

    async def step(context, n):
        await asyncio.sleep(0.001 * (3 - n))
        context.logger.info("logger %d", n)
        logging.getLogger("aio").info("stdlib %d", n)
        print(f"print {n}")
        return n

    async def plugin(params, context):
        return await asyncio.gather(*(step(context, n) for n in range(3)))

    task = run(plugin)
    assert task.result == [0, 1, 2]
    got = mine(task)
    assert len(got) == 9
    for n in range(3):
        assert ("INFO", "plugin", f"logger {n}") in got
        assert ("INFO", "aio", f"stdlib {n}") in got
        assert ("INFO", "stdout", f"print {n}") in got


def test_two_concurrent_tasks_never_see_each_others_records(engine):
    """Two tasks interleaving logger, stdlib and print output (partial lines too) each keep exactly their own records."""
    barrier = threading.Barrier(2, timeout=TIMEOUT)

    def plugin(params, context):
        name = params["name"]
        log = logging.getLogger(f"lib.{name}")
        for i in range(50):
            barrier.wait()  # both tasks are inside this loop at the same time
            context.logger.info("%s logger %d", name, i)
            log.info("%s stdlib %d", name, i)
            sys.stdout.write(f"{name} print ")
            barrier.wait()
            sys.stdout.write(f"{i}\n")

    tasks = {name: engine.run_task(plugin, {"name": name}) for name in ("A", "B")}
    for task in tasks.values():
        task.wait(TIMEOUT)
    for name, task in tasks.items():
        assert task.status == "SUCCESS", task.error
        other = "B" if name == "A" else "A"
        records = mine(task)
        assert len(records) == 150
        assert all(r[2].startswith(name + " ") for r in records), records
        assert not any(other in r[1] for r in records)
        assert [r[2] for r in records if r[1] == "stdout"] == [f"{name} print {i}" for i in range(50)]
        assert all(r.task_id == task.id for r in task.logs())


# ---- outside tasks ------------------------------------------------------------------------------
def test_outside_a_task_print_goes_to_the_real_stdout(run, capsys):
    """Once the proxy is installed, print outside any task still reaches the real stdout/stderr and no task."""
    task = run(lambda params: print("inside"))
    assert isinstance(sys.stdout, capture.TaskStream) and isinstance(sys.stderr, capture.TaskStream)
    print("outside out")
    print("outside err", file=sys.stderr)
    captured = capsys.readouterr()
    assert "outside out" in captured.out and "inside" not in captured.out
    assert "outside err" in captured.err
    assert [m for _, _, m in mine(task)] == ["inside"]


def test_the_proxy_behaves_like_a_text_stream():
    """Outside tasks the proxy writes through, is writable, and answers isatty, encoding and other attributes as the original."""
    import io

    raw = io.BytesIO()
    original = io.TextIOWrapper(raw, encoding="latin-1")
    stream = capture.TaskStream(original, "stdout", "INFO")
    assert stream.write("plain é\n") == 8
    stream.flush()
    assert raw.getvalue() == "plain é\n".encode("latin-1")
    assert stream.writable() and stream.isatty() is original.isatty() is False
    assert stream.encoding == "latin-1"
    assert stream.buffer is raw  # anything else is the original's


def test_a_warning_outside_tasks_with_no_other_handler_still_shows(capsys):
    """Outside tasks, with only nbtasklog's handler on the root, a WARNING is printed the way Python's last resort does."""
    capture.install(logging.INFO)
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [h for h in saved if isinstance(h, capture.TaskLogHandler)]
    try:
        logging.getLogger("lonely").warning("nobody else listens")
        logging.getLogger("lonely").info("but not info")
    finally:
        root.handlers = saved
    err = capsys.readouterr().err
    assert "nobody else listens" in err and "but not info" not in err


def test_install_is_idempotent():
    """Installing again adds no second handler and does not wrap the proxies twice."""
    capture.install(logging.INFO)
    capture.install(logging.INFO)
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, capture.TaskLogHandler)]
    assert len(handlers) == 1
    assert isinstance(sys.stdout, capture.TaskStream) and not isinstance(sys.stdout.original, capture.TaskStream)
