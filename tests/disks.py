"""Small disks of their own for the fault tests: a tmpfs (needs root, as CI has), filled to the last bytes,
bound a second time to turn read-only; each unmounted at the end whatever happens."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def mount(*args: str) -> None:
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"mount {' '.join(args)} failed: {done.stderr.strip()}")


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small disk of its own at `path`, unmounted at the end whatever happens."""
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs, which needs root (CI runs the tests as root); run it as root")
    path.mkdir(parents=True, exist_ok=True)
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path))
    try:
        yield path
    finally:
        _unmount(path)


@contextmanager
def bind(source: Path, target: Path) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    mount("--bind", str(source), str(target))
    try:
        yield target
    finally:
        _unmount(target)


def _unmount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], check=True)  # busy: detach it now, freed when let go


def fill(disk: Path, leave: int) -> Path:
    """A file taking all of `disk` but `leave` bytes (or all of it: a process writing there meanwhile may
    take some of the room first, and a full disk is what is wanted)."""
    stat = os.statvfs(disk)
    left = stat.f_bavail * stat.f_frsize - leave
    filler = disk / "filler"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as out:
        try:
            while left > 0:
                left -= out.write(chunk[: min(len(chunk), left)])
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    return filler
