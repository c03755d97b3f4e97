"""Follow, the state machine every reader of a log drives, against a simulated task and its feeds.

Whatever the interleaving of emitted records, history pages, live batches, a reader falling behind, a
window that moves on, a socket that reconnects or gives up, and the task's end, the reader hands out
exactly the matching records, each once, in seq order, says the history is complete only once it is,
and ends only with the task. The feeds are the four the readers have: a thread's queue (Engine.follow,
a widget's stream, the server's socket of an ingested task), the same with records that reach the store
alone, the server's shared window, and a server's log socket (history included) as a kernel reads it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nbtasklog import follow as follow_module
from nbtasklog.filter import LogFilter
from nbtasklog.follow import Follow, Phase
from nbtasklog.levels import Level
from nbtasklog.live import Subscription
from nbtasklog.record import LogRecord

SMALL_PAGE = 3  # several pages for a few records
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SOURCES = ("plugin", "db")


@pytest.fixture(autouse=True)
def small_pages():
    with mock.patch.object(follow_module, "PAGE", SMALL_PAGE):
        yield


def record(seq: int, level: str = "INFO", source: str = "plugin") -> LogRecord:
    return LogRecord("t", seq, seq, level, source, f"r{seq}", None)


def seqs(records: list[LogRecord]) -> list[int]:
    return [r.seq for r in records]


# ---- the simulated task and its feeds ---------------------------------------------------------------
@dataclass
class Task:
    """Records as the store (with its buffer) holds them: every emitted record is there at once."""

    records: list[LogRecord] = field(default_factory=list)
    finished: bool = False
    feeds: list = field(default_factory=list)

    def emit(self, level: str, source: str, offered: bool = True) -> None:
        if self.finished:
            return
        made = record(len(self.records) + 1, level, source)
        self.records.append(made)
        if offered:  # else it reaches the store some other way (another process on the same database)
            for feed in self.feeds:
                feed.offer(made)

    def read(self, page: LogFilter) -> list[LogRecord]:
        assert page.order == "asc" and page.limit == SMALL_PAGE
        return page.apply(self.records)


@dataclass
class Window:
    """The server's shared window: records from `first` to `end` (each tick brings what was emitted),
    read from a position, a page at a time; it moves on (trims, or starts over) as it likes."""

    task: Task
    first: int
    end: int

    def tick(self) -> None:
        self.end = len(self.task.records)

    def move_on(self, by: int) -> None:
        self.first = min(self.first + by, self.end + 1)

    def take(self, flt: LogFilter, pos: int) -> tuple[list[LogRecord], int | None, int] | None:
        if pos + 1 < self.first:
            return None
        end = min(self.end, pos + SMALL_PAGE)
        chunk = [r for r in self.task.records[pos:end] if flt.matches(r)]
        return chunk, chunk[-1].seq if chunk else None, max(end, pos)


@dataclass
class Socket:
    """A server's log socket as RemoteStream reads it: the server sends the matching records past the
    socket's cursor (history, then live), history_end once the history went out, end after the last
    record; a reconnect may repeat records; it can give up. What it offers goes to the reader's queue."""

    task: Task
    flt: LogFilter
    queue: Subscription
    history: int  # records emitted before the socket opened
    follow: Follow = None  # type: ignore[assignment]
    sent: int = 0  # the server's position in the task's records
    history_end: bool = False
    ended: bool = False
    failed: bool = False

    def __post_init__(self) -> None:
        self.follow = Follow(self.flt, history_on_feed=True)
        self.sent = self.follow.from_cursor().after_seq or 0

    def offer(self, made: LogRecord) -> None:
        pass  # a server's task: nothing is emitted in the reader's process

    def deliver(self, count: int) -> None:
        if self.failed or self.ended:
            return
        upto = min(len(self.task.records), self.sent + count)
        chunk = [r for r in self.task.records[self.sent:upto] if self.flt.matches(r)]
        self.sent = upto
        for made in self.follow.live(chunk):
            self.queue.offer(made)
        if self.sent >= self.history and not self.history_end:
            self.history_end = True
            self.follow.reach_seam()
        if self.task.finished and self.sent >= len(self.task.records) and self.history_end:
            self.follow.finish()
            self.ended = True

    def reconnect(self, repeat: int) -> None:
        """The socket reopens asking for the records past its cursor; the server repeats `repeat` records."""
        self.sent = max(0, (self.follow.from_cursor().after_seq or 0) - repeat)


