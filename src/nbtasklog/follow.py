"""Following one task's log: `Follow`, the state machine without I/O that every reader of a log drives
(history pages from a cursor, the seam, live batches, falling behind and catching up, the end)."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol, TypeVar

from .filter import LogFilter

PAGE = 10_000  # records per history page read, and per message a page of records goes out in


class _HasSeq(Protocol):
    @property
    def seq(self) -> int: ...


RecordT = TypeVar("RecordT", bound=_HasSeq)


class Phase(enum.Enum):
    HISTORY = "history"  # reading the stored records past the cursor, up to the seam
    LIVE = "live"  # handing out the live feed's batches
    CATCHING_UP = "catching up"  # reading the stored records past the cursor again, then live (or the end)
    ENDED = "ended"


class Follow:
    """One reader's way through one task's log: what it handed out, what it reads next, when it ends.

    The reader subscribes to the task's live feed first, then reads history pages (`next_page`, `page`)
    up to the seam, then hands out the feed's batches (`live`). Only records past `last`, the seq it
    last handed out, pass: no gap and no duplicate at the seam, and none after a catch-up. A feed that
    dropped records (the reader fell behind) makes it read the store from the cursor again (`lagged`);
    so does a quiet feed when records may also reach the store some other way (`store_fed`: a task
    neither run in this process nor brought by a server's socket). When the task had ended before a
    batch was taken, that batch holds its last records: the follow ends once it is handed out, after
    one last read of the store when the store is a source too, or when the driver asks for one
    (`last_look`: the server's sockets tell the end only after the store was read once more).

    The driver does the I/O and the messages: it reads the store and the feed, says what it saw, and
    sends what `page` and `live` hand out. A feed that brings the history itself (a server's socket:
    `history_on_feed`) says when it has (`seam=True`); a feed that holds records from a seq on (the
    server's shared window: `feed_from`) bounds the history reads, and is read on from `position`.
    """

    def __init__(self, flt: LogFilter, *, history_on_feed: bool = False, store_fed: bool = False,
                 feed_from: int | None = None, last_look: bool = False) -> None:
        self.filter = flt.with_limit(None)
        self.last = self.filter.after_seq or 0
        # The seq the log has been read through, matching records or not: where a windowed feed is
        # read on from. Never below `last`, so nothing read from there repeats a record handed out.
        self.position = self.last
        self.store_fed = store_fed
        self.last_look = last_look
        self.seam = False  # the history up to the live feed has been handed out
        self.phase = Phase.LIVE if history_on_feed else Phase.HISTORY
        self._feed_from = feed_from
        self._ending = False  # the task ended: the reading under way is the last
        self._seam_announced = False

    @property
    def reading(self) -> bool:
        """The next step is a history page: read next_page() from the store and hand it to page()."""
        return self.phase is Phase.HISTORY or self.phase is Phase.CATCHING_UP

    @property
    def ended(self) -> bool:
        """Every matching record of the ended task has been handed out: nothing more comes."""
        return self.phase is Phase.ENDED

    def from_cursor(self) -> LogFilter:
        """Every matching record still to come: those past the cursor (what a reopened socket asks for)."""
        return replace(self.filter, after_seq=self.last)

    def next_page(self) -> LogFilter:
        """The history page to read now: up to PAGE matching records past the cursor, in seq order, and
        before the first seq the feed holds when it said which."""
        page = replace(self.filter, after_seq=self.last, limit=PAGE, order="asc")
        bound = self._feed_from
        if bound is not None and (page.before_seq is None or bound < page.before_seq):
            page = replace(page, before_seq=bound)
        return page

    def page(self, records: Sequence[RecordT]) -> Sequence[RecordT]:
        """A page read with next_page(): the records to hand out. A short page ends the reading: the
        history is whole (the seam), and the live batches follow, or the end."""
        fresh = self._past(records)
        if len(records) < PAGE:
            if self._feed_from is not None:  # the feed holds what follows: it is read on from there
                self.position = max(self._feed_from - 1, self.last)
                self._feed_from = None
            self.seam = True
            if self.reading:
                self.phase = Phase.ENDED if self._ending else Phase.LIVE
        return fresh

    def live(self, batch: Sequence[RecordT], *, finished: bool = False, seam: bool = False) -> Sequence[RecordT]:
        """A batch taken from the live feed: the records to hand out, those past the cursor.

        `finished`: the task had ended before the batch was taken, so the batch holds its last records.
        `seam`: the feed had brought the whole history before the batch was taken (a server's socket).
        """
        fresh = self._past(batch)
        self._after_live(bool(fresh), finished, seam)
        return fresh

    def live_through(self, cursor: int | None, position: int, *, finished: bool = False) -> bool:
        """A batch the feed made into one message itself (the shared window's), of the records after
        `self.position` up to `position`; `cursor` is the seq of its last record, None when none matched.
        True when the message is to go out. `finished` as for live()."""
        fresh = cursor is not None and cursor > self.last
        if fresh:
            self.last = cursor  # type: ignore[assignment]
        self.position = max(self.position, position, self.last)
        self._after_live(fresh, finished, False)
        return fresh

    def lagged(self, *, feed_from: int | None = None) -> None:
        """The feed dropped records (the reader fell behind; it queues again from now on): read the store
        from the cursor again, up to `feed_from` (the first seq the feed still holds) when given."""
        self._feed_from = feed_from
        self._catch_up()

    def feed_lost(self) -> None:
        """The feed stopped for good (a server's socket gave up): from now on the store is a source too."""
        self.store_fed = True
        self._catch_up()

    def reach_seam(self) -> None:
        """The feed has brought the whole history (a server's socket said so)."""
        self.seam = True

    def finish(self) -> None:
        """The task ended and the feed's last batch has been handed out: the follow ends, after one last
        read of the store when records may reach it without passing the feed, or when asked to."""
        self._ending = True
        if self.phase is Phase.LIVE:
            self.phase = Phase.CATCHING_UP if self.store_fed or self.last_look else Phase.ENDED

    def announce_seam(self) -> bool:
        """True once, when the seam has been reached: the moment to say the history is complete."""
        if self.seam and not self._seam_announced:
            self._seam_announced = True
            return True
        return False

    def _after_live(self, fresh: bool, finished: bool, seam: bool) -> None:
        if seam:
            self.reach_seam()
        if finished:
            self.finish()
        elif self.store_fed and not fresh:
            self._catch_up()  # the feed is quiet: what came by the store alone is read now

    def _catch_up(self) -> None:
        if self.phase is Phase.LIVE:
            self.phase = Phase.CATCHING_UP

    def _past(self, records: Sequence[RecordT]) -> Sequence[RecordT]:
        """The records past the cursor (`records` in seq order, as every feed and page gives them); moves the cursor."""
        last = self.last
        if not records or records[-1].seq <= last:
            return []
        if records[0].seq <= last:
            records = [r for r in records if r.seq > last]
        self.last = records[-1].seq
        if self.position < self.last:
            self.position = self.last
        return records
