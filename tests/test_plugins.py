"""Plugins: every supported shape runs as a task, the registry, and the shipped entry-point plugins."""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import Any

import pytest

import nbtasklog
from nbtasklog import Plugin, TaskContext, UnknownPluginError, current_context
from nbtasklog.plugins import Registry, as_callable, plugin_info, plugin_name

from conftest import TIMEOUT


@pytest.fixture
def reg_engine(db_path, fresh_registry):
    """An engine whose registry is private to the test."""
    engine = nbtasklog.Engine(db_path, flush_interval=0.05, handle_signals=False, registry=fresh_registry)
    yield engine
    engine.close(timeout=5)


def run_on(engine: nbtasklog.Engine, plugin: Any, params: dict | None = None) -> nbtasklog.Task:
    task = engine.run_task(plugin, params)
    task.wait(TIMEOUT)
    return task


def own(task: nbtasklog.Task) -> list[tuple[str, str, str]]:
    """(level, source, message) of a task's records, the runner's own system records left out."""
    return [(r.level, r.source, r.message) for r in task.logs() if r.source != "system"]


# ---- shapes -------------------------------------------------------------------------------------
class NewStyle(Plugin):
    name = "new_style"

    def execute(self, params: dict, context: TaskContext) -> str:
        context.logger.info("n=%d", params["n"])
        return f"done {context.task_id}"


def test_plugin_subclass_and_instance_get_params_and_context(engine):
    """A Plugin subclass, given as the class or as an instance, gets (params, context) and its return value is the result."""
    for plugin in (NewStyle, NewStyle()):
        task = run_on(engine, plugin, {"n": 3})
        assert task.status == "SUCCESS"
        assert task.plugin == "new_style"
        assert task.result == f"done {task.id}"
        assert own(task) == [("INFO", "plugin", "n=3")]


class Legacy:
    name = "legacy"

    def execute(self, params):
        logging.getLogger("legacy.module").info("legacy got %s", params["x"])
        print("printed by legacy")
        current_context().logger.with_source("legacy_ctx").info("reached the new API")
        return params["x"] * 2


def test_legacy_execute_params_only_still_logs_into_its_task(engine, open_root_logger):
    """An old execute(params) plugin is called with params alone; its stdlib logging and print land in its task."""
    task = run_on(engine, Legacy(), {"x": 21})
    assert task.status == "SUCCESS" and task.result == 42
    assert own(task) == [
        ("INFO", "legacy.module", "legacy got 21"),
        ("INFO", "stdout", "printed by legacy"),
        ("INFO", "legacy_ctx", "reached the new API"),
    ]