# ---- one reader over one feed --------------------------------------------------------------------------
class Reader:
    """A driver as the real ones are: it does the I/O, the Follow decides."""

    def __init__(self, task: Task, flt: LogFilter, mode: str, queue_size: int) -> None:
        self.task, self.flt, self.mode = task, flt, mode
        self.handed: list[LogRecord] = []
        self.seam_at: list[LogRecord] | None = None  # what was handed out when the seam was announced
        self.history = [r for r in task.records if flt.matches(r)]  # matching records before subscribing
        self.queue = Subscription(flt, max_queue=queue_size)  # the real one: offered here, taken below
        self.window: Window | None = None
        self.socket: Socket | None = None
        if mode == "window":
            self.window = Window(task, first=len(task.records) + 1, end=len(task.records))
            self.follow = Follow(flt, feed_from=self.window.first, last_look=True)  # as the server's socket
        elif mode == "socket":
            self.socket = Socket(task, flt, self.queue, history=len(task.records))
            task.feeds.append(self.socket)
            self.follow = Follow(flt, history_on_feed=True)
        else:
            task.feeds.append(self.queue)
            self.follow = Follow(flt, store_fed=mode == "store")

    def hand_out(self, records) -> None:
        self.handed.extend(records)
        if self.follow.announce_seam():
            assert self.seam_at is None, "the seam was announced twice"
            self.seam_at = list(self.handed)

    def read_page(self) -> None:
        self.hand_out(self.follow.page(self.task.read(self.follow.next_page())))

    def step(self, emits_between: list[tuple[str, str, bool]] = ()) -> None:
        """One step of the reader: a history page, or a live round (what the task emits between the
        reader's look at its end and its take is `emits_between`)."""
        follow = self.follow
        if follow.ended:
            return
        if follow.reading:
            self.read_page()
            return
        if self.window is not None:
            self._window_round(emits_between)
            return
        socket = self.socket
        if socket is not None and socket.failed:
            self.socket = socket = None
            follow.feed_lost()
        if socket is not None:
            finished, seam = socket.ended, socket.history_end
        else:
            finished, seam = self.task.finished, False
        for emit in emits_between:
            self.task.emit(*emit)
        batch = self.queue.take_live(0)
        if batch is None:
            follow.lagged()
        else:
            self.hand_out(follow.live(batch, finished=finished, seam=seam))

    def _window_round(self, emits_between) -> None:
        window, follow = self.window, self.follow
        key = replace(self.flt, after_seq=None)
        finished = self.task.finished
        for emit in emits_between:
            self.task.emit(*emit)
        window.tick()
        for _ in range(len(self.task.records) + 2):  # a page or a catch-up each time: the position moves on
            taken = window.take(key, follow.position)
            if taken is None:
                follow.lagged(feed_from=window.first)
                while follow.reading:
                    self.read_page()
                continue
            chunk, cursor, position = taken
            drained = position >= window.end
            if follow.live_through(cursor, position, finished=finished and drained):
                self.hand_out(chunk)
            if drained:
                return
        raise AssertionError("the window's position stands still")

    def check(self) -> None:
        """What was handed out so far is the start of the matching records, each once, in seq order."""
        expected = [r for r in self.task.records if self.flt.matches(r)]
        assert seqs(self.handed) == seqs(expected)[: len(self.handed)], "a gap, a repeat or a stranger"
        if self.handed:
            assert self.follow.last == self.handed[-1].seq
        if self.seam_at is not None:
            assert seqs(self.seam_at)[: len(self.history)] == seqs(self.history), "the seam before the history"
        if self.follow.ended:
            assert self.task.finished, "ended before the task did"
            assert seqs(self.handed) == seqs(expected), "ended with records missing"


