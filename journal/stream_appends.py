"""Writes to room streams in flight (:class:`InFlight`), for :class:`journal.stream.StreamJournal`.

A write (a record, a claim, a "forgotten" entry) is done when the broker has confirmed it **and** the
room's tail has delivered it back (which gives its offset and whether the fencing rule counts it), in
either order.  At most ``limit`` writes are in flight at once and each has ``timeout`` seconds; one
timer serves them all (the deadlines come in the order the writes started).  A shorter bound,
``stall_timeout``, tells a link that takes no write of a room at all from a slow one: a write still
without its confirm (or without being read back) ``stall_timeout`` after it started, while no write
of its room got one meanwhile either, makes :class:`InFlight` call ``on_stalled`` (the journal leaves
the connection, which fails the writes on it) long before their deadline.  No coroutine or task of
its own per write: the journal publishes, the confirm and the delivery call :meth:`InFlight.confirmed`
and :meth:`InFlight.seen`, and the write's future completes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import Fenced, JournalUnavailable

__all__ = ["Seen", "Write", "InFlight"]


@dataclass(slots=True, frozen=True)
class Seen:
    """What the fencing rule made of one message."""

    offset: int
    counts: bool  # a record or claim that is part of the room's history (not fenced off)
    epoch: int  # the room's epoch once this message is taken into account
    last_before: int  # the last record that counts before this message (0: none)


@dataclass(slots=True, eq=False)
class Write:
    """One message published to a room's stream, until it is confirmed and seen."""

    room: str
    kind: str
    epoch: int
    message_id: str
    #: The tail's writes by message id: the write is there until it is done.
    waiting: dict[str, Write]
    #: With ``record``: the record's offset (:class:`Fenced` if the rule does not count it); else the :class:`Seen`.
    future: asyncio.Future[Any]
    record: bool
    deadline: float
    #: When it started (the event loop's clock).
    started: float = 0.0
    confirmed: bool = False
    seen: Seen | None = None
    done: bool = False


@dataclass(slots=True)
class _Progress:
    """A room's writes in flight, and when one of them was last confirmed, and last read back."""

    pending: int
    confirmed: float
    seen: float


