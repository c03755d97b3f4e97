"""A pytest plugin (`-p notebook_stores`): under nbval each notebook's kernel gets a store of its own.

Not a notebooks/conftest.py: a second module named `conftest` would shadow tests/conftest.py, which
the tests import from.

The notebooks use the default store (NBTASKLOG_DB, as a user's would); the kernel inherits this
process's environment when nbval starts it, so each notebook gets a new DuckDB file and their
checked outputs never depend on another notebook's tasks or on the user's own store.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_stores = tempfile.mkdtemp(prefix="nbtasklog-notebooks-")
_saved: dict[str, str | None] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Runs before nbval's setup of the notebook, which is where its kernel starts.
    if item.path.suffix != ".ipynb":
        return
    for name in ("NBTASKLOG_DB", "NBTASKLOG_SERVER_URL"):
        _saved.setdefault(name, os.environ.pop(name, None))
    os.environ["NBTASKLOG_DB"] = os.path.join(_stores, f"{item.path.stem}.duckdb")


def pytest_runtest_teardown(item: pytest.Item) -> None:
    # The tests that run after the notebooks see this process's own environment again.
    for name, value in _saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _saved.clear()


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_stores, ignore_errors=True)
