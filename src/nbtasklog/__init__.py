"""nbtasklog: every task's logs kept apart, attributed to their source, persisted, filterable and live."""

from __future__ import annotations

from typing import Any

from .belief import belief_scope
from .context import TaskCancelled, TaskContext, current_context
from .connection import connect, get_engine
from .engine import Engine
from .errors import TaskActiveError, UnknownTaskError
from .filter import FilterError, LogFilter, make_filter
from .levels import Level, parse_level
from .logger import TaskLogger
from .plugins import Plugin, UnknownPluginError, register
from .record import LogRecord
from .settings import Settings
from .store.buffer import Health
from .store.store import SQLError
from .task import LogRecords, Task

__version__ = "0.1.0"

__all__ = [
    "Engine", "FilterError", "Health", "Level", "LogFilter", "LogRecord", "LogRecords", "Plugin",
    "SQLError", "Settings", "Task", "TaskActiveError", "TaskCancelled", "TaskContext", "TaskLogger",
    "UnknownPluginError", "UnknownTaskError", "belief_scope", "cleanup", "connect", "current_context",
    "get_engine", "get_settings", "get_task", "health", "list_plugins", "list_tasks", "make_filter",
    "parse_level", "register", "run_task", "sql", "update_settings",
    "LogViewer", "SettingsPanel", "TaskList",
]


def __getattr__(name: str) -> Any:
    """The widgets, imported on first use (anywidget is not needed to log or query)."""
    if name in ("LogViewer", "TaskList", "SettingsPanel"):
        from . import widget

        return getattr(widget, name)
    raise AttributeError(f"module 'nbtasklog' has no attribute {name!r}")


def run_task(plugin: Any, params: dict[str, Any] | None = None, **options: Any) -> Task:
    """Start a task with a plugin (registered name, Plugin, or function) on the default engine."""
    return get_engine().run_task(plugin, params, **options)


def get_task(task_id: str) -> Task:
    return get_engine().task(task_id)


def list_tasks(**filters: Any) -> list[Task]:
    """Tasks newest first; filters: status, plugin, user (who started them), limit, before."""
    return get_engine().tasks(**filters)


def list_plugins() -> list[dict[str, Any]]:
    """The plugins a task can be started with: name, description, params_schema, runs_in ("local" or "server")."""
    return get_engine().plugins()


def sql(query: str, **options: Any) -> Any:
    """A read-only SQL query over `tasks` and `task_logs`; a pandas DataFrame (arrow=True: a pyarrow Table)."""
    return get_engine().sql(query, **options)


def get_settings() -> Settings:
    return get_engine().settings


def update_settings(**changes: Any) -> Settings:
    """Change log_level, task_log_level or belief_scope_enabled at runtime; effective at once."""
    return get_engine().update_settings(**changes)


def cleanup(older_than: Any, user: str | None = None) -> list[str]:
    """Delete finished tasks older than `older_than` ('30d', a timedelta) with their logs (only `user`'s if given)."""
    return get_engine().cleanup(older_than, user)


def health() -> Health:
    return get_engine().health()


def _show_tasks_as_log_viewers() -> None:
    """In a notebook's kernel, a Task displays as its log viewer (nbtasklog.LogViewer), with its text form
    for frontends without widgets. Registered with IPython here, at the top of the package, so that
    the Task handle itself knows nothing of widgets; the widget module loads when one is first shown."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return

    def log_viewer(task: Task, include: Any = None, exclude: Any = None) -> Any:
        from .widget import task_mimebundle

        return task_mimebundle(task, include=include, exclude=exclude)

    shell.display_formatter.mimebundle_formatter.for_type(Task, log_viewer)


_show_tasks_as_log_viewers()


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """Where JupyterLab finds the sidebar (the prebuilt extension the wheel ships)."""
    return [{"src": "labextension", "dest": "nbtasklog"}]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    """Where jupyter-server finds the extension (enabled by the config file the wheel installs)."""
    from .server import NbTaskLogApp

    return [{"module": "nbtasklog.server", "app": NbTaskLogApp}]
