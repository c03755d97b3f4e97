"""Levels: the four names, parsing of user input, and the stdlib mapping."""

from __future__ import annotations

import logging

import pytest

from nbtasklog.levels import LEVEL_NAMES, Level, from_stdlib, levels_at_or_above, parse_level


@pytest.mark.parametrize("text", ["debug", "DEBUG", "Debug", "  dEbUg  "])
def test_parse_level_is_case_insensitive(text):
    """Any spelling case (and surrounding spaces) of a level name parses to that level."""
    assert parse_level(text) is Level.DEBUG


@pytest.mark.parametrize(("text", "level"), [("info", Level.INFO), ("WARNING", Level.WARNING), ("warn", Level.WARNING),
                                             ("error", Level.ERROR), ("CRITICAL", Level.ERROR), ("fatal", Level.ERROR)])
def test_parse_level_names_and_aliases(text, level):
    """The four names parse to themselves; WARN is WARNING; CRITICAL and FATAL become ERROR."""
    assert parse_level(text) is level


@pytest.mark.parametrize(("number", "level"), [(logging.DEBUG, Level.DEBUG), (logging.INFO, Level.INFO),
                                               (logging.WARNING, Level.WARNING), (logging.ERROR, Level.ERROR),
                                               (logging.CRITICAL, Level.ERROR)])
def test_parse_level_accepts_stdlib_numbers(number, level):
    """The stdlib level numbers 10..50 map onto the four levels (50, CRITICAL, onto ERROR)."""
    assert parse_level(number) is level


def test_parse_level_returns_a_level_unchanged():
    """A Level passes through as itself."""
    assert parse_level(Level.WARNING) is Level.WARNING


@pytest.mark.parametrize("bad", ["verbose", "", "INFO!", 15, 0, 60, True, None, 20.0, ["INFO"]])
def test_parse_level_rejects_anything_else_naming_the_accepted_levels(bad):
    """Unknown names, other numbers, bools, None and other types raise ValueError listing the four levels."""
    with pytest.raises(ValueError) as info:
        parse_level(bad)
    message = str(info.value)
    assert repr(bad) in message
    for name in ("DEBUG", "INFO", "WARNING", "ERROR"):
        assert name in message


def test_from_stdlib_maps_every_number_to_the_level_at_or_below_it():
    """from_stdlib rounds any levelno down to one of the four levels (CRITICAL and above -> ERROR)."""
    assert from_stdlib(0) is Level.DEBUG
    assert from_stdlib(5) is Level.DEBUG
    assert from_stdlib(19) is Level.DEBUG
    assert from_stdlib(25) is Level.INFO
    assert from_stdlib(35) is Level.WARNING
    assert from_stdlib(45) is Level.ERROR
    assert from_stdlib(100) is Level.ERROR


def test_levels_at_or_above_and_order():
    """Levels order DEBUG < INFO < WARNING < ERROR, and the at-or-above sets follow that order."""
    assert LEVEL_NAMES == ("DEBUG", "INFO", "WARNING", "ERROR")
    assert Level.DEBUG < Level.INFO < Level.WARNING < Level.ERROR
    assert levels_at_or_above(Level.DEBUG) == LEVEL_NAMES
    assert levels_at_or_above(Level.WARNING) == ("WARNING", "ERROR")
    assert levels_at_or_above(Level.ERROR) == ("ERROR",)
    assert str(Level.INFO) == "INFO"