def keep_signature(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def lose_signature(func):
    def wrapper(*args):
        return func(*args)

    return wrapper


class DecoratedLegacy:
    name = "decorated_legacy"

    @keep_signature
    def execute(self, params):
        return ("wrapped", params["x"])


class DecoratedNoWraps:
    name = "decorated_no_wraps"

    @lose_signature
    def execute(self, params):
        return ("bare", params["x"])


class DecoratedNewStyle:
    name = "decorated_new_style"

    @keep_signature
    def execute(self, params, context):
        return ("new", params["x"], context.task_id)


@pytest.mark.parametrize(("plugin", "expected"), [
    (DecoratedLegacy(), ("wrapped", 1)),
    (DecoratedNoWraps(), ("bare", 1)),
])
def test_decorated_legacy_plugins_are_called_with_params_only(engine, plugin, expected):
    """A legacy execute behind a decorator, with or without functools.wraps (*args), gets params alone."""
    task = run_on(engine, plugin, {"x": 1})
    assert task.status == "SUCCESS", task.error
    assert task.result == expected


def test_a_decorated_new_style_execute_keeps_its_context(engine):
    """Behind functools.wraps the (params, context) signature is still seen and the context passed."""
    task = run_on(engine, DecoratedNewStyle(), {"x": 1})
    assert task.status == "SUCCESS", task.error
    assert task.result == ("new", 1, task.id)


def test_plain_functions_with_and_without_context(engine):
    """fn(params, context) gets the context, fn(params) params alone, fn() nothing; the function name is the plugin name."""

    def with_context(params, context):
        context.logger.info("ctx")
        return context.config.get("k")

    def params_only(params):
        print("params only", params["x"])
        return params["x"]

    def no_args():
        return "none"

    task = engine.run_task(with_context, config={"k": "v"})
    task.wait(TIMEOUT)
    assert (task.status, task.result, task.plugin) == ("SUCCESS", "v", "with_context")
    assert own(task) == [("INFO", "plugin", "ctx")]
    task = run_on(engine, params_only, {"x": 5})
    assert (task.status, task.result) == ("SUCCESS", 5)
    assert own(task) == [("INFO", "stdout", "params only 5")]
    assert run_on(engine, no_args).result == "none"


def test_a_keyword_named_context_counts_as_new_style():
    """A parameter named `context` (even keyword-only) means the new signature."""
    seen = {}

    def fn(params, *, context):
        seen["context"] = context

    as_callable(fn)({"a": 1}, "CTX")
    assert seen == {"context": "CTX"}


def test_async_execute_is_awaited(engine):
    """An async execute runs to completion in the task and its result is the task's result."""

    class AsyncPlugin(Plugin):
        name = "async_plugin"

        async def execute(self, params, context):
            await asyncio.sleep(0.01)
            context.logger.info("awaited")
            return "async result"

    task = run_on(engine, AsyncPlugin)
    assert (task.status, task.result) == ("SUCCESS", "async result")
    assert own(task) == [("INFO", "plugin", "awaited")]


def test_a_plugin_that_raises_fails_its_task_with_the_error(engine):
    """An exception in execute makes the task FAILED with 'Type: message' and an ERROR system record with the traceback."""

    def broken(params, context):
        raise KeyError("dashboard 7")

    task = run_on(engine, broken)
    assert task.status == "FAILED"
    assert task.error == "KeyError: 'dashboard 7'"
    last = task.logs(level="ERROR")[-1]
    assert last.source == "system" and last.metadata["exc_type"] == "KeyError" and "broken" in last.metadata["traceback"]


def test_the_base_class_execute_is_not_implemented(engine):
    """A Plugin subclass that forgets execute fails with NotImplementedError naming the class."""

    class Forgot(Plugin):
        pass

    task = run_on(engine, Forgot)
    assert task.status == "FAILED"
    assert "NotImplementedError" in task.error and "Forgot.execute" in task.error


def test_something_that_is_not_a_plugin_is_refused():
    """An object with neither execute() nor __call__ is not a plugin: TypeError at once."""
    with pytest.raises(TypeError, match="is not a plugin"):
        as_callable(42)
    with pytest.raises(TypeError, match="is not a plugin"):
        Registry().register(42, name="x")


# ---- names and the registry ---------------------------------------------------------------------
def test_plugin_names_and_info():
    """name attribute first, else the class or function name; info has the docstring's first paragraph and the schema."""

    class Unnamed(Plugin):
        """Does things.

        More detail.
        """

        params_schema = {"type": "object"}

    def fn(params):
        """A function plugin."""

    assert plugin_name(NewStyle) == plugin_name(NewStyle()) == "new_style"
    assert plugin_name(Unnamed) == "Unnamed"
    assert plugin_name(Legacy()) == "legacy"
    assert plugin_name(fn) == "fn"
    assert plugin_info(Unnamed) == {"name": "Unnamed", "description": "Does things.", "params_schema": {"type": "object"}}
    assert plugin_info(fn)["description"] == "A function plugin."


def test_register_directly_as_decorator_and_with_a_name(reg_engine, fresh_registry):
    """register(obj), @register and @register(name=...) all make the plugin runnable by name, and return it unchanged."""

    def direct(params, context):
        context.logger.info("direct")

    assert fresh_registry.register(direct) is direct

    @fresh_registry.register
    def decorated(params, context):
        context.logger.info("decorated")

    @fresh_registry.register(name="custom-name")
    class Named(Plugin):
        def execute(self, params, context):
            context.logger.info("named")

    assert callable(decorated) and Named.__name__ == "Named"
    for name, message in (("direct", "direct"), ("decorated", "decorated"), ("custom-name", "named")):
        task = run_on(reg_engine, name)
        assert task.status == "SUCCESS" and task.plugin == name
        assert own(task) == [("INFO", "plugin", message)]
    assert {"direct", "decorated", "custom-name"} <= set(fresh_registry.names())
    assert fresh_registry.is_runtime("custom-name") and not fresh_registry.is_runtime("dashboard_backup")
    fresh_registry.unregister("direct")
    assert "direct" not in fresh_registry.names()


def test_unknown_plugin_error_lists_the_known_names(reg_engine, fresh_registry):
    """Running an unknown name raises UnknownPluginError (a LookupError) whose message lists the known plugins."""
    fresh_registry.register(lambda params: None, name="mine")
    with pytest.raises(UnknownPluginError) as info:
        reg_engine.run_task("no_such_plugin")
    error = info.value
    assert isinstance(error, LookupError)
    assert error.name == "no_such_plugin"
    assert "unknown plugin 'no_such_plugin'" in str(error)
    for name in ("mine", "dashboard_backup", "legacy_cleanup", "high_volume"):
        assert name in error.known and name in str(error)


def test_unknown_plugin_error_without_plugins_says_so():
    """With nothing registered the message says 'none registered'."""
    assert str(UnknownPluginError("x", [])) == "unknown plugin 'x'; known plugins: none registered"


# ---- entry points -------------------------------------------------------------------------------
def test_entry_point_plugins_are_found_by_name(fresh_registry):
    """The plugins declared in pyproject.toml's nbtasklog.plugins group are listed and described."""
    names = fresh_registry.names()
    assert {"dashboard_backup", "legacy_cleanup", "high_volume"} <= set(names)
    described = {p["name"]: p for p in fresh_registry.describe()}
    assert described["high_volume"]["params_schema"]["properties"]["records"]["default"] == 1_000_000
    assert described["dashboard_backup"]["description"].startswith("Back up dashboards")


def test_dashboard_backup_logs_from_three_sources_with_metadata(reg_engine):
    """dashboard_backup runs by name and logs from plugin, superset_api and system with dashboard_id metadata."""
    task = run_on(reg_engine, "dashboard_backup", {"dashboards": 4, "delay": 0, "seed": 1})
    assert task.status == "SUCCESS", task.error
    result = task.result
    assert result["saved"] + len(result["failed"]) == 4
    logs = task.logs()
    assert {"plugin", "superset_api", "system"} <= {r.source for r in logs}
    assert not [r for r in logs if r.level == "DEBUG"]  # belief_scope and api.debug are below INFO
    api = task.logs(source="superset_api", meta=["dashboard_id"])
    assert {r.metadata["dashboard_id"] for r in api} == {10, 11, 12, 13}
    assert task.logs(meta={"dashboard_id": 12}, search="GET /api/v1/dashboard/12")[0].source == "superset_api"
    assert task.progress == 1.0


def test_legacy_cleanup_logs_through_stdlib_logging_and_print(reg_engine, open_root_logger):
    """legacy_cleanup (execute(params), logging + print) has its records in its task under the right sources."""
    task = run_on(reg_engine, "legacy_cleanup", {"files": 2})
    assert task.status == "SUCCESS" and task.result == 2
    assert own(task) == [
        ("INFO", "legacy_cleanup", "Cleaning 2 temporary files"),
        ("INFO", "stdout", "removed /tmp/export-0.zip"),
        ("INFO", "stdout", "removed /tmp/export-1.zip"),
        ("WARNING", "legacy_cleanup", "Cleanup skipped locked file /tmp/export-locked.zip"),
    ]


def test_high_volume_emits_the_requested_records(reg_engine):
    """high_volume with records=1000 persists the 900 records at INFO and above (every tenth is DEBUG) from four sources."""
    task = run_on(reg_engine, "high_volume", {"records": 1000})
    assert task.status == "SUCCESS" and task.result == 1000
    mine = [r for r in task.logs() if r.source != "system"]
    assert len(mine) == 900
    assert {r.source for r in mine} == {"plugin", "reader", "writer", "superset_api"}
    assert len(task.logs(level="ERROR")) == 100
    assert mine[0].message == "record 1 of 1000" and mine[0].metadata == {"row": 0}
