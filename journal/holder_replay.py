"""Replays that read one holder stream at the same time share one read of it: :class:`SharedReads`.

When a holder dies, its rooms are taken over together, and each one's replay reads its window of the dead
holder's stream, every other room's messages included: N rooms would read the stream N times.  Instead, a
*pass* reads a holder stream once, forward, and hands each room that joined it (a
:class:`~journal.holder_fold.Window`) the room's entries, dispatched by room.  A pass keeps what it read,
by room, up to ``holder_replay_share_bytes`` (then it stops keeping it), so that a room that joins after the
pass went past its start is first handed what it missed:

- a room whose start is ahead of the pass just joins;
- one whose start the pass read and kept gets those entries, then joins;
- one whose start is before anything the pass has: the pass reads the missing stretch, once, up to where
  it started (a backward *extension*; several rooms waiting on one stretch share it), then as above;
- when the pass can keep no more, a room that cannot join reads on its own (as every room does with
  ``holder_replay_share_bytes = 0``).

A room's read ends where its window ends, or at an end marker published after it joined (the contract of
``replay``: everything appended before the call).  The pass reads in rounds, each a :func:`scan` up to a
marker published as the round begins: a room that joined during a round is done at the next round's
marker.  A pass lingers :data:`LINGER` seconds once no room reads with it, what it kept kept, for rooms
that come late (the cluster manager hands a dead controller's rooms over ``failover_concurrency`` at a
time: the next ones start as the first ones are done); a room that comes after that starts a new pass.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Callable

from .base import JournalUnavailable
from .holder_entries import HOLDER, decode
from .holder_fold import Window
from .stream_connection import Connection
from .stream_fold import Message
from .stream_read import Seer, scan

__all__ = ["SharedReads"]

#: What a read gives a window: ``(ended, position)`` (the window ended; else the journal offset of the
#: first holder message not read), or ``None`` when the holder stream does not exist.
Outcome = tuple[bool, int] | None
#: A kept entry: ``(offset, index, kind, epoch, body)``.
_Kept = tuple[int, int, int, int, bytes]
#: Bytes a kept entry costs besides its body (a tuple of five and its ints), about.
_ENTRY_BYTES = 120
#: Seconds a pass waits, once nobody reads with it, for a room to join before it ends.
LINGER = 2.0


class _Alone(Exception):
    """The pass cannot hand this room what it missed: it reads on its own."""


class _Joiner:
    __slots__ = ("window", "outcome", "round")

    def __init__(self, window: Window) -> None:
        self.window = window
        self.outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        #: The round whose end marker ends its read (one that began after it joined).
        self.round = 0


def _give(joiner: _Joiner, outcome: Outcome) -> None:
    if not joiner.outcome.done():  # (done: its replay was cancelled)
        joiner.outcome.set_result(outcome)


def _refuse(joiner: _Joiner, exc: BaseException) -> None:
    if not joiner.outcome.done():
        joiner.outcome.set_exception(exc)


def _grouped(kept: list[_Kept], start: int) -> list[tuple[int, list[tuple[int, int, int, bytes]]]]:
    """Kept entries of one room from journal offset ``start`` on, grouped by message."""
    groups: list[tuple[int, list[tuple[int, int, int, bytes]]]] = []
    for offset, index, kind, epoch, body in kept[bisect_left(kept, (start,)):]:
        if not groups or groups[-1][0] != offset:
            groups.append((offset, []))
        groups[-1][1].append((index, kind, epoch, body))
    return groups


class _Pass:
    """One read of one holder stream, forward from ``start``, shared by the windows that join it."""

    def __init__(self, reads: SharedReads, queue: str, start: int) -> None:
        self._reads = reads
        self.queue = queue
        #: The kept entries cover journal offsets [start, next): ``start`` goes down as extensions land.
        self.start = start
        self.next = start
        #: The lowest offset kept or being read by an extension.
        self.low = start
        self.kept: dict[str, list[_Kept]] = {}
        self.kept_bytes = 0
        self.keeping = reads.max_bytes > 0
        #: Extensions read, not yet adjoining ``start``: by their end, ``(their start, entries, bytes)``.
        self._landed: dict[int, tuple[int, dict[str, list[_Kept]], int]] = {}
        self.live: dict[str, list[_Joiner]] = {}
        self.live_count = 0
        #: Joiners waiting for an extension, with their start.
        self.waiting: list[_Joiner] = []
        self.rounds = 0
        self.ended = False
        #: Set when a waiting joiner goes live or leaves (the read pauses while only waiting ones are left).
        self._wake = asyncio.Event()

    # -- joining -------------------------------------------------------------------------------------

    def join(self, window: Window) -> _Joiner | None:
        """``window`` reads with this pass (its joiner), or ``None`` when this pass cannot serve it."""
        if self.ended:
            return None
        at = window.position
        if at >= self.next:
            joiner = _Joiner(window)
            self._go_live(joiner)
            return joiner
        if not self.keeping:
            return None
        joiner = _Joiner(window)
        if at >= self.start:
            self._catch_up(joiner)
            return joiner
        self.waiting.append(joiner)
        if at < self.low:
            self._reads.extended += 1
            self._reads.keep(self._extend(at, self.low))
            self.low = at
        return joiner

    def wake(self) -> None:
        self._wake.set()

    def _go_live(self, joiner: _Joiner) -> None:
        joiner.round = self.rounds + 1
        self.live.setdefault(joiner.window.room, []).append(joiner)
        self.live_count += 1
        self._wake.set()

    def _catch_up(self, joiner: _Joiner) -> None:
        """Hand ``joiner`` the kept entries from its start, then let it read live (or it is done)."""
        window = joiner.window
        for offset, entries in _grouped(self.kept.get(window.room, []), window.position):
            if window.see(offset, entries):
                _give(joiner, (True, 0))
                return
        self._go_live(joiner)

    # -- reading -------------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while not self._reads.closed:
                if not self.live_count:
                    self._wake.clear()
                    if self.waiting:  # only joiners waiting for an extension: until one goes live
                        await self._wake.wait()
                        continue
                    try:  # nobody: a while for late comers
                        await asyncio.wait_for(self._wake.wait(), LINGER)
                    except TimeoutError:
                        if not self.live_count and not self.waiting:
                            break
                    continue
                self.rounds += 1
                marker = await scan(self._reads.link, self.queue, self.next - 1, lambda: self._see)
                if marker is None:
                    self._finish_all(None)
                    return
                if marker > 0:
                    self.next = marker + 1
                    self._finish_round(marker + 1)
        except Exception as exc:  # noqa: BLE001 - handed to every joiner
            self._fail_all(exc)
        finally:
            self._end()

    def _see(self, message: Message) -> bool:
        """One message of the live read; ``True`` (stop) when nobody reads live."""
        offset = message.offset
        if offset < self.next:
            return False  # a read that started over: handed out already
        self.next = offset + 1
        self._reads.read += 1
        if message.kind == HOLDER:
            live, keeping = self.live, self.keeping
            groups: dict[str, list[tuple[int, int, int, bytes]]] = {}
            added = 0
            for index, (kind, room, epoch, body) in enumerate(decode(message.body)):
                if keeping:
                    self.kept.setdefault(room, []).append((offset, index, kind, epoch, body))
                    added += len(body) + _ENTRY_BYTES
                if room in live:
                    groups.setdefault(room, []).append((index, kind, epoch, body))
            for room, entries in groups.items():
                for joiner in list(live.get(room, ())):
                    if joiner.window.see(offset, entries):
                        self._leave(joiner)
                        _give(joiner, (True, 0))
            if added:
                self._kept(added)
        return not self.live_count

    async def _extend(self, start: int, end: int) -> None:
        """Read [start, end) of the stream, kept by room, for the joiners waiting on it."""
        kept: dict[str, list[_Kept]] = {}
        size = [0]

        def see(message: Message) -> bool:
            if message.offset >= end:
                return True
            self._reads.read += 1
            if message.kind == HOLDER:
                for index, (kind, room, epoch, body) in enumerate(decode(message.body)):
                    kept.setdefault(room, []).append((message.offset, index, kind, epoch, body))
                    size[0] += len(body) + _ENTRY_BYTES
            return False

        def begin() -> Seer:
            kept.clear()
            size[0] = 0
            return see

        try:
            found = await scan(self._reads.link, self.queue, start - 1, begin)
        except Exception:  # noqa: BLE001 - those waiting read on their own (and meet the error there)
            found = None
        if found is None or not self.keeping or self.ended:
            self._stop_keeping()  # the stretch is missing: nothing below it can be handed out
            return
        self._landed[end] = (start, kept, size[0])
        while self.start in self._landed:
            begun, entries, size_ = self._landed.pop(self.start)
            for room, items in entries.items():
                self.kept[room] = items + self.kept.get(room, [])
            self.start = begun
            self._kept(size_)
        ready = [joiner for joiner in self.waiting if joiner.window.position >= self.start]
        self.waiting = [joiner for joiner in self.waiting if joiner.window.position < self.start]
        for joiner in ready:
            self._catch_up(joiner)

    # -- bookkeeping ---------------------------------------------------------------------------------

    def _kept(self, size: int) -> None:
        self.kept_bytes += size
        if self.kept_bytes > self._reads.max_bytes:
            self._stop_keeping()  # bounded

    def _stop_keeping(self) -> None:
        """Nothing kept any more: a window that cannot join (ahead of the read) reads on its own."""
        self.keeping = False
        self.kept, self.kept_bytes, self._landed = {}, 0, {}
        self._alone()

    def _alone(self) -> None:
        waiting, self.waiting = self.waiting, []
        for joiner in waiting:
            _refuse(joiner, _Alone())
        self._wake.set()

    def _leave(self, joiner: _Joiner) -> None:
        self.live[joiner.window.room].remove(joiner)
        if not self.live[joiner.window.room]:
            del self.live[joiner.window.room]
        self.live_count -= 1

    def _finish_round(self, position: int) -> None:
        for joiners in list(self.live.values()):
            for joiner in list(joiners):
                if joiner.round <= self.rounds:
                    self._leave(joiner)
                    _give(joiner, (False, position))

    def _finish_all(self, outcome: Outcome) -> None:
        for joiners in list(self.live.values()):
            for joiner in list(joiners):
                self._leave(joiner)
                _give(joiner, outcome)
        self._alone()

    def _fail_all(self, exc: BaseException) -> None:
        for joiners in list(self.live.values()):
            for joiner in list(joiners):
                self._leave(joiner)
                _refuse(joiner, exc)
        self._alone()

    def _end(self) -> None:
        self.ended = True
        self._fail_all(JournalUnavailable("journal is closed"))  # none left, unless closed or cancelled
        self.kept, self._landed = {}, {}
        passes = self._reads.passes.get(self.queue)
        if passes is not None and self in passes:
            passes.remove(self)
            if not passes:
                del self._reads.passes[self.queue]


class SharedReads:
    """The holder-stream reads of one journal's replays (:meth:`read`)."""

    def __init__(self, link: Connection, max_bytes: int, keep: Callable[..., None]) -> None:
        self.link = link
        self.max_bytes = max_bytes
        #: Runs a task for the connection's lifetime (``Connection.keep``).
        self.keep = keep
        self.passes: dict[str, list[_Pass]] = {}
        self.closed = False
        #: Holder messages handed to replays' readers so far (each counted once per read of it).
        self.read = 0
        #: Passes started, extensions read and windows read on their own, so far.
        self.started = self.extended = self.alone = 0

    def close(self) -> None:
        """End every pass (their joiners fail: the journal is closing)."""
        self.closed = True
        for passes in list(self.passes.values()):
            for running in passes:
                running.wake()

    async def read_window(self, queue: str, window: Window) -> Outcome:
        """Read ``window`` of holder stream ``queue`` (from ``window.position``) up to its end or to now."""
        if self.max_bytes > 0:
            try:
                return await self._shared(queue, window)
            except _Alone:
                window.begin()
        return await self._alone(queue, window)

    async def _shared(self, queue: str, window: Window) -> Outcome:
        joiner = None
        for running in self.passes.get(queue, ()):
            joiner = running.join(window)
            if joiner is not None:
                break
        else:
            self.started += 1
            started = _Pass(self, queue, window.position)
            self.passes.setdefault(queue, []).append(started)
            joiner = started.join(window)
            assert joiner is not None
            self.keep(started.run())
        return await joiner.outcome

    async def _alone(self, queue: str, window: Window) -> Outcome:
        self.alone += 1
        def begin() -> Seer:
            see = window.begin()

            def counted(message: Message) -> bool:
                self.read += 1
                return see(message)

            return counted

        marker = await scan(self.link, queue, window.position - 1, begin)
        if marker is None:
            return None
        return (marker == 0, marker + 1)
