"""Attacks on the shared store: LocalControl.maintain announces every second the tasks "followed live here" whose records
another process makes: Engine.followed_elsewhere() is every task with a subscription that this process does
not own, ended or not. A log socket keeps its subscription until the browser closes it (LogStreamHandler:
the subscription is dropped only on_close or on a filter change), so a log view left open on a task that
ended on another server announces "w" every second for as long as it is open, and the owner, whose runner
keeps the finished task's state (owns() is true), is hurried (flushes every 0.1 s) for as long too. Nothing
about a finished task can come sooner: neither should happen."""

from __future__ import annotations

import json
import threading
import time

import psycopg
from procs import poll

import nbtasklog
from nbtasklog.filter import make_filter
from nbtasklog.live import Subscription
from nbtasklog.store.events import CHANNEL

WAIT = 20.0


def test_a_view_left_open_on_a_finished_task_does_not_announce_it_forever(postgres, tmp_path):
    url = postgres.new_database()
    a = nbtasklog.Engine(url, spill_dir=tmp_path / "a", flush_interval=0.05, handle_signals=False)
    b = nbtasklog.Engine(url, spill_dir=tmp_path / "b", flush_interval=0.05, handle_signals=False)
    heard: list[dict] = []
    stop = threading.Event()
    conninfo = a.store.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def listen() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            while not stop.is_set():
                for notice in conn.notifies(timeout=0.2):
                    heard.append(json.loads(notice.payload))

    spy = threading.Thread(target=listen, daemon=True)
    spy.start()
    try:
        task = a.run_task(lambda params, context: context.logger.info("done"))
        assert task.wait(WAIT) == "SUCCESS"
        assert a.flush()
        poll(lambda: b.task_info(task.id)["status"] == "SUCCESS", WAIT, "SUCCESS at B")
        b.subscribe(task.id, Subscription(make_filter()))  # what a log socket on B holds while it is open
        time.sleep(4.0)
        watched = [e for e in heard if task.id in e.get("w", ())]
        assert a.buffer._hurried_until <= time.monotonic(), "A still hurried for a task that ended"
        assert watched == [], f"B announced the finished task {len(watched)} times in 4 s"
    finally:
        stop.set()
        spy.join(5)
        b.close()
        a.close()
