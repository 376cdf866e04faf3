"""Claims in the holder journal: the rooms' claims logs, fencing the previous holder, :class:`Claims`.

A claim of room R under epoch e by this journal (or a *hold*: its first append to R, or one under a
newer epoch) goes:

1. read R's claims log up to now (:class:`~journal.holder_log.ClaimsLog`; cached, read on from where it
   was): ``Fenced`` unless e would count;
2. if R's current holder stream is another one, write a FENCE(R, e) there and read that stream from the
   current claim's START up to the fence: every record of R after the fence is void for every reader,
   the holder included (it waits for its own read-back), and the last record before it is known;
3. write a START(R, e) in this journal's own holder stream (read back: where the new window starts);
4. append the claim to R's stream, naming the window and the windows it ended in 2 (``f``), and read up to
   it: the log's rule says whether it counts.
5. A claim that landed between 1 and 4 gets its holder fenced too, and a "last" note says so (``f``, and
   ``l`` when it had records), so no window before this one stays open.

Step 2 ends every window the log says is still open (:attr:`~journal.holder_log.ClaimsLog.open`), not only
the current holder's: a claimer that died between its 4 and its 5 left a racer's window open, and no
later entry says it was ended.

What a claim returns (the last record before it) is the highest of the "last" the log noted and the
records read while fencing.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from .base import Fenced, JournalUnavailable
from .holder_entries import CLAIM_LIMIT, FENCE, HOLDER, START, encode
from .holder_fold import Window
from .holder_log import CLAIM, HOLD, LAST, Claim, ClaimsLog, claim_headers, ended_header
from .holder_tail import Holding
from .holder_writer import HolderWriter
from .stream_connection import Connection
from .stream_fold import FORGOTTEN, Message
from .stream_read import Seer, scan
from .stream_rooms import Directory

__all__ = ["Claims"]

#: Room-stream messages a claim keeps free below :data:`~journal.holder_entries.CLAIM_LIMIT` (what may land
#: between its read of the claims log and its own entry).
_CLAIM_MARGIN = 1 << 16


@dataclass(slots=True, frozen=True)
class _Read:
    """How far a replay read a room's window (:meth:`Claims.read_up_to`)."""

    claim: int
    position: int
    last: int
    ended: bool


