"""The live window of a task run in this process, shared by all of its sockets: one subscriber, per-socket
positions, texts and messages made once per filter and range."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import replace
from itertools import islice
from typing import Any

from ..filter import LogFilter
from ..follow import PAGE
from ..levels import Level, levels_at_or_above
from ..live import Subscription
from ..record import LogRecord, new_tuple
from ..runner import TaskState
from ..wire import record_text
from .services import Services


def records_message(texts: Any, cursor: int) -> str:
    """{"type": "records", "records": [...], "cursor": SEQ} from the records' JSON texts."""
    return '{"type": "records", "records": [' + ", ".join(texts) + f'], "cursor": {cursor}}}'


def _batch_filter(flt: LogFilter) -> Any:
    """records (plain tuples) -> the matching ones; None when `flt` keeps everything.

    A plain comprehension on level and source when that is all `flt` asks (r[3] is the level and
    r[4] the source: LogRecord's fields by position).
    """
    if flt.with_limit(None) == LogFilter():
        return None
    if replace(flt, min_level=Level.DEBUG, sources=None, order="asc", limit=None) != LogFilter():
        match = flt.matches
        return lambda records: [r for r in records if match(new_tuple(LogRecord, r))]
    levels, sources = frozenset(levels_at_or_above(flt.min_level)), flt.sources
    if sources is None:
        return lambda records: [r for r in records if r[3] in levels]
    if flt.min_level <= Level.DEBUG:
        return lambda records: [r for r in records if r[4] in sources]
    return lambda records: [r for r in records if r[3] in levels and r[4] in sources]


