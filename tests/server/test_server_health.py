"""Health through a server: a kernel's health() and the CLI's `health` say what the server's database says."""

from __future__ import annotations

import re

import pytest

from .conftest import off_loop


@pytest.fixture
def server_disk(tmp_path):
    from disks import tmpfs

    with tmpfs(tmp_path / "server-disk", "24m") as disk:
        yield disk


@pytest.fixture
def nbtasklog_config(server_disk):
    """The server's database on a small disk of its own, which the test fills."""
    return {"db_url": str(server_disk / "logs.duckdb")}


async def test_health_through_a_server_says_what_the_servers_database_says(kernel_engine, engine, start, finished,
                                                                          server_disk, capsys, monkeypatch):
    """A kernel's health(), and the CLI's `health` through the server, report the server's database: down while
    its disk is full (exit code 4), up again once there is room, though this process's own buffer is empty."""
    from disks import fill

    from nbtasklog import cli

    client = await kernel_engine()
    assert (await off_loop(client.health)).database_available
    filler = fill(server_disk, leave=4096)
    try:
        row = await start("t_sources", {"n": 500})
        await finished(row["id"])
        await off_loop(engine.flush)
        health = await off_loop(client.health)
        assert not health.database_available
        assert health.server is not None and not health.server["database_available"]
        assert "server: " in health.last_error and "No space left" in health.last_error
        assert health.pending >= 500  # the server's waiting records count too
        monkeypatch.setenv("NBTASKLOG_SERVER_URL", client.store.connection.url)
        monkeypatch.setenv("NBTASKLOG_SERVER_TOKEN", client.store.connection.token)
        assert await off_loop(lambda: cli.main(["health"])) == 4
        captured = capsys.readouterr()
        out = captured.out
        assert "server's database" in out, captured
        assert re.search(r"^available +no$", out, re.MULTILINE), out
    finally:
        filler.unlink()
    assert await off_loop(engine.flush)
    assert (await off_loop(client.health)).database_available
    assert await off_loop(lambda: cli.main(["health"])) == 0