class InFlight:
    """The journal's writes in flight: bounded in number and in time."""

    def __init__(self, limit: int, timeout: float, on_expired: Callable[[], None] | None = None, *,
                 stall_timeout: float | None = None, on_stalled: Callable[[list[str]], None] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.limit = limit
        self.timeout = timeout
        #: Told once per expiry sweep that let writes run out of time (the link is suspect).
        self.on_expired = on_expired
        #: No confirm (or no read-back) of any write of a room for this long while one waits: stalled.
        self.stall_timeout = stall_timeout
        #: Told the rooms whose writes stalled, once per sweep that found some (the link is stuck).
        self.on_stalled = on_stalled
        self.count = 0  # slots taken: writes in flight and callers about to start one
        self._free: deque[asyncio.Future[None]] = deque()  # callers waiting for a slot
        self._deadlines: deque[Write] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._progress: dict[str, _Progress] = {}
        self._stall_timer: asyncio.TimerHandle | None = None
        #: When writes start and get their confirm or read-back, for the stall bound (the event loop's clock).
        self._clock = clock or (lambda: asyncio.get_running_loop().time())

    @property
    def full(self) -> bool:
        """No slot for a newcomer: all taken, or callers already waiting (they come first)."""
        return self.count >= self.limit or bool(self._free)

    async def take(self) -> None:
        """A slot, in turn (the caller bounds the wait); give it back with :meth:`give_back` unless a
        write starts in it."""
        if not self.full:
            self.count += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._free.append(waiter)
        try:
            await waiter  # a slot handed over by give_back: counted already
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.give_back()  # handed over, but this caller left
            elif waiter in self._free:
                self._free.remove(waiter)
            raise

    def give_back(self) -> None:
        """Free a slot, or hand it to the first caller waiting."""
        while self._free:
            waiter = self._free.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.count -= 1

    def start(self, room: str, kind: str, epoch: int, message_id: str, waiting: dict[str, Write],
              record: bool, *, slot_taken: bool = False, future: asyncio.Future[Any] | None = None) -> Write:
        """A write in a slot (taken now unless ``slot_taken``), registered with its tail under ``message_id``;
        it completes ``future`` (a new one by default)."""
        if not slot_taken:
            self.count += 1
        loop = asyncio.get_running_loop()
        now = self._clock()
        write = Write(room, kind, epoch, message_id, waiting, future or loop.create_future(), record,
                      loop.time() + self.timeout, now)
        waiting[message_id] = write
        self._deadlines.append(write)
        progress = self._progress.get(room)
        if progress is None:
            self._progress[room] = _Progress(1, now, now)
        else:
            progress.pending += 1
        if self._timer is None:
            self._timer = loop.call_at(write.deadline, self._expire)
        if self._stall_timer is None and self.stall_timeout is not None:
            self._stall_timer = loop.call_later(self.stall_timeout, self._stall_sweep)
        return write

    def confirmed(self, write: Write) -> None:
        write.confirmed = True
        progress = self._progress.get(write.room)
        if progress is not None and not write.done:
            progress.confirmed = self._clock()
        if write.seen is not None:
            self._finish(write, None)

    def seen(self, write: Write, seen: Seen) -> None:
        write.seen = seen
        progress = self._progress.get(write.room)
        if progress is not None and not write.done:
            progress.seen = self._clock()
        if write.confirmed:
            self._finish(write, None)

    def stalled(self, now: float) -> tuple[list[str], float | None]:
        """The rooms with a write stalled at ``now`` (on the clock): without its confirm, or
        without being read back, ``stall_timeout`` after it started and after the last write of its room
        that got one; and when to look again (``None``: no write in flight)."""
        limit = self.stall_timeout
        assert limit is not None
        rooms: dict[str, None] = {}
        again: float | None = None
        for write in self._deadlines:
            if write.done:
                continue
            if write.started + limit > now:  # this one and every later one started too recently
                again = write.started + limit if again is None else min(again, write.started + limit)
                break
            progress = self._progress[write.room]
            since = [max(write.started, at) for waits, at in ((not write.confirmed, progress.confirmed),
                                                              (write.seen is None, progress.seen)) if waits]
            if any(at + limit <= now for at in since):
                rooms[write.room] = None
            for at in since:
                if at + limit > now:
                    again = at + limit if again is None else min(again, at + limit)
        return list(rooms), again

    def fail(self, write: Write, error: BaseException) -> None:
        self._finish(write, error)

    def fail_all(self, waiting: dict[str, Write], error: BaseException) -> None:
        for write in list(waiting.values()):
            self._finish(write, error)

    def close(self, error: BaseException) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        free, self._free = self._free, deque()
        for waiter in free:
            if not waiter.done():
                waiter.set_exception(error)
        for write in list(self._deadlines):
            self._finish(write, error)

    def _finish(self, write: Write, error: BaseException | None) -> None:
        if write.done:
            return
        write.done = True
        write.waiting.pop(write.message_id, None)
        progress = self._progress.get(write.room)
        if progress is not None:
            progress.pending -= 1
            if progress.pending <= 0:
                del self._progress[write.room]
        deadlines = self._deadlines
        while deadlines and deadlines[0].done:
            deadlines.popleft()
        self.give_back()
        future = write.future
        if future.done():  # the caller stopped waiting (its own timeout)
            return
        if error is not None:
            future.set_exception(error)
            return
        seen = write.seen
        assert seen is not None
        if not write.record:
            future.set_result(seen)
        elif seen.counts:
            future.set_result(seen.offset)
        else:
            future.set_exception(Fenced(write.room, write.epoch, seen.epoch))

    def _expire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadlines = self._deadlines
        expired = False
        while deadlines and (deadlines[0].done or deadlines[0].deadline <= now):
            write = deadlines.popleft()
            if not write.done:
                expired = True
                self._finish(write, JournalUnavailable(
                    f"journal: {write.kind} to room {write.room} not done within {self.timeout} s"))
        if expired and self.on_expired is not None:
            self.on_expired()
        if deadlines:
            self._timer = loop.call_at(deadlines[0].deadline, self._expire)

    def _stall_sweep(self, again: bool = False) -> None:
        self._stall_timer = None
        limit = self.stall_timeout
        assert limit is not None
        loop = asyncio.get_running_loop()
        rooms, next_at = self.stalled(self._clock())
        if rooms and not again:
            # Look once more a moment later, after the frames already read are handled (a busy event
            # loop runs this timer before the reader that has the confirms): only then is it a stall.
            self._stall_timer = loop.call_later(limit / 10, self._stall_sweep, True)
            return
        if rooms and self.on_stalled is not None:
            self.on_stalled(rooms)  # may fail writes (the link is left): look again only at what is left
            rooms, next_at = self.stalled(self._clock())
        if self._stall_timer is None and any(not write.done for write in self._deadlines):
            # a write not stalled yet is looked at again when it could be; one stalled, every stall_timeout
            delay = limit if next_at is None else max(0.0, next_at - self._clock())
            self._stall_timer = loop.call_later(delay, self._stall_sweep)
