"""The four log levels (FR-012) and the one way to turn user input into a level."""

from __future__ import annotations

import logging
from enum import IntEnum


class Level(IntEnum):
    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40

    def __str__(self) -> str:
        return self.name


LEVEL_NAMES: tuple[str, ...] = tuple(level.name for level in Level)
LEVEL_VALUES: dict[str, int] = {level.name: int(level) for level in Level}
_ALIASES = {"WARN": Level.WARNING, "CRITICAL": Level.ERROR, "FATAL": Level.ERROR}


def parse_level(value: object) -> Level:
    """Return the Level for a name (any case), a Level, or a stdlib level number.

    Raises ValueError naming the accepted levels for anything else.
    """
    if isinstance(value, Level):
        return value
    if isinstance(value, str):
        name = value.strip().upper()
        if name in LEVEL_VALUES:
            return Level[name]
        if name in _ALIASES:
            return _ALIASES[name]
    elif isinstance(value, int) and not isinstance(value, bool):
        if value in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL):
            return from_stdlib(value)
    raise ValueError(
        f"unknown log level {value!r}: expected one of {', '.join(LEVEL_NAMES)} (any case)"
    )


def from_stdlib(levelno: int) -> Level:
    """Map a stdlib levelno onto the four levels; CRITICAL and above become ERROR."""
    if levelno >= logging.ERROR:
        return Level.ERROR
    if levelno >= logging.WARNING:
        return Level.WARNING
    if levelno >= logging.INFO:
        return Level.INFO
    return Level.DEBUG


def levels_at_or_above(level: Level) -> tuple[str, ...]:
    """Names of the levels a `level`-and-above filter lets through, lowest first."""
    return tuple(name for name in LEVEL_NAMES if LEVEL_VALUES[name] >= level)
