"""The room journal on RabbitMQ stream queues (aio-pika): :class:`StreamJournal`.

Layout (chosen by measurement, docs/design-notes.md "Room journal on RabbitMQ streams: layout";
:mod:`journal.stream_layout`): one stream per room holding its records and its claims, in append
order; one per room for its snapshots (:mod:`journal.stream_snapshots`); one for the rooms directory
(:mod:`journal.stream_rooms`), for :meth:`~StreamJournal.rooms`.

Offsets: a record's offset is its stream offset (``x-stream-offset``) plus one, so the first record of
a room is 1 and ``replay(after=0)`` means "from the beginning".  A publisher confirm carries no offset,
so a journal that writes to a room follows the room's stream with one consumer (its *tail*,
:mod:`journal.stream_tails`): an append or claim returns once the broker has confirmed the message
**and** the tail has delivered it, which gives its offset and shows exactly what precedes it in the
stream.  Writes are started without a coroutine each (:meth:`StreamJournal.submit`, the controller's
path; :mod:`journal.stream_writer`, :mod:`journal.stream_appends`) and the writes of one event-loop
turn go out together in one socket write (:mod:`journal.stream_publish`); a room's records land in
the order they were submitted.

Fencing: the broker cannot refuse a message, so the rule is applied by every reader in stream order
(:class:`~journal.stream_fold.Fold`).  A claim of epoch ``e`` counts iff ``e`` is above the highest
epoch counted before it, a record iff ``e`` is at least that (a record of a higher epoch raises it, as
a claim would); anything else is fenced off and skipped by :meth:`~StreamJournal.replay`.  Because an
append waits until its tail has seen its own record, it returns an offset only if the record counts
and raises :class:`~journal.base.Fenced` if it does not: the append's outcome is the one every later
replay will see.  A fenced record still takes room in the stream.

Forgetting a room leaves a "forgotten" entry in its stream (a new history starts after it, offsets
and epoch going on) and deletes its snapshots; the stream itself stays, its old records going by
retention.  A journal follows at most ``max_followed_rooms`` rooms (least recently used let go).

A room whose stream the holder journal wrote (:mod:`journal.holder`: claims naming a holder stream, its
records elsewhere) is refused by :meth:`~StreamJournal.replay` (:class:`~journal.base.WrongJournalKind`,
logged): this journal cannot read it, and reading only the room's stream would lose its history.  The
holder journal reads rooms this one wrote (docs/holder-journal.md, "Switching a cluster").

Reading (replay, the newest snapshot, rooms) publishes an end marker first, then reads with a fresh
consumer (manual acks, basic.qos) from the wanted offset up to that marker (:mod:`journal.stream_read`).
A consumer is never restored by aio-pika: connections are plain ones (:mod:`journal.stream_connection`);
after a loss the next operation reconnects and a tail resumes from the offset after the last message
it handled.  A stream refuses consumers for ~10 s after a broker start (each refusal closes the
connection); attaching is retried within ``attach_timeout``.  Every failure to reach the broker raises
:class:`~journal.base.JournalUnavailable`.
"""

from __future__ import annotations

import asyncio

from .base import Fenced, JournalRecord, JournalUnavailable, Snapshot, WrongJournalKind
from .settings import StreamJournalSettings
from .stream_appends import InFlight
from .stream_connection import Connection
from .stream_fold import CLAIM, FORGOTTEN, RECORD, Fold
from .stream_layout import Layout
from .stream_read import read
from .stream_rooms import Directory
from .stream_snapshots import Snapshots
from .stream_tails import Tails
from .stream_writer import Writer

__all__ = ["StreamJournal"]

#: Kinds only the holder journal writes into a room's stream (its claims carry a holder stream, ``h``).
_HOLDER_KINDS = frozenset({"hold", "last"})