class Claims:
    """The claims logs this journal read, and the claims it makes."""

    def __init__(self, link: Connection, holder: str, writer: HolderWriter, holdings: dict[str, Holding],
                 directory: Directory) -> None:
        self._link = link
        self._holder = holder
        self._writer = writer
        self._holdings = holdings
        self._directory = directory
        self._logs: dict[str, ClaimsLog] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        #: How far a replay read a room's current window, by room (:meth:`read_up_to`).
        self._read: dict[str, _Read] = {}

    def lock(self, room: str) -> asyncio.Lock:
        """Held while a claim of ``room`` is made (claims of one room by this journal go one at a time)."""
        return self._locks.setdefault(room, asyncio.Lock())

    async def log(self, room: str, *, marker: dict[str, Any] | None = None) -> tuple[ClaimsLog, int, list[Claim]] | None:
        """R's claims log read up to a marker published now (``marker``: its headers), the marker's journal
        offset, and the claims that counted in what this read added; ``None`` if R has no stream."""
        start = self._logs.get(room) or ClaimsLog()
        trial: list[ClaimsLog] = []
        fresh: list[Claim] = []

        def begin() -> Seer:
            log = start.copy()
            trial[:] = [log]
            fresh.clear()

            def see(message: Message) -> bool:
                if log.see(message) and log.current is not None:
                    fresh.append(log.current)
                return False

            return see

        at = await scan(self._link, self._link.layout.room_queue(room), start.next, begin, headers=marker)
        if at is None:
            return None
        log = trial[0]
        log.next = at
        self._logs[room] = log
        return log, at, fresh

    async def forget(self, room: str, ended: int | None = None) -> tuple[int, int]:
        """Append a "forgotten" entry to ``room``'s claims log (the caller holds :meth:`lock`): the room's
        epoch and the entry's journal offset.  ``ended``: the claim (journal offset) whose window this journal
        has just ended (its END): the entry says so (``f``), and the next claimer need not read that window."""
        read = await self.log(room)
        epoch = read[0].epoch if read is not None else 0
        headers: dict[str, Any] = {"k": FORGOTTEN, "e": epoch}
        if ended is not None:
            headers["f"] = str(ended)
        read = await self.log(room, marker=headers)
        if read is None:
            raise JournalUnavailable(f"journal: the stream of room {room} is gone")
        log, at, _ = read
        log.see(Message(at, FORGOTTEN, epoch, headers, b""))
        log.next = at
        return epoch, at

    async def take(self, room: str, epoch: int, kind: str) -> int:
        """Claim (``kind`` claim or hold) ``room`` under ``epoch`` (the caller holds :meth:`lock`); the last
        record before the claim.  :class:`Fenced` if it does not count."""
        holding = self._holdings.get(room)
        if kind == HOLD and holding is not None and holding.epoch >= epoch:  # held meanwhile (an earlier hold)
            if holding.epoch > epoch:
                raise Fenced(room, epoch, holding.epoch)
            return holding.last
        link = self._link
        queue = link.layout.room_queue(room)
        await link.ensure_declared(queue)
        read = await self.log(room)
        assert read is not None  # declared above
        log = read[0]
        if not log.counts(kind, epoch, self._holder):
            raise Fenced(room, epoch, log.epoch)
        if isinstance(log.next, int) and log.next > CLAIM_LIMIT - _CLAIM_MARGIN:
            # a claim there could not number its records (holder_entries.offset_of): refused before it fences
            link.log.error("journal_room_stream_too_long", room=room, offset=log.next, limit=CLAIM_LIMIT)
            raise JournalUnavailable(f"journal: the stream of room {room} has {log.next} messages, too many for the "
                                     f"holder journal's offsets ({CLAIM_LIMIT})")
        await self._directory.opened(room)
        last = log.last
        ended = list(log.open)
        for claim in ended:  # the current holder's window, and any a dead claimer left open
            window_last = await self._fence(room, epoch, claim)
            if claim in log.claims:
                last = max(last, window_last)
        holder, (position, index) = await self._start(room, epoch)
        headers = claim_headers(kind, epoch, holder, position, index, last, ended)
        read = await self.log(room, marker=headers)
        assert read is not None
        log, at, _ = read
        counts = log.see(Message(at, CLAIM, epoch, headers, b""))
        log.next = at
        if not counts:
            raise Fenced(room, epoch, log.epoch)
        noted = last
        last = max(last, log.last)  # with the stream journal's records that landed before our claim
        racers = [claim for claim in log.open if claim.at != at]
        for other in racers:
            # counted between our read and our claim (or left open by a claimer that died before it ended
            # them): their windows end here too, and the log says so
            window_last = await self._fence(room, epoch, other)
            if other in log.claims:
                last = max(last, window_last)
        if last > noted or racers:
            await link.publish(queue, b"", {"k": LAST, "l": last, "f": ended_header(racers)})
        if holder != self._holder:  # the stream of its window was found gone meanwhile: not held
            raise JournalUnavailable(f"journal: the holder stream {holder} of the claim of room {room} was deleted")
        self._holdings[room] = Holding(at, epoch, last)
        return last

    def renew(self, holder: str) -> None:
        """This journal writes to holder stream ``holder`` from now on (the old one was found deleted)."""
        self._holder = holder
        self._read.clear()

    async def _start(self, room: str, epoch: int) -> tuple[str, tuple[int, int]]:
        """A START of ``room`` under ``epoch`` in this journal's holder stream, read back: the stream, and where
        the window starts there.  If the stream is found gone meanwhile (the journal renews it), the START
        goes to the new one, listed for the room first (the rooms directory names every stream a room's
        claims log may name)."""
        for attempt in range(3):
            holder = self._holder
            await self._directory.opened(room)
            if holder != self._holder:
                continue
            try:
                started: tuple[int, int] = await self._writer.add(START, room, epoch, b"")
            except JournalUnavailable:
                if holder == self._holder and attempt < 2:
                    # the START's message failed: find out whether the stream is gone (that renews it)
                    with contextlib.suppress(JournalUnavailable):
                        await self._writer.ready()
                if holder != self._holder:
                    continue
                raise
            return holder, started
        raise JournalUnavailable(f"journal: the holder stream was renewed again and again during a claim of {room}")

    def read_up_to(self, room: str, claim: Claim, position: int, last: int, ended: bool) -> None:
        """A replay read ``claim``'s window of ``room`` up to the holder message before journal offset
        ``position`` (``ended``: to its end), its last record ``last``: a claim right after it (a takeover
        replays, then claims) reads the window on from there, not from its START again."""
        self._read[room] = _Read(claim.at, position, last, ended)

    async def _fence(self, room: str, epoch: int, claim: Claim) -> int:
        """End ``claim``'s window of ``room`` (a FENCE(room, epoch) in its holder stream, read back unless
        the window had ended already); the offset of its last record (0: none)."""
        holding = self._holdings.get(room)
        if claim.holder == self._holder and holding is not None and holding.claim == claim.at:
            return holding.last  # our own open window: our tail knows it, and a START ends it
        read = self._read.get(room)
        if read is not None and read.claim == claim.at:
            del self._read[room]
            if read.ended:  # a window once ended stays so: nothing of it to fence
                return read.last
            window = Window(room, claim.at, claim.epoch, read.position, -1, inside=True, keep=False, last=read.last)
        else:
            window = Window(room, claim.at, claim.epoch, claim.position, claim.index, keep=False)
        if claim.holder == self._holder:  # our own, already closed: read it
            await scan(self._link, claim.holder, window.position - 1, window.begin)
            return window.last
        await scan(self._link, claim.holder, window.position - 1, window.begin,
                   headers={"k": HOLDER}, body=encode([(FENCE, room, epoch, b"")]))
        return window.last
