"""Runtime settings: checked on update, effective at once (running tasks included), persisted, announced."""

from __future__ import annotations

import logging
import sys
import threading

import pytest

import nbtasklog
from nbtasklog import Level, Settings
from nbtasklog.settings import SettingsManager, parse_settings

from conftest import TIMEOUT


def test_defaults():
    """Application and task levels start at INFO, belief_scope enabled."""
    assert Settings() == Settings(Level.INFO, Level.INFO, True)
    assert Settings().to_dict() == {"log_level": "INFO", "task_log_level": "INFO", "belief_scope_enabled": True}
    assert Settings().to_strings() == {"log_level": "INFO", "task_log_level": "INFO", "belief_scope_enabled": "true"}


def test_update_parses_names_numbers_and_boolean_words(engine):
    """Levels in any case or as stdlib numbers, booleans as bools or on/off/yes/no/true/false/1/0 words."""
    new = engine.update_settings(task_log_level="warning", log_level=10, belief_scope_enabled="off")
    assert new == Settings(log_level=Level.DEBUG, task_log_level=Level.WARNING, belief_scope_enabled=False)
    assert engine.settings is new
    assert engine.update_settings(belief_scope_enabled="YES").belief_scope_enabled is True


@pytest.mark.parametrize(("changes", "fragments"), [
    ({"task_log_level": "loud"}, ["task_log_level", "unknown log level 'loud'", "DEBUG, INFO, WARNING, ERROR"]),
    ({"log_level": 15}, ["log_level", "unknown log level 15"]),
    ({"verbosity": "DEBUG"}, ["unknown setting verbosity", "log_level, task_log_level, belief_scope_enabled"]),
    ({"belief_scope_enabled": "maybe"}, ["belief_scope_enabled must be true or false, not 'maybe'"]),
    ({"belief_scope_enabled": 2}, ["belief_scope_enabled must be true or false"]),
])
def test_update_rejects_bad_values_with_a_clear_message_and_changes_nothing(engine, changes, fragments):
    """A bad level, an unknown setting or a non-boolean raises ValueError naming it; no setting changes, even valid ones given with it."""
    before = engine.settings
    valid = {"log_level": "DEBUG"} if "task_log_level" in changes else {"task_log_level": "ERROR"}
    with pytest.raises(ValueError) as info:
        engine.update_settings(**changes, **valid)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert engine.settings == before


def test_parse_settings_is_pure():
    """parse_settings returns a new Settings and leaves the current one alone."""
    current = Settings()
    new = parse_settings(current, {"task_log_level": "ERROR"})
    assert new.task_log_level is Level.ERROR and current.task_log_level is Level.INFO


def test_log_level_sets_the_application_logger(engine):
    """log_level is the level of the 'nbtasklog' stdlib logger (application logs), separate from task_log_level."""
    engine.update_settings(log_level="ERROR")
    assert logging.getLogger("nbtasklog").level == logging.ERROR
    assert engine.settings.task_log_level is Level.INFO
    engine.update_settings(log_level="DEBUG")
    assert logging.getLogger("nbtasklog").getEffectiveLevel() == logging.DEBUG


def test_task_log_level_warning_persists_only_warning_and_error(run, engine):
    """With task_log_level WARNING a new task keeps only its WARNING and ERROR records (US4 scenario 4)."""
    engine.update_settings(task_log_level="WARNING")

    def plugin(params, context):
        for level in ("debug", "info", "warning", "error"):
            getattr(context.logger, level)(level)

    task = run(plugin)
    assert {r.level for r in task.logs()} <= {"WARNING", "ERROR"}
    assert [r.message for r in task.logs(source="plugin")] == ["warning", "error"]


def test_a_change_reaches_a_running_task_at_once(engine, open_root_logger):
    """A task already RUNNING follows task_log_level at once: after WARNING only WARNING/ERROR of its later calls persist, on every path."""
    started, release = threading.Event(), threading.Event()

    def plugin(params, context):
        stdlib = logging.getLogger("settings.plugin")
        context.logger.info("info before")
        context.logger.debug("debug before")
        started.set()
        assert release.wait(TIMEOUT)
        for level in ("debug", "info", "warning", "error"):
            getattr(context.logger, level)(f"{level} after")
            getattr(stdlib, level)(f"stdlib {level} after")
        print("stdout after")
        print("stderr after", file=sys.stderr)

    task = engine.run_task(plugin)
    assert started.wait(TIMEOUT)
    assert task.status == "RUNNING"
    engine.update_settings(task_log_level="WARNING")
    release.set()
    task.wait(TIMEOUT)
    assert task.status == "SUCCESS", task.error
    mine = [(r.level, r.message) for r in task.logs() if r.source != "system"]
    assert mine == [
        ("INFO", "info before"),
        ("WARNING", "warning after"), ("WARNING", "stdlib warning after"),
        ("ERROR", "error after"), ("ERROR", "stdlib error after"),
        ("WARNING", "stderr after"),
    ]


