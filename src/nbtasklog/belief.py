"""belief_scope: trace entry, exit and the outcome of a block of code at DEBUG (FR-013)."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from time import perf_counter
from typing import Any, TypeVar

from .context import current_emitter

SOURCE = "belief_scope"
app_log = logging.getLogger("nbtasklog.belief_scope")
F = TypeVar("F", bound=Callable[..., Any])

# Outside tasks the toggle of the engine configured last applies (engines set it).
app_enabled = True


class belief_scope:
    """`with belief_scope("load_users"):` or `@belief_scope("load_users")`.

    Logs `[anchor][Entry] message`, then `[anchor][Coherence:OK]` or `[anchor][Coherence:Failed] <error>`,
    then `[anchor][Exit]`, all at DEBUG: into the current task's log inside a task, else into the
    application log ("nbtasklog.belief_scope"). Exceptions pass through unchanged. When disabled or
    below the level, entering and leaving cost two lookups.
    """

    __slots__ = ("anchor", "message", "_emitter", "_started")

    def __init__(self, anchor: str, message: str = "") -> None:
        self.anchor = anchor
        self.message = message
        self._emitter: Any = None
        self._started = 0.0

    def __enter__(self) -> belief_scope:
        emitter = current_emitter.get()
        if emitter is not None:
            if not (emitter.belief_scope_enabled and emitter.min_level <= 10):
                return self
        elif not (app_enabled and app_log.isEnabledFor(logging.DEBUG)):
            return self
        self._emitter = emitter if emitter is not None else False
        self._started = perf_counter()
        self._log(f"[{self.anchor}][Entry]" + (f" {self.message}" if self.message else ""), "entry")
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if self._emitter is None:
            return None
        elapsed_ms = round((perf_counter() - self._started) * 1000, 3)
        if exc is None:
            self._log(f"[{self.anchor}][Coherence:OK]", "coherence")
        else:
            self._log(f"[{self.anchor}][Coherence:Failed] {type(exc).__name__}: {exc}", "coherence", error=type(exc).__name__)
        self._log(f"[{self.anchor}][Exit]", "exit", duration_ms=elapsed_ms)
        self._emitter = None
        return None  # never swallow the exception

    def _log(self, message: str, phase: str, **extra: Any) -> None:
        if self._emitter:
            self._emitter.emit("DEBUG", SOURCE, message, (), {"anchor": self.anchor, "phase": phase, **extra})
        else:
            app_log.debug(message, extra={"anchor": self.anchor, "phase": phase, **extra})

    def __call__(self, func: F) -> F:
        """As a decorator: a fresh scope around every call (scopes hold per-entry state)."""
        anchor, message = self.anchor, self.message
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with belief_scope(anchor, message):
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with belief_scope(anchor, message):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]