class _WindowInlet(Subscription):
    """The window's one subscriber: every record of the task, as a plain tuple, into a bounded deque.

    A plain tuple is untracked by the garbage collector at its first collection, unlike a LogRecord.
    offer() runs in the task's thread and only appends; the event loop pops.
    """

    def __init__(self, size: int, readers: set[object]) -> None:
        super().__init__(LogFilter(), size)
        # Half the window: a loop held up longer loses the oldest, which LiveWindow reads back (the other half).
        self.inbound: deque[tuple[Any, ...]] = deque(maxlen=max(1, size // 2))
        self.readers = readers  # the sockets it stands for (a benchmark counts them)

    def offer(self, record: Any, _plain: type = tuple) -> None:
        self.inbound.append(_plain(record))


class LiveWindow:
    """The latest records of one task run in this process, shared by all of its sockets.

    One subscriber per task whatever the number of sockets: ten sockets each with its own queue cost
    the task's thread ten appends a record and the server's collector a walk over every record they
    held. The task's thread appends each record to one bounded deque; every stream_interval the event
    loop moves them to `records` (seqs first, first + 1, … end) and wakes the sockets, each of which
    reads on from its own position. A record's JSON text is made at most once, and a records message
    at most once per filter and range: sockets in step with the same filter send the same encoded
    bytes. A socket more than `size` (stream_queue) records behind the newest one fell behind: it is
    told so and catches up from the store. A loop held up so long that the deque (half of `size`)
    overflows does not make sockets fall behind: the records it dropped are read back from the store
    once, for all of them.
    """

    def __init__(self, services: Services, state: TaskState) -> None:
        task_id = state.id
        self.services, self.engine, self.task_id = services, services.engine, task_id
        self.interval, self.size = services.stream_interval, services.stream_queue
        self.readers: set[object] = set()
        self.ticked = asyncio.Event()  # set and cleared at once on every tick: wakes every waiting socket
        self.records: list[tuple[Any, ...]] = []
        self.texts: list[str | None] = []  # JSON text of records[i], made when a socket first needs it
        self._messages: dict[tuple[Any, int, int], tuple[bytes | None, int | None]] = {}
        self._filters: dict[LogFilter, Any] = {}
        self.subscription = _WindowInlet(self.size, self.readers)
        self._inbound = self.subscription.inbound
        self.engine.subscribe(task_id, self.subscription)
        # Every record past the emitter's last seq, read after subscribing, reaches the deque.
        self.end = state.emitter.last_seq
        self.first = self.end + 1
        self._ticker = asyncio.ensure_future(self._tick())

    def close(self) -> None:
        self._ticker.cancel()
        self.engine.unsubscribe(self.task_id, self.subscription)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)  # batching: at most one live message per interval per socket
            items = self._take_inbound()
            if items and self.end + 1 < items[0][1] <= self.end + 1 + self.size // 2:
                items = await self._read_back(items)
            if items:
                self._append(items)
            self._wake()

    def _wake(self) -> None:
        self.ticked.set()
        self.ticked.clear()

    async def _read_back(self, items: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The records the deque dropped (the loop was held up), read back from the store once for every
        socket rather than by each socket alone, followed by `items` and what comes meanwhile."""
        end = self.end
        count = items[0][1] - end - 1
        engine, task_id = self.engine, self.task_id
        reading = asyncio.ensure_future(self.services.run(
            lambda: [tuple(r) for r in islice(engine.history(task_id, LogFilter(), end), count)]))
        while not reading.done():  # the read may wait for a write in progress: keep the deque from overflowing
            await asyncio.wait([reading], timeout=self.interval)
            more = self._take_inbound()
            if more and more[0][1] == items[-1][1] + 1 and count + len(items) + len(more) <= self.size:
                items.extend(more)  # sockets at `end` stay within `size` of the newest: none falls behind
            elif more:  # lost again, or more than the window: the sockets behind catch up alone
                await asyncio.wait([reading])
                return more
            self._wake()  # status changes still go out
        try:
            missing = reading.result()
        except Exception:  # the store is unavailable: the sockets behind find out as they catch up alone
            return items
        if len(missing) == count and missing[0][1] == end + 1 and missing[-1][1] == end + count:
            return missing + items
        return items  # not all there (never expected): the sockets fall behind and catch up alone

    def _take_inbound(self) -> list[tuple[Any, ...]]:
        """The records in the deque: a run of consecutive seqs (a full deque may drop records as we pop)."""
        inbound = self._inbound
        pop = inbound.popleft
        items = [pop() for _ in range(len(inbound))]
        if items and items[-1][1] - items[0][1] + 1 != len(items):
            i = len(items) - 1
            while i > 0 and items[i - 1][1] == items[i][1] - 1:
                i -= 1
            items = items[i:]
        return items

    def _append(self, items: list[tuple[Any, ...]]) -> None:
        head, end, records, texts = items[0][1], self.end, self.records, self.texts
        if head <= end:  # offered while we subscribed, already past the emitter's last seq we read
            items = items[end + 1 - head:]
            if not items:
                return
        elif head > end + 1:  # records end + 1 .. head - 1 are only in the store: the window starts over
            records.clear()
            texts.clear()
            self.first = head
        records.extend(items)
        texts.extend([None] * len(items))
        self.end = items[-1][1]
        if len(records) > self.size + self.size // 2:  # trimmed in steps, not on every tick
            drop = len(records) - self.size
            del records[:drop], texts[:drop]
            self.first += drop
        self._messages.clear()

    def take(self, flt: LogFilter, pos: int) -> tuple[bytes | None, int | None, int] | None:
        """(records message or None, its cursor, new position) for up to PAGE records after seq `pos`;
        None when the window no longer holds the records right after `pos` (the socket fell behind)."""
        first = self.first
        if pos + 1 < first:
            return None
        end = min(self.end, pos + PAGE)
        if end <= pos:
            return None, None, pos
        key = (flt, pos, end)
        made = self._messages.get(key)
        if made is None:
            keep = self._filters.get(flt, _batch_filter)
            if keep is _batch_filter:
                keep = self._filters[flt] = _batch_filter(flt)
            i, j = pos + 1 - first, end + 1 - first
            chunk = self.records[i:j] if keep is None else keep(self.records[i:j])
            if chunk:
                texts = self._texts_of(chunk, i, j) if keep is None else self._texts_of(chunk)
                made = (records_message(texts, chunk[-1][1]).encode(), chunk[-1][1])
            else:
                made = (None, None)
            self._messages[key] = made
        return made[0], made[1], end

    def _texts_of(self, chunk: list[Any], i: int = 0, j: int = 0) -> list[str]:
        texts, first = self.texts, self.first
        if j:  # chunk is records[i:j]
            part = texts[i:j]
            if None not in part:
                return part  # type: ignore[return-value]
            for index, record in zip(range(i, j), chunk):
                if texts[index] is None:
                    texts[index] = record_text(record)
            return texts[i:j]  # type: ignore[return-value]

        def text(record: Any) -> str:
            index = record[1] - first
            made = texts[index]
            if made is None:
                made = texts[index] = record_text(record)
            return made

        return [text(r) for r in chunk]
