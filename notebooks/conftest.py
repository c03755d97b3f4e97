"""pytest --nbval-lax runs each notebook in a fresh kernel with a store of its own.

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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Runs before nbval's setup of the notebook, which is where its kernel starts.
    os.environ["NBTASKLOG_DB"] = os.path.join(_stores, f"{item.path.stem}.duckdb")
    os.environ.pop("NBTASKLOG_SERVER_URL", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_stores, ignore_errors=True)
