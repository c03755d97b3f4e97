"""Each process spills into a folder of its own: a second process on the same spill root never replays a
live process's files, and the folder of a process that died (its lock free) is taken over whole by the
next one to start, which names the dead owner so its tasks are marked INTERRUPTED."""

from __future__ import annotations

from nbtasklog.record import LogRecord
from nbtasklog.store.buffer import WriteBuffer
from nbtasklog.store.store import Store


def test_a_live_processs_spill_is_never_taken_and_a_dead_ones_is(tmp_path):
    store = Store(tmp_path / "store.duckdb")
    root = tmp_path / "spill"
    first = WriteBuffer(store, root, "first", flush_interval=3600)
    for seq in range(1, 101):
        first.append(tuple(LogRecord("t", seq, seq, "INFO", "plugin", f"m{seq}", None)))
    with first.reading():
        first._spill_everything()  # as at an exit with the database down
    assert len(list((root / "first").glob("*.arrow"))) == 1

    second = WriteBuffer(store, root, "second", flush_interval=3600)
    assert second.health().pending == 0 and second.home.dead_owners == []  # first still holds its folder
    assert len(list((root / "first").glob("*.arrow"))) == 1

    first.home._lock.close()  # the process dies: the kernel drops its lock, its files stay
    third = WriteBuffer(store, root, "third", flush_interval=3600)
    assert third.home.dead_owners == ["first"]
    assert third.health().pending == 100
    with third.reading():
        assert [r.seq for r in third.unwritten("t")] == list(range(1, 101))
    assert not (root / "first").exists() and second.health().pending == 0
    second.home.close()
    third.home.close()
    store.close()
