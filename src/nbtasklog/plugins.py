"""Plugins: the base class, the registry (entry points and register()), and calling any plugin shape.

A plugin is a `Plugin` subclass or instance with `execute(params, context)`, an old-style object
with `execute(params)` (FR-007), or a plain function `fn(params, context)` / `fn(params)`.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from .context import TaskContext

ENTRY_POINT_GROUP = "nbtasklog.plugins"
log = logging.getLogger("nbtasklog.plugins")


class UnknownPluginError(LookupError):
    """No plugin of that name; the message lists the known ones."""

    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = known
        listing = ", ".join(known) if known else "none registered"
        super().__init__(f"unknown plugin {name!r}; known plugins: {listing}")

    def __str__(self) -> str:
        return self.args[0]


class Plugin:
    """Base class for plugins. Set `name` (defaults to the class name) and implement `execute`.

    `description` and `params_schema` (a JSON Schema object for `params`) are shown to users.
    """

    name: str = ""
    description: str = ""
    params_schema: dict[str, Any] | None = None

    def execute(self, params: dict[str, Any], context: TaskContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.execute(params, context) is not implemented")


def plugin_name(plugin: Any) -> str:
    """The registry name of a plugin class, instance or function."""
    name = getattr(plugin, "name", None)
    if isinstance(name, str) and name:
        return name
    if inspect.isclass(plugin) or inspect.isfunction(plugin) or inspect.ismethod(plugin):
        return plugin.__name__
    return type(plugin).__name__


def plugin_info(plugin: Any) -> dict[str, Any]:
    """Name, description and parameter schema, for listings."""
    doc = getattr(plugin, "description", "") or inspect.cleandoc(plugin.__doc__ or "")  # own docstring only
    return {
        "name": plugin_name(plugin),
        "description": doc.strip().split("\n\n")[0],
        "params_schema": getattr(plugin, "params_schema", None),
    }


def as_callable(plugin: Any) -> Callable[[dict[str, Any], TaskContext], Any]:
    """A function (params, context) -> result for any supported plugin shape."""
    if inspect.isclass(plugin):
        plugin = plugin()
    target = getattr(plugin, "execute", None)
    if target is None:
        if not callable(plugin):
            raise TypeError(f"{plugin!r} is not a plugin: give a Plugin, an object with execute(), or a function")
        target = plugin
    arity = _positional_arity(target)
    if arity == 3:  # def execute(self, params, *, context)
        return lambda params, context: target(params, context=context)
    if arity >= 2:
        return lambda params, context: target(params, context)
    if arity == 1:  # the old execute(params) signature: logs still reach the task through capture
        return lambda params, context: target(params)
    return lambda params, context: target()


def _positional_arity(func: Callable[..., Any]) -> int:
    """How many positional arguments to pass: 2 (params, context), 1 (params only) or 0; 3 means params and context=.

    `*args` counts as the old single-argument form: old plugins wrapped by a decorator that
    lost the signature took params alone, and a new-style plugin can still reach its context
    through nbtasklog.current_context().
    """
    try:
        signature = inspect.signature(func)  # follows functools.wraps' __wrapped__
    except (TypeError, ValueError):
        return 1
    params = list(signature.parameters.values())
    if any(p.name == "context" and p.kind is p.KEYWORD_ONLY for p in params):
        return 3
    if any(p.name == "context" and p.kind is not p.VAR_KEYWORD for p in params):
        return 2
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2:
        return 2
    if positional or any(p.kind is p.VAR_POSITIONAL for p in params):
        return 1
    return 0


class Registry:
    """Plugins by name: entry points of the `nbtasklog.plugins` group, plus those registered at runtime."""

    def __init__(self) -> None:
        self._plugins: dict[str, Any] = {}
        self._entry_points_loaded = False
        self._runtime: set[str] = set()
        self._lock = threading.Lock()

    def register(self, plugin: Any = None, *, name: str | None = None) -> Any:
        """Register a plugin; usable as `register(obj)`, `@register` or `@register(name="x")`."""
        if plugin is None:
            return lambda obj: self.register(obj, name=name)
        key = name or plugin_name(plugin)
        as_callable(plugin)  # fail now, not when the task runs, if it is not a plugin at all
        with self._lock:
            self._plugins[key] = plugin
            self._runtime.add(key)
        return plugin

    def is_runtime(self, name: str) -> bool:
        """True for a plugin registered in this process with register() (not an entry point)."""
        return name in self._runtime

    def unregister(self, name: str) -> None:
        with self._lock:
            self._plugins.pop(name, None)
            self._runtime.discard(name)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        with self._lock:
            if self._entry_points_loaded:
                return
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                if ep.name in self._plugins:
                    continue
                try:
                    self._plugins[ep.name] = ep.load()
                except Exception as error:  # one broken package must not hide the others
                    log.error("nbtasklog: cannot load plugin %r from %s: %s", ep.name, ep.value, error)
            self._entry_points_loaded = True

    def get(self, name: str) -> Any:
        self._load_entry_points()
        try:
            return self._plugins[name]
        except KeyError:
            raise UnknownPluginError(name, self.names()) from None

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._plugins)

    def describe(self) -> list[dict[str, Any]]:
        self._load_entry_points()
        return [dict(plugin_info(p), name=n) for n, p in sorted(self._plugins.items())]


registry = Registry()
register = registry.register