# ---- the property -------------------------------------------------------------------------------------
FILTERS = st.builds(
    LogFilter,
    min_level=st.sampled_from(list(Level)),
    sources=st.none() | st.just(frozenset({"db"})),
    after_seq=st.none() | st.integers(0, 12),
    before_seq=st.none() | st.integers(1, 40),
)
EMIT = st.tuples(st.sampled_from(LEVELS), st.sampled_from(SOURCES))
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("emit"), st.lists(EMIT, min_size=1, max_size=6)),
        st.tuples(st.just("step"), st.lists(EMIT, max_size=3)),
        st.tuples(st.just("move_on"), st.integers(1, 6)),
        st.tuples(st.just("deliver"), st.integers(1, 8)),
        st.tuples(st.just("reconnect"), st.integers(0, 4)),
        st.tuples(st.just("give_up"), st.none()),
        st.tuples(st.just("finish"), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    mode=st.sampled_from(["queue", "store", "window", "socket"]),
    flt=FILTERS,
    before=st.lists(EMIT, max_size=12),
    queue_size=st.integers(1, 8),
    unheard=st.booleans(),
    operations=OPERATIONS,
    last=st.lists(EMIT, max_size=4),
)
def test_the_reader_sees_every_matching_record_once_in_order(mode, flt, before, queue_size, unheard, operations, last):
    task = Task()
    for level, source in before:
        task.emit(level, source)
    reader = Reader(task, flt, mode, queue_size)

    def emitted(emits):
        # Where the store is read as well, the task may run in another process writing to the same
        # database: then its records reach the store alone, never the feed.
        return [(level, source, not (mode == "store" and unheard)) for level, source in emits]

    for name, argument in operations:
        if name == "emit":
            for emit in emitted(argument):
                task.emit(*emit)
        elif name == "step":
            reader.step(emitted(argument))
        elif name == "move_on" and reader.window is not None:
            reader.window.move_on(argument)
        elif name == "deliver" and reader.socket is not None:
            reader.socket.deliver(argument)
        elif name == "reconnect" and reader.socket is not None:
            reader.socket.reconnect(argument)
        elif name == "give_up" and reader.socket is not None:
            reader.socket.failed = True
        elif name == "finish":
            task.finished = True
        reader.check()

    def run(steps: int) -> None:
        for _ in range(steps):
            if reader.follow.ended:
                return
            if reader.socket is not None:
                reader.socket.deliver(1000)
            reader.step()
            reader.check()

    if not task.finished:  # a reader that keeps reading catches up with all that was emitted
        run(len(task.records) + 5)
        assert seqs(reader.handed) == [r.seq for r in task.records if flt.matches(r)], "left behind"
    for emit in emitted(last):  # records the reader has not seen when the task ends
        task.emit(*emit)
    task.finished = True
    run(1000)
    assert reader.follow.ended, f"never ended: {reader.follow.phase}"
    assert seqs(reader.handed) == [r.seq for r in task.records if flt.matches(r)]
    assert reader.seam_at is not None or mode == "socket" and not reader.handed, "the seam was never announced"


# ---- each rule on its own --------------------------------------------------------------------------
def test_history_pages_walk_from_the_cursor_and_a_short_page_reaches_the_seam():
    follow = Follow(LogFilter(min_level=Level.WARNING, after_seq=4))
    assert follow.phase is Phase.HISTORY and follow.reading and follow.last == 4
    page = follow.next_page()
    assert (page.after_seq, page.limit, page.order, page.min_level) == (4, SMALL_PAGE, "asc", Level.WARNING)
    assert seqs(follow.page([record(5), record(7), record(9)])) == [5, 7, 9]  # a full page: read on
    assert follow.reading and not follow.seam and follow.next_page().after_seq == 9
    assert seqs(follow.page([record(11)])) == [11]
    assert follow.phase is Phase.LIVE and follow.seam and follow.announce_seam() and not follow.announce_seam()