def test_a_per_task_level_overrides_the_setting_even_when_it_changes(engine):
    """A task started with log_level=DEBUG keeps DEBUG when task_log_level changes while it runs."""
    started, release = threading.Event(), threading.Event()

    def plugin(params, context):
        started.set()
        assert release.wait(TIMEOUT)
        context.logger.debug("still debug")

    task = engine.run_task(plugin, log_level="debug")
    assert started.wait(TIMEOUT)
    engine.update_settings(task_log_level="ERROR")
    release.set()
    task.wait(TIMEOUT)
    assert [r.message for r in task.logs(source="plugin")] == ["still debug"]
    assert task.info()["log_level"] == "DEBUG"


def test_settings_persist_across_engines_on_the_same_file(engine, db_path):
    """Values set on one engine are read by a new engine opened on the same file after the first is closed."""
    engine.update_settings(task_log_level="ERROR", log_level="WARNING", belief_scope_enabled=False)
    engine.close()
    reopened = nbtasklog.Engine(db_path, flush_interval=0.05, handle_signals=False)
    try:
        assert reopened.settings == Settings(log_level=Level.WARNING, task_log_level=Level.ERROR, belief_scope_enabled=False)

        def plugin(params, context):
            context.logger.warning("dropped at ERROR")
            context.logger.error("kept")

        task = reopened.run_task(plugin)
        task.wait(TIMEOUT)
        assert [r.message for r in task.logs(source="plugin")] == ["kept"]
    finally:
        reopened.close()


def test_listeners_hear_every_change_until_they_unsubscribe(engine, caplog):
    """on_settings_change listeners get the new Settings after each update; a failing one does not stop the others."""
    heard: list[Settings] = []

    def broken(settings: Settings) -> None:
        raise RuntimeError("listener bug")

    engine.on_settings_change(broken)
    unsubscribe = engine.on_settings_change(heard.append)
    engine.update_settings(task_log_level="DEBUG")
    engine.update_settings(belief_scope_enabled=False)
    unsubscribe()
    engine.update_settings(task_log_level="ERROR")
    assert [(s.task_log_level, s.belief_scope_enabled) for s in heard] == [(Level.DEBUG, True), (Level.DEBUG, False)]
    assert "settings listener failed" in caplog.text
    unsubscribe()  # a second call is harmless


def test_a_failed_update_calls_no_listener(engine):
    """Listeners are not called when the update is refused."""
    heard: list[Settings] = []
    engine.on_settings_change(heard.append)
    with pytest.raises(ValueError):
        engine.update_settings(task_log_level="nope")
    assert heard == []


def test_manager_load_ignores_bad_rows_and_keeps_newer_local_changes(caplog):
    """load() applies stored values, ignores unknown keys, warns on bad values, and never undoes a change made
    here that is not stored yet; once it is, a later value stored by another process applies."""
    written: list[dict[str, str]] = []
    manager = SettingsManager(persist=written.append)
    manager.load(lambda: {"task_log_level": "DEBUG", "unrelated": "x"})
    assert manager.current.task_log_level is Level.DEBUG
    manager.update(task_log_level="ERROR")
    assert written == [{"task_log_level": "ERROR"}]
    unstored = {"task_log_level"}
    manager.load(lambda: {"task_log_level": "DEBUG", "belief_scope_enabled": "false"}, lambda: unstored)  # stale
    assert manager.current.task_log_level is Level.ERROR
    assert manager.current.belief_scope_enabled is False
    unstored.clear()  # ERROR was written; then another process stored WARNING
    manager.load(lambda: {"task_log_level": "WARNING"}, lambda: unstored)
    assert manager.current.task_log_level is Level.WARNING
    with caplog.at_level(logging.WARNING, logger="nbtasklog"):
        manager.load(lambda: {"log_level": "shouting"})
    assert manager.current.log_level is Level.INFO
    assert "ignoring stored settings" in caplog.text
