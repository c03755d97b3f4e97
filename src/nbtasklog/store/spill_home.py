"""Each process spills into a folder of its own under the spill root, held under an exclusive lock for
its life; the folders of processes that died (their lock free) are taken over by the next one to start.

Two processes sharing a spill root (two servers of one Unix user, a server and the CLI) therefore never
replay each other's live files. The lock is an flock on `<folder>/lock`: the kernel drops it when its
process dies, however it dies, so a free lock means a dead owner. Taking over moves the dead folder's
spill files into this process's folder (their names keep their replay order) and merges its tasks.json
and settings.json, under the root's own lock so that two processes starting at once do not both take
the same folder. The dead owners' instance ids are kept in `dead_owners.json` until the store has
marked their tasks INTERRUPTED (`forget_dead_owners`): a process dying before that passes them on.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from pathlib import Path
from typing import IO, Any

log = logging.getLogger("nbtasklog.buffer")

LOCK = "lock"
DEAD_OWNERS = "dead_owners.json"
STATE_FILES = ("tasks.json", "settings.json")


def _try_lock(path: Path) -> IO[bytes] | None:
    """The file at `path` opened and locked exclusively, or None when another process holds it."""
    handle = _lock_file(path)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        return None
    return handle


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        log.error("nbtasklog: %s cannot be read, left in place: %s", path, error)
        return None


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(path.name + ".new")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, path)


class SpillHome:
    """This process's spill folder `root/<instance_id>`, locked, with what dead processes left moved in."""

    def __init__(self, root: Path, instance_id: str) -> None:
        self.root = root
        self.dir = root / instance_id
        self.instance_id = instance_id
        self._lock: IO[bytes] | None = None
        self.dead_owners: list[str] = []
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock = _try_lock(self.dir / LOCK)
            self._take_over()
        except OSError as error:  # a read-only or full disk: records stay in memory; a spill reports it
            log.error("nbtasklog: spill folder %s unavailable: %s: %s", self.dir, type(error).__name__, error)

    def _take_over(self) -> None:
        root_lock = _try_lock_blocking(self.root / LOCK)
        try:
            dead: set[str] = set()
            # 0.1.0 spilled into the root itself: its files are a dead owner's without an id
            self._move_in(self.root)
            for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and p != self.dir):
                if not (folder / LOCK).exists():
                    continue
                held = _try_lock(folder / LOCK)
                if held is None:
                    continue  # a live process's folder
                try:
                    dead.add(folder.name)
                    dead.update(_read_json(folder / DEAD_OWNERS) or [])
                    _write_json(self.dir / DEAD_OWNERS, sorted(dead))
                    self._move_in(folder)
                    shutil.rmtree(folder, ignore_errors=True)
                finally:
                    held.close()
            self.dead_owners = sorted(dead)
        finally:
            root_lock.close()

    def _move_in(self, folder: Path) -> None:
        """Spill files and state of a dead process's folder, into this one."""
        for path in sorted([*folder.glob("*.arrow"), *folder.glob("*.tmp")]):
            try:
                os.replace(path, self.dir / path.name)
            except FileNotFoundError:
                pass
        rows = _read_json(folder / "tasks.json")
        if rows:
            mine = _read_json(self.dir / "tasks.json") or []
            known = {row["id"] for row in mine}
            _write_json(self.dir / "tasks.json", [*mine, *(r for r in rows if r["id"] not in known)])
        settings = _read_json(folder / "settings.json")
        if settings:
            _write_json(self.dir / "settings.json", {**settings, **(_read_json(self.dir / "settings.json") or {})})
        for name in STATE_FILES:
            (folder / name).unlink(missing_ok=True)

    def forget_dead_owners(self) -> None:
        """The store has marked the dead owners' tasks: nothing more to pass on."""
        self.dead_owners = []
        try:
            (self.dir / DEAD_OWNERS).unlink(missing_ok=True)
        except OSError as error:
            log.warning("nbtasklog: cannot remove %s: %s", self.dir / DEAD_OWNERS, error)

    def close(self) -> None:
        """Give the folder up: removed when nothing waits in it, else left for the next process."""
        if self._lock is None:
            return
        try:
            left = [p for p in self.dir.iterdir() if p.name != LOCK]
            if not left:
                shutil.rmtree(self.dir, ignore_errors=True)
        except OSError:
            pass
        self._lock.close()
        self._lock = None


def _lock_file(path: Path) -> IO[bytes]:
    """`path` made if new and opened for reading only: a file held open for writing would keep its disk
    from being remounted read-only, and an flock needs no more."""
    if not path.exists():
        path.touch()
    return open(path, "rb")


def _try_lock_blocking(path: Path) -> IO[bytes]:
    handle = _lock_file(path)
    fcntl.flock(handle, fcntl.LOCK_EX)
    return handle
