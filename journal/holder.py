"""The room journal with a holder stream per journal instance: :class:`HolderJournal` (``journal.kind =
"holder"``, the default for a controller on a broker; docs/holder-journal.md has the design, the tests,
the measurements and the limits).

The stream journal (:mod:`journal.stream`) writes each record as one message to its room's stream; the
broker's cost is per message.  Here every journal instance writes the records of **all** its rooms to one
stream of its own, its *holder stream* (``<prefix>holder.<name>.<incarnation>``, new with each instance), in
messages of many records (:mod:`journal.holder_writer`: one message in flight, the records made meanwhile in
the next; no timer).  A room's own stream keeps only its claims (:mod:`journal.holder_log`): each names the
claimer's holder stream and where its window starts there.  Before a claim counts, the claimer fences the
previous holder stream (:mod:`journal.holder_claims`); the holder, which waits for its own read-back of every
message, sees the fence ahead of any later record of the room and fails it with :class:`Fenced`
(:mod:`journal.holder_tail`, rule in :mod:`journal.holder_fold`).

Offsets pack the claim, the holder message and the index in it (:mod:`journal.holder_entries`), so they go
up within a room across claims and holders.  ``replay`` follows the room's claims log: for each claim since
the room was last forgotten, the room's records in that claim's window of its holder stream.  Snapshots,
the rooms directory and the connection are the stream journal's (:mod:`journal.stream_snapshots`,
:mod:`journal.stream_rooms`, :mod:`journal.stream_connection`).  Each instance notes signs of life, and
sweeps the holder streams of dead instances that no room's replay needs (:mod:`journal.holder_sweeper`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Callable

from .base import Fenced, JournalRecord, JournalUnavailable, Snapshot
from .holder_claims import Claims
from .holder_due import SnapshotsDue
from .holder_entries import END, RECORD, parts
from .holder_fold import Window
from .holder_log import CLAIM, HOLD, ROOM_STREAM, Claim
from .holder_replay import SharedReads
from .holder_sweeper import HolderDirectory, HolderSweeper
from .holder_tail import Holding, HolderStreamRenewed, OwnTail
from .holder_writer import HolderWriter
from .settings import StreamJournalSettings
from .stream_appends import InFlight
from .stream_connection import BROKER_ERRORS, Connection
from .stream_layout import Layout
from .stream_fold import RECORD as STREAM_RECORD
from .stream_fold import Message
from .stream_read import Seer, scan
from .stream_snapshots import Snapshots

__all__ = ["HolderJournal"]

_Queued = deque[tuple[int, bytes, "asyncio.Future[int]"]]


class HolderJournal:
    """A :class:`~journal.base.Journal` on RabbitMQ streams, the records of all its rooms in one stream."""

    def __init__(self, url: str, settings: StreamJournalSettings | None = None, *, name: str = "journal") -> None:
        if not url:
            raise ValueError("HolderJournal needs a broker URL")
        self.url = url
        self.settings = s = settings or StreamJournalSettings()
        self.name = name
        self._layout = Layout(s)
        #: This instance's holder stream: never written by a later instance, even of the same worker.
        self.holder = self._layout.holder_queue(f"{name}.{uuid.uuid4().hex[:12]}")
        self._link = Connection(url, s, name, self._layout, on_lost=self._lost)
        self._writes = InFlight(s.max_in_flight, s.append_timeout,
                                on_expired=lambda: self._link.leave_stalled(f"writes not done within {s.append_timeout} s"),
                                stall_timeout=s.stall_timeout,
                                on_stalled=lambda _: self._link.leave_stalled(
                                    f"no confirm or read-back of a holder message within {s.stall_timeout} s"))
        self._holdings: dict[str, Holding] = {}
        self._tail = OwnTail(self._link, self.holder, self._writes, self._holdings)
        self._due = SnapshotsDue(self._holdings, s.holder_snapshot_after, self._link.log)
        self._tail.passed = self._due.passed
        self._tail.gone = self._renew
        self._writer = HolderWriter(self._link, self._tail, self._writes, s.holder_hold)
        self._directory = HolderDirectory(self._link, self.holder, lambda: self._sweeper.announce())
        self._snapshots = Snapshots(self._link)
        self._reads = SharedReads(self._link, s.holder_replay_share_bytes, self._link.keep)
        self._claims = Claims(self._link, self.holder, self._writer, self._holdings, self._directory)
        #: This journal's signs of life, and the sweeper of dead journals' holder streams.
        self._sweeper = HolderSweeper(url, self._link, self.holder)
        self._tail.announce = self._sweeper.announce
        #: Records submitted that wait for a hold of their room (its first, or a newer epoch), in order.
        self._queued: dict[str, _Queued] = {}

    @property
    def reconnects(self) -> int:
        return self._link.reconnects

    @property
    def messages(self) -> int:
        """Holder messages published so far."""
        return self._writer.messages

    @property
    def entries(self) -> int:
        """Entries (records and claims' starts) in them."""
        return self._writer.entries

    @property
    def replay_reads(self) -> int:
        """Holder messages this journal's replays read so far (a message read for several rooms at once
        counts once)."""
        return self._reads.read

    @property
    def snapshots_told_due(self) -> int:
        """How many times a room's snapshot was said due because the holder stream moved on."""
        return self._due.told

    def _renew(self) -> None:
        """This journal's holder stream was found deleted (a sweeper took this journal for dead: it was cut off
        or frozen longer than ``holder_dead_after``, and every room it held moved on meanwhile).  Let go of
        every room (each must be claimed or held again: the claims log refuses, ``Fenced``, a room that moved),
        fail what was written or waits to be written to the old stream, and go on in a new holder stream (a new
        name; noted alive before it is declared, and named in each room's next "opened" entry)."""
        old = self.holder
        self.holder = self._layout.holder_queue(f"{self.name}.{uuid.uuid4().hex[:12]}")
        dropped = len(self._holdings) + len(self._tail.leaving)
        error = HolderStreamRenewed(f"journal: this journal's holder stream {old} was deleted; "
                                    f"it writes to {self.holder} now")
        self._holdings.clear()
        self._writes.fail_all(self._tail.waiting, error)
        self._writer.close(error)
        self._tail.renew(self.holder)
        self._due.reset()
        self._claims.renew(self.holder)
        self._directory.renew(self.holder)
        self._sweeper.renew(self.holder)
        self._link.log.warning("journal_holder_stream_renewed", old=old, holder=self.holder, rooms_dropped=dropped)

    def _lost(self, exc: BaseException | None) -> None:
        self._link.log.warning("journal_connection_lost", error=repr(exc), rooms_held=len(self._holdings))
        self._tail.lost(exc)

    # -- lifecycle -----------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._link.closed:
            raise RuntimeError(f"the journal {self.name} was closed; make a new one")
        await self._link.connection()
        self._sweeper.start()

    async def close(self) -> None:
        if self._link.closed:
            return
        self._link.log.info("journal_holder_closed", holder=self.holder, messages=self.messages, entries=self.entries,
                            held=self._writer.held)
        await self._sweeper.stop()
        self._link.shut()
        closed = JournalUnavailable("journal is closed")
        self._writes.close(closed)
        self._writer.close(closed)
        self._reads.close()
        await self._link.wait_closed()

    # -- the Journal interface -----------------------------------------------------------------------

    def submit(self, room: str, epoch: int, body: bytes) -> asyncio.Future[int]:
        """:meth:`append` without a coroutine of its own: the future has the record's offset, or
        :class:`Fenced`.  A room's records land in the order they were submitted."""
        if self._link.closed:
            return self._refused(JournalUnavailable("journal is closed"))
        holding = self._holdings.get(room)
        if holding is not None and room not in self._queued:
            if epoch == holding.epoch:
                future: asyncio.Future[int] = self._writer.add(RECORD, room, epoch, body)
                return future
            if epoch < holding.epoch:
                return self._refused(Fenced(room, epoch, holding.epoch))
        return self._enqueue(room, epoch, body)

    async def append(self, room: str, epoch: int, body: bytes) -> int:
        return await self.submit(room, epoch, body)

    async def claim(self, room: str, epoch: int) -> int:
        return await self._take(room, epoch, CLAIM)

    async def replay(self, room: str, after: int = 0) -> list[JournalRecord]:
        read = await self._claims.log(room)
        if read is None:
            return []
        log = read[0]
        claim, position, index = parts(after) if after > 0 else (0, 0, 0)
        records: list[JournalRecord] = []
        for window in log.claims:
            if window.at < claim:
                continue
            if window.holder == ROOM_STREAM:  # the stream journal's records, in the room's own stream
                records.extend(await self._room_stream_window(room, window, log.window_end(window), after))
                continue
            reader = (Window(room, window.at, window.epoch, position, index, inside=True, last=after)
                      if window.at == claim else Window(room, window.at, window.epoch, window.position, window.index))
            outcome = await self._reads.read_window(window.holder, reader)
            records.extend(reader.records)
            if window is log.current and outcome is not None:
                # a takeover claims right after its replay: its fence reads on from here
                ended, position = outcome
                self._claims.read_up_to(room, window, position, reader.last, ended)
        return records

    async def _room_stream_window(self, room: str, window: Claim, end: int | None, after: int) -> list[JournalRecord]:
        """The stream journal's records of ``room`` in a room-stream window (:data:`~journal.holder_log.ROOM_STREAM`)
        that ends at journal offset ``end`` (``None``: open), above ``after``."""
        records: list[JournalRecord] = []
        start = max(window.position, after + 1)

        def see(message: Message) -> bool:
            if end is not None and message.offset >= end:
                return True
            if message.kind == STREAM_RECORD and message.epoch == window.epoch and message.offset >= start:
                records.append(JournalRecord(offset=message.offset, epoch=message.epoch, body=message.body))
            return False

        def begin() -> Seer:
            records.clear()
            return see

        await scan(self._link, self._layout.room_queue(room), start - 1, begin)
        return records

    def watch_snapshots(self, due: Callable[[str], None]) -> Callable[[], None]:
        """Have ``due(room)`` called when a snapshot of a room this journal holds is due because its holder
        stream moved ``holder_snapshot_after`` messages past the room's replay start (:mod:`journal.holder_due`);
        the function returned stops the calls.  A snapshot saved after that call, with nothing of the room
        written since its last record, is kept under a higher offset (the last holder message read): its
        replay starts there."""
        return self._due.watch(due)

    async def save_snapshot(self, room: str, snapshot: Snapshot) -> None:
        offset = self._due.raised(room, snapshot.epoch, snapshot.offset)  # before any await: as of this state
        if offset != snapshot.offset:
            snapshot = Snapshot(offset=offset, epoch=snapshot.epoch, body=snapshot.body)
        await self._snapshots.save(room, snapshot, self._current_epoch)
        self._due.saved(room, snapshot.offset)

    async def snapshot(self, room: str) -> Snapshot | None:
        return await self._snapshots.newest(room)

    async def forget(self, room: str) -> None:
        link = self._link
        if not await link.exists(link.layout.room_queue(room)):
            return
        async with self._claims.lock(room):
            ended = await self._end(room)
            epoch, at = await self._claims.forget(room, ended)
            self._due.released(room)
            self._directory.left(room)
        await self._snapshots.delete(room)
        await self._directory.forgotten(room)

    async def rooms(self) -> list[str]:
        return await self._directory.rooms()

    async def _end(self, room: str) -> int | None:
        """Before a forget: let the room go (a record submitted from now on waits for the forget and lands in
        the new history), and end this journal's window of it with an END in its holder stream, read back:
        every record of the room still in flight then has its answer, before the "forgotten" entry.  The
        claim (journal offset) whose window is now ended (by the END, or by a claimer's FENCE before it);
        ``None`` if this journal did not hold the room."""
        holding = self._holdings.pop(room, None)
        if holding is None:
            return None
        self._tail.leaving[room] = holding
        try:
            await self._writer.add(END, room, holding.epoch, b"")
        finally:
            if self._tail.leaving.get(room) is holding:
                del self._tail.leaving[room]
        return holding.claim

    # -- claims and holds ----------------------------------------------------------------------------

    async def _current_epoch(self, room: str) -> int:
        read = await self._claims.log(room)
        return read[0].epoch if read is not None else 0

    async def _take(self, room: str, epoch: int, kind: str) -> int:
        if self._link.closed:
            raise JournalUnavailable("journal is closed")
        try:
            async with self._claims.lock(room), asyncio.timeout(self.settings.read_timeout):
                held = self._holdings.get(room)
                last = await self._claims.take(room, epoch, kind)
                if self._holdings.get(room) is not held:
                    self._due.arm(room)  # a new window: its replay starts at its START, just read back
                return last
        except (Fenced, JournalUnavailable):
            raise
        except TimeoutError as exc:
            raise JournalUnavailable(f"journal: {kind} of room {room} not done within "
                                     f"{self.settings.read_timeout} s") from exc
        except BROKER_ERRORS as exc:
            self._link.drop_if_broken(exc)
            raise JournalUnavailable(f"journal: {kind} of room {room} failed, RabbitMQ at "
                                     f"{self._link.where}: {exc!r}") from exc

    def _refused(self, error: BaseException) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        future.set_exception(error)
        return future

    def _enqueue(self, room: str, epoch: int, body: bytes) -> asyncio.Future[int]:
        """A record whose room this journal does not hold under ``epoch`` yet: one task per room holds it
        first (:meth:`_take`, kind hold), in order; later records of the room queue behind."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        queued = self._queued.get(room)
        if queued is None:
            queued = self._queued[room] = deque()
            self._link.keep(self._start_queued(room, queued))
        queued.append((epoch, body, future))
        return future

    async def _start_queued(self, room: str, queued: _Queued) -> None:
        try:
            while queued:
                epoch, body, future = queued[0]
                try:
                    holding = self._holdings.get(room)
                    if holding is None or epoch > holding.epoch:
                        await self._take(room, epoch, HOLD)
                    elif epoch < holding.epoch:
                        raise Fenced(room, epoch, holding.epoch)
                except (Fenced, JournalUnavailable) as exc:
                    if not future.done():
                        future.set_exception(exc)
                else:
                    if not future.done():
                        self._writer.add(RECORD, room, epoch, body, future)
                queued.popleft()
        finally:
            if self._queued.get(room) is queued:
                del self._queued[room]
            for _, _, future in queued:
                if not future.done():
                    future.set_exception(JournalUnavailable("journal is closed"))
