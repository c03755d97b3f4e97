"""belief_scope: Entry / Coherence / Exit records at DEBUG, in the task's log or the application log."""

from __future__ import annotations

import asyncio
import logging

import pytest

from nbtasklog import belief_scope

from conftest import TIMEOUT

SOURCE = "belief_scope"


def scope_records(task):
    return [(r.level, r.message, r.metadata) for r in task.logs(source=SOURCE)]


def strip_duration(records):
    """The records with the measured duration_ms checked (a non-negative number) and removed."""
    out = []
    for level, message, meta in records:
        if meta.get("phase") == "exit":
            assert isinstance(meta.pop("duration_ms"), (int, float)) and meta.get("anchor")
        out.append((level, message, meta))
    return out


def test_context_manager_logs_entry_coherence_and_exit_at_debug(run):
    """Inside a task at DEBUG, `with belief_scope(...)` logs Entry (with the message), Coherence:OK and Exit, source belief_scope."""

    def plugin(params, context):
        context.logger.info("before")
        with belief_scope("load_users", "from api"):
            context.logger.info("inside")
        context.logger.info("after")

    task = run(plugin, log_level="DEBUG")
    assert task.status == "SUCCESS"
    mine = [(r.source, r.message) for r in task.logs() if r.source != "system"]
    assert mine == [
        ("plugin", "before"),
        (SOURCE, "[load_users][Entry] from api"),
        ("plugin", "inside"),
        (SOURCE, "[load_users][Coherence:OK]"),
        (SOURCE, "[load_users][Exit]"),
        ("plugin", "after"),
    ]
    assert strip_duration(scope_records(task)) == [
        ("DEBUG", "[load_users][Entry] from api", {"anchor": "load_users", "phase": "entry"}),
        ("DEBUG", "[load_users][Coherence:OK]", {"anchor": "load_users", "phase": "coherence"}),
        ("DEBUG", "[load_users][Exit]", {"anchor": "load_users", "phase": "exit"}),
    ]


def test_decorator_on_sync_and_async_functions(run):
    """As a decorator it wraps every call (sync and async), keeps the function's name and returns its value."""

    @belief_scope("sync_step")
    def sync_step(x):
        return x + 1

    @belief_scope("async_step", "awaiting")
    async def async_step(x):
        await asyncio.sleep(0)
        return x * 2

    assert sync_step.__name__ == "sync_step" and async_step.__name__ == "async_step"
    assert asyncio.iscoroutinefunction(async_step)

    def plugin(params, context):
        return [sync_step(1), sync_step(2), asyncio.run(async_step(5))]

    task = run(plugin, log_level="DEBUG")
    assert task.result == [2, 3, 10]
    assert [m for _, m, _ in scope_records(task)] == [
        "[sync_step][Entry]", "[sync_step][Coherence:OK]", "[sync_step][Exit]",
        "[sync_step][Entry]", "[sync_step][Coherence:OK]", "[sync_step][Exit]",
        "[async_step][Entry] awaiting", "[async_step][Coherence:OK]", "[async_step][Exit]",
    ]


def test_an_async_execute_with_decorated_coroutines_is_traced(run):
    """Decorated coroutines awaited by an async execute log into the task, nested scopes in order."""

    @belief_scope("inner")
    async def inner():
        await asyncio.sleep(0)

    async def plugin(params, context):
        with belief_scope("outer"):
            await inner()

    task = run(plugin, log_level="DEBUG")
    assert [m for _, m, _ in scope_records(task)] == [
        "[outer][Entry]", "[inner][Entry]", "[inner][Coherence:OK]", "[inner][Exit]",
        "[outer][Coherence:OK]", "[outer][Exit]",
    ]


def test_hidden_at_info(run):
    """At the default task level INFO the DEBUG scope records are not persisted."""

    def plugin(params, context):
        with belief_scope("quiet"):
            context.logger.info("work")

    task = run(plugin)
    assert task.status == "SUCCESS"
    assert scope_records(task) == []
    assert [r.message for r in task.logs(source="plugin")] == ["work"]


