"""Runtime logging settings (US4, FR-014/015): what they are, how they are checked, who hears of a change."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, replace
from typing import Any

from .levels import Level, parse_level

log = logging.getLogger("nbtasklog")


@dataclass(frozen=True)
class Settings:
    log_level: Level = Level.INFO  # application logs (the "nbtasklog" stdlib logger)
    task_log_level: Level = Level.INFO  # what a task persists; below it a call is dropped at once
    belief_scope_enabled: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.name if isinstance(v, Level) else v) for k, v in asdict(self).items()}

    def to_strings(self) -> dict[str, str]:
        """The form the settings table stores."""
        return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in self.to_dict().items()}


SETTING_NAMES = tuple(Settings.__dataclass_fields__)


def _parse_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, not {value!r}")


def parse_settings(current: Settings, changes: Mapping[str, object]) -> Settings:
    """`current` with `changes` applied, each value checked; ValueError names the bad one."""
    unknown = sorted(set(changes) - set(SETTING_NAMES))
    if unknown:
        raise ValueError(f"unknown setting {', '.join(unknown)}: known settings are {', '.join(SETTING_NAMES)}")
    parsed: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "belief_scope_enabled":
            parsed[name] = _parse_bool(name, value)
        else:
            try:
                parsed[name] = parse_level(value)
            except ValueError as error:
                raise ValueError(f"{name}: {error}") from None
    return replace(current, **parsed)


class SettingsManager:
    """Holds the current Settings; `update` checks, applies at once, tells listeners, and queues the write."""

    def __init__(self, persist: Callable[[dict[str, str]], None]) -> None:
        self._current = Settings()
        self._persist = persist
        self._listeners: list[Callable[[Settings], None]] = []
        self._lock = threading.Lock()

    @property
    def current(self) -> Settings:
        return self._current

    def load(self, read: Callable[[], Mapping[str, str]],
             pending: Callable[[], AbstractSet[str]] = frozenset) -> None:
        """Apply what the database holds (once it answers, and whenever another process changed it); bad
        rows are ignored. `read()` gives the stored settings, `pending()` those changed here and not yet
        stored, newer than what read() gives. Both are asked under the lock update() holds, pending()
        first: a change it no longer lists was written before read() looks."""
        with self._lock:
            waiting = pending()
            stored = read()
            known = {k: v for k, v in stored.items() if k in SETTING_NAMES and k not in waiting}
            try:
                new = parse_settings(self._current, known)
            except ValueError as error:
                log.warning("nbtasklog: ignoring stored settings: %s", error)
                return
            if new != self._current:
                self._apply(new)

    def update(self, **changes: object) -> Settings:
        with self._lock:
            new = parse_settings(self._current, changes)
            self._persist({k: v for k, v in new.to_strings().items() if k in changes})
            self._apply(new)
        return new

    def _apply(self, new: Settings) -> None:
        self._current = new
        logging.getLogger("nbtasklog").setLevel(int(new.log_level))
        for listener in list(self._listeners):
            try:
                listener(new)
            except Exception:  # a broken listener must not stop the others
                log.exception("nbtasklog: settings listener failed")

    def subscribe(self, listener: Callable[[Settings], None]) -> Callable[[], None]:
        """Call `listener(settings)` after every change; returns a function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None