def test_live_records_at_or_below_the_cursor_are_not_handed_out_again():
    """The seam: records emitted while the history was read are in both; each goes out once."""
    follow = Follow(LogFilter())
    follow.page([record(1), record(2)])
    assert seqs(follow.live([record(1), record(2), record(3)])) == [3]
    assert seqs(follow.live([record(3)])) == []
    assert seqs(follow.live([record(4), record(5)])) == [4, 5] and follow.last == 5


def test_falling_behind_reads_from_the_cursor_then_goes_live_again():
    follow = Follow(LogFilter())
    follow.page([])
    follow.live([record(1)])
    follow.lagged()
    assert follow.phase is Phase.CATCHING_UP and follow.next_page().after_seq == 1
    assert seqs(follow.page([record(2), record(3)])) == [2, 3]
    assert follow.phase is Phase.LIVE
    assert seqs(follow.live([record(3), record(4)])) == [4]


def test_the_end_comes_with_the_batch_taken_after_the_task_ended():
    follow = Follow(LogFilter())
    follow.page([])
    assert seqs(follow.live([record(1)], finished=False)) == [1] and not follow.ended
    assert seqs(follow.live([record(2)], finished=True)) == [2] and follow.ended


def test_a_store_fed_follow_reads_the_store_when_the_feed_is_quiet_and_once_at_the_end():
    follow = Follow(LogFilter(), store_fed=True)
    follow.page([])
    assert seqs(follow.live([record(1)])) == [1] and follow.phase is Phase.LIVE  # news: no read
    follow.live([])
    assert follow.phase is Phase.CATCHING_UP  # quiet: the store may hold what the feed never brought
    follow.page([record(2)])
    follow.live([record(3)], finished=True)
    assert follow.reading and not follow.ended  # the last look
    follow.page([record(4)])
    assert follow.ended and follow.last == 4


def test_a_feed_that_brings_the_history_says_where_the_seam_is():
    follow = Follow(LogFilter(), history_on_feed=True)
    assert follow.phase is Phase.LIVE and not follow.reading
    follow.live([record(1), record(2)])
    assert not follow.announce_seam()
    follow.live([record(3)], seam=True)
    assert follow.announce_seam() and follow.last == 3
    follow.feed_lost()  # the socket gave up: the store from the cursor, and from then on
    assert follow.reading and follow.store_fed and follow.next_page().after_seq == 3


def test_a_windowed_feed_bounds_the_history_and_is_read_on_from_its_first_record():
    follow = Follow(LogFilter(before_seq=50), feed_from=20)
    assert follow.next_page().before_seq == 20
    follow.page([record(3)])
    assert follow.position == 19 and follow.last == 3 and follow.phase is Phase.LIVE
    assert follow.live_through(21, 22)  # the window's records 20..22, of which 21 the last matching one
    assert follow.position == 22 and follow.last == 21
    assert not follow.live_through(None, 30) and follow.position == 30
    follow.lagged(feed_from=60)
    assert follow.next_page().before_seq == 50  # the filter's own bound is the narrower one
    follow.page([])
    assert follow.position == 59 and follow.last == 21
    assert follow.live_through(61, 61, finished=True) and follow.ended


def test_a_last_look_reads_the_store_once_more_before_the_end():
    follow = Follow(LogFilter(), last_look=True)
    follow.page([record(1)])
    assert seqs(follow.live([], finished=True)) == [] and follow.reading and not follow.ended
    assert follow.next_page().after_seq == 1
    follow.page([])
    assert follow.ended and follow.last == 1


def test_the_property_catches_a_machine_that_repeats_records_at_the_seam():
    """The property above can fail: a Follow that hands out live records without the cursor's test breaks it."""
    task = Task()
    task.emit("INFO", "plugin")  # one record: the first history page is short and reaches the seam
    reader = Reader(task, LogFilter(), "queue", queue_size=8)
    task.emit("INFO", "plugin")  # offered live and already in the store when the history is read
    with mock.patch.object(Follow, "_past", lambda self, records: list(records)):
        reader.step()
        reader.step()
        with pytest.raises(AssertionError, match="a gap, a repeat or a stranger"):
            reader.check()