class StreamJournal:
    """A :class:`~journal.base.Journal` on RabbitMQ stream queues (one stream per room)."""

    def __init__(self, url: str, settings: StreamJournalSettings | None = None, *, name: str = "journal") -> None:
        if not url:
            raise ValueError("StreamJournal needs a broker URL")
        self.url = url
        self.settings = settings or StreamJournalSettings()
        self.name = name
        self._layout = Layout(self.settings)
        self._link = Connection(url, self.settings, name, self._layout, on_lost=self._lost)
        s = self.settings
        self._writes = InFlight(s.max_in_flight, s.append_timeout,
                                on_expired=lambda: self._link.leave_stalled(f"writes not done within {s.append_timeout} s"),
                                stall_timeout=s.stall_timeout,
                                on_stalled=lambda rooms: self._link.leave_stalled(
                                    f"no confirm or read-back of a write to {', '.join(rooms)} within {s.stall_timeout} s"))
        self._directory = Directory(self._link)
        self._snapshots = Snapshots(self._link)
        self._tails = Tails(self._link, self._writes, self._directory, self._snapshots.newest)
        self._writer = Writer(self._link, self._tails, self._directory, self._writes)

    @property
    def reconnects(self) -> int:
        """Connections made after the first (each loss is followed by one on the next operation)."""
        return self._link.reconnects

    def _lost(self, exc: BaseException | None) -> None:
        self._tails.lost(exc)

    # -- lifecycle -----------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (a failure leaves nothing open); a closed journal cannot be opened again."""
        if self._link.closed:
            raise RuntimeError(f"the journal {self.name} was closed; make a new one")
        await self._link.connection()

    async def close(self) -> None:
        if self._link.closed:
            return
        self._link.shut()
        self._writes.close(JournalUnavailable("journal is closed"))
        self._tails.clear()
        await self._link.wait_closed()

    # -- the Journal interface -----------------------------------------------------------------------

    def submit(self, room: str, epoch: int, body: bytes) -> asyncio.Future[int]:
        """:meth:`append` without a coroutine of its own (the controller's path): the future has the
        record's offset, or :class:`Fenced`.  A room's records land in the order they were submitted."""
        return self._writer.submit(room, epoch, body)

    async def claim(self, room: str, epoch: int) -> int:
        seen = await self._writer.write(room, CLAIM, epoch, b"")
        if not seen.counts:
            raise Fenced(room, epoch, seen.epoch)
        return seen.last_before

    async def append(self, room: str, epoch: int, body: bytes) -> int:
        seen = await self._writer.write(room, RECORD, epoch, body)
        if not seen.counts:
            raise Fenced(room, epoch, seen.epoch)
        return seen.offset

    async def replay(self, room: str, after: int = 0) -> list[JournalRecord]:
        # Start at the record ``after`` itself (when there is one) to learn the epoch in force there.
        messages = await read(self._link, self._layout.room_queue(room), after - 1 if after > 0 else "first")
        fold = Fold(0, after)
        records: list[JournalRecord] = []
        for message in messages or ():
            if message.kind in _HOLDER_KINDS or (message.kind == CLAIM and "h" in message.headers):
                # the holder journal's claims log: its records are in holder streams this journal cannot read
                self._link.log.error("journal_room_of_another_kind", room=room, written_by="holder",
                                     code=WrongJournalKind.code)
                raise WrongJournalKind(room, "stream", "holder")
            seen = fold.see(message)
            if message.kind == FORGOTTEN and message.offset > after:
                records.clear()
            if seen.counts and message.kind == RECORD:
                records.append(JournalRecord(offset=message.offset, epoch=message.epoch, body=message.body))
        if messages:
            # followed from where this replay ended: a takeover's claim after it reads nothing twice
            self._tails.follow_from(room, fold, messages[-1].offset)
        return records

    async def save_snapshot(self, room: str, snapshot: Snapshot) -> None:
        await self._snapshots.save(room, snapshot, self._current_epoch)

    async def _current_epoch(self, room: str) -> int:
        return (await self._tails.follow(room)).fold.epoch

    async def snapshot(self, room: str) -> Snapshot | None:
        return await self._snapshots.newest(room)

    async def forget(self, room: str) -> None:
        # The room's stream stays (with a "forgotten" entry): a new history there keeps the offsets and
        # the epoch going up, as the contract wants; retention drops the old records.  Its snapshots go.
        if not await self._link.exists(self._layout.room_queue(room)):
            return
        tail = await self._tails.follow(room)
        await self._writer.write(room, FORGOTTEN, tail.fold.epoch, b"")
        self._directory.left(room)
        await self._snapshots.delete(room)
        await self._directory.forgotten(room)

    async def rooms(self) -> list[str]:
        return await self._directory.rooms()
