"""Live readers of a running task: each Subscription has its own filter and a bounded queue (taken by a
thread, or by an event loop: LoopSubscription); LiveReaders holds every task's subscriptions."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from .filter import LogFilter
from .record import LogRecord


class Subscription:
    """Records of one task that match `flt`, as they are emitted.

    The queue holds at most `max_queue` records. A reader that falls that far behind is not slowed
    down and loses nothing silently: the subscription stops queueing, sets `lagging`, and the reader
    re-reads from its cursor (the last seq it handled) through the history path, then resumes live.

    offer() and take() are the two ends of the queue, and what a subclass overrides: LoopSubscription
    both (its reader never waits, so no lock is needed), a reader that keeps records its own way offer().
    """

    def __init__(self, flt: LogFilter, max_queue: int = 50_000, on_ready: Callable[[], None] | None = None) -> None:
        self.filter = flt
        self.max_queue = max_queue
        self.on_ready = on_ready  # called when the queue stops being empty (for event loops)
        self.lagging = False
        self.closed = False
        self._match = _matcher(flt)
        self._queue: deque[LogRecord] = deque()
        self._ready = threading.Condition(threading.Lock())

    @property
    def pending(self) -> bool:
        """Records are queued."""
        return bool(self._queue)

    def offer(self, record: LogRecord) -> None:
        """Called by the emitter for every record of the task (under its lock, so in seq order)."""
        match = self._match
        if self.lagging or (match is not None and not match(record)):
            return
        with self._ready:
            was_empty = not self._queue
            if len(self._queue) >= self.max_queue:
                self.lagging = True
                self._queue.clear()
            else:
                self._queue.append(record)
            self._ready.notify()
        if was_empty and self.on_ready is not None:
            self.on_ready()

    def set_filter(self, flt: LogFilter) -> None:
        """Change the filter; records queued under the old one and not matching the new one go."""
        with self._ready:
            self.filter = flt
            self._match = _matcher(flt)
            kept = [r for r in self._queue if flt.matches(r)]
            self._queue.clear()
            self._queue.extend(kept)

    def take(self, timeout: float | None = None) -> list[LogRecord]:
        """Everything queued, waiting up to `timeout` for at least one record (or a close)."""
        with self._ready:
            if not self._queue and not self.closed:
                self._ready.wait(timeout)
            items = list(self._queue)
            self._queue.clear()
            return items

    def take_live(self, timeout: float | None = None) -> list[LogRecord] | None:
        """What take() gives, or None when the subscription fell behind: it then queues again from
        now on, before the reader's catch-up reads the store, so nothing that comes meanwhile is missed."""
        batch = self.take(timeout)
        if self.lagging:
            self.resume()
            return None
        return batch

    def resume(self) -> None:
        """After re-reading history, start queueing again."""
        with self._ready:
            self.lagging = False

    def wake(self) -> None:
        """Wake a waiting take() with nothing new (a remote stream ended or gave up)."""
        with self._ready:
            self._ready.notify_all()
        if self.on_ready is not None:
            self.on_ready()

    def close(self) -> None:
        with self._ready:
            self.closed = True
            self._ready.notify_all()
        if self.on_ready is not None:
            self.on_ready()


class LoopSubscription(Subscription):
    """A Subscription taken by an event loop: offer() wakes it through `on_ready`, and take() never waits.

    offer() runs in the emitting or ingesting thread: it filters, bounds the queue (a full one sets
    lagging) and calls on_ready when the queue stops being empty. The lock of Subscription is not
    needed: deque append and popleft are atomic and only the loop pops.
    """

    def __init__(self, flt: LogFilter, max_queue: int, on_ready: Callable[[], None]) -> None:
        super().__init__(flt, max_queue, on_ready)
        self._wake = on_ready

    def offer(self, record: LogRecord) -> None:
        match = self._match
        if self.lagging or (match is not None and not match(record)):
            return
        queue = self._queue
        if len(queue) >= self.max_queue:
            self.lagging = True  # set before the clear: the reader that sees it re-reads from its cursor
            queue.clear()
            return
        queue.append(record)
        if len(queue) == 1:
            self._wake()

    def take(self, timeout: float | None = None) -> list[LogRecord]:
        """Everything queued, at once (`timeout` is not waited: the loop is woken by on_ready)."""
        pop = self._queue.popleft
        try:
            return [pop() for _ in range(len(self._queue))]
        except IndexError:  # offer() cleared the queue meanwhile: lagging is set, the reader catches up
            return []


def _matcher(flt: LogFilter) -> Callable[[LogRecord], bool] | None:
    """The filter's in-memory face, or None when it keeps every record (then nothing need be asked)."""
    return None if flt.with_limit(None) == LogFilter() else flt.matches


class LiveReaders:
    """The live subscriptions of every task, by task id, and the emitters of this process they hear.

    A task's subscriptions are a tuple replaced on each change (copy on write): an emitter offering a
    record walks the tuple it read, so a reader that leaves meanwhile cannot shift its neighbour out of
    the walk (with one shared list, the reader after a leaving one missed that record for good). An
    emitter running here is handed each new tuple.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._readers: dict[str, tuple[Subscription, ...]] = {}
        self._emitters: dict[str, Any] = {}  # task id -> TaskEmitter of a task running in this process

    def get(self, task_id: str, default: tuple[Subscription, ...] = ()) -> tuple[Subscription, ...]:
        return self._readers.get(task_id, default)

    def task_ids(self) -> list[str]:
        """The tasks someone reads live."""
        return list(self._readers)

    def attach(self, task_id: str, emitter: Any) -> None:
        """A task starts in this process: its emitter offers each record to the task's subscriptions."""
        with self._lock:
            self._emitters[task_id] = emitter
            emitter.subscribers = self._readers.get(task_id, ())

    def detach(self, task_id: str) -> None:
        """The task ended: its emitter makes no more records to offer."""
        with self._lock:
            self._emitters.pop(task_id, None)

    def add(self, task_id: str, subscription: Subscription) -> None:
        with self._lock:
            self._publish(task_id, self._readers.get(task_id, ()) + (subscription,))

    def remove(self, task_id: str, subscription: Subscription) -> None:
        with self._lock:
            self._publish(task_id, tuple(s for s in self._readers.get(task_id, ()) if s is not subscription))

    def _publish(self, task_id: str, readers: tuple[Subscription, ...]) -> None:
        if readers:
            self._readers[task_id] = readers
        else:
            self._readers.pop(task_id, None)
        emitter = self._emitters.get(task_id)
        if emitter is not None:
            emitter.subscribers = readers