def test_failure_logs_coherence_failed_and_the_exception_passes_through_unchanged(run):
    """An exception inside logs Coherence:Failed with its type and text, then Exit, and reaches the caller as the same object."""
    raised = ValueError("bad row 7")

    def plugin(params, context):
        try:
            with belief_scope("parse"):
                raise raised
        except ValueError as caught:
            return caught is raised and caught.__traceback__ is not None

    task = run(plugin, log_level="DEBUG")
    assert task.result is True
    assert strip_duration(scope_records(task)) == [
        ("DEBUG", "[parse][Entry]", {"anchor": "parse", "phase": "entry"}),
        ("DEBUG", "[parse][Coherence:Failed] ValueError: bad row 7", {"anchor": "parse", "phase": "coherence", "error": "ValueError"}),
        ("DEBUG", "[parse][Exit]", {"anchor": "parse", "phase": "exit"}),
    ]


def test_a_failing_decorated_function_fails_the_task_with_its_own_error(run):
    """The decorator does not swallow or wrap: the task fails with the original exception."""

    @belief_scope("step")
    def step():
        raise KeyError("k")

    task = run(lambda params: step(), log_level="DEBUG")
    assert task.status == "FAILED" and task.error == "KeyError: 'k'"
    assert "[step][Coherence:Failed] KeyError: 'k'" in [m for _, m, _ in scope_records(task)]


def test_settings_debug_makes_scopes_visible_and_disabling_hides_them(engine):
    """task_log_level=DEBUG shows scope records; belief_scope_enabled=False hides them even at DEBUG."""

    def plugin(params, context):
        with belief_scope("toggle"):
            context.logger.debug("debug from plugin")

    engine.update_settings(task_log_level="DEBUG")
    shown = engine.run_task(plugin)
    shown.wait(TIMEOUT)
    engine.update_settings(belief_scope_enabled=False)
    hidden = engine.run_task(plugin)
    hidden.wait(TIMEOUT)
    assert len(scope_records(shown)) == 3
    assert scope_records(hidden) == []
    assert [r.message for r in hidden.logs(source="plugin")] == ["debug from plugin"]  # DEBUG itself still on


def test_outside_a_task_scopes_go_to_the_application_logger(caplog):
    """Outside tasks the records go to the stdlib logger nbtasklog.belief_scope at DEBUG, with anchor and phase as extras."""
    with caplog.at_level(logging.DEBUG, logger="nbtasklog.belief_scope"):
        with pytest.raises(RuntimeError):
            with belief_scope("app_anchor", "msg"):
                raise RuntimeError("outside")
    records = [r for r in caplog.records if r.name == "nbtasklog.belief_scope"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.DEBUG, "[app_anchor][Entry] msg"),
        (logging.DEBUG, "[app_anchor][Coherence:Failed] RuntimeError: outside"),
        (logging.DEBUG, "[app_anchor][Exit]"),
    ]
    assert [r.phase for r in records] == ["entry", "coherence", "exit"]
    assert records[1].error == "RuntimeError"


def test_outside_a_task_nothing_when_the_app_logger_is_above_debug(caplog):
    """Outside tasks, an application logger at INFO gets no scope records."""
    with caplog.at_level(logging.INFO, logger="nbtasklog.belief_scope"):
        with belief_scope("quiet_app"):
            pass
    assert [r for r in caplog.records if r.name == "nbtasklog.belief_scope"] == []


def test_outside_a_task_the_engine_toggle_applies(engine, caplog):
    """belief_scope_enabled=False on the engine silences scopes outside tasks too."""
    engine.update_settings(belief_scope_enabled=False)
    with caplog.at_level(logging.DEBUG, logger="nbtasklog.belief_scope"):
        with belief_scope("off"):
            pass
    assert [r for r in caplog.records if r.name == "nbtasklog.belief_scope"] == []
    engine.update_settings(belief_scope_enabled=True)
    with caplog.at_level(logging.DEBUG, logger="nbtasklog.belief_scope"):
        with belief_scope("on"):
            pass
    assert len([r for r in caplog.records if r.name == "nbtasklog.belief_scope"]) == 3
