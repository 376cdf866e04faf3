"""Starting writes to room streams (records, claims, "forgotten" entries): :class:`Writer`.

A write needs a slot (:class:`~journal.stream_appends.InFlight`), the room's tail attached
(:class:`~journal.stream_tails.Tails`) and the room in the rooms directory; the writes started in one
event-loop turn, across rooms, go out together at its end in one socket write
(:class:`~journal.stream_publish.BatchPublisher`).  A write is done once the broker has confirmed it
**and** the room's tail has delivered it back.  :meth:`Writer.submit` starts a record without a
coroutine of its own when it can; a record that cannot start at once queues per room, one task starts
the queue in order, and later records of the room go behind it, so a room's records land in the order
they were submitted.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import deque
from functools import partial
from typing import Any

import aiormq
from pamqp.commands import Basic

from .base import Fenced, JournalUnavailable
from .stream_appends import InFlight, Seen, Write
from .stream_connection import BROKER_ERRORS, Connection
from .stream_fold import CLAIM, FORGOTTEN, RECORD
from .stream_publish import Outgoing
from .stream_rooms import Directory
from .stream_tails import Tail, Tails

__all__ = ["Writer"]

#: What starting a write may fail with (:meth:`Writer._failure` says what the caller is told).
_WRITE_ERRORS: tuple[type[BaseException], ...] = (Fenced, JournalUnavailable, *BROKER_ERRORS)


class Writer:
    """The journal's writes to room streams from the call to their start (in flight: :class:`InFlight`)."""

    def __init__(self, link: Connection, tails: Tails, directory: Directory, writes: InFlight) -> None:
        self._link = link
        self._tails = tails
        self._directory = directory
        self._writes = writes
        #: Writes started in this event-loop turn, published together at its end.
        self._outgoing: list[tuple[Write, Outgoing]] = []
        #: Records submitted that could not start at once, by room, in order (see :meth:`_enqueue`).
        self._queued: dict[str, deque[tuple[int, bytes, asyncio.Future[int]]]] = {}
        #: Message ids of this journal's writes: a prefix of its own and a count.
        self._ids = itertools.count()
        self._id_prefix = uuid.uuid4().hex[:16]

    @property
    def queued_rooms(self) -> int:
        """Rooms with records submitted that have not started yet."""
        return len(self._queued)

    def submit(self, room: str, epoch: int, body: bytes) -> asyncio.Future[int]:
        """Append a record without a coroutine of its own: the future has the record's offset, or
        :class:`Fenced`.  A room's records land in the order they were submitted."""
        tail = self._tails.get(room)
        writer = self._link.writer
        if (room in self._queued or tail is None or not tail.attached or not self._directory.listed(room)
                or self._writes.full or writer is None or writer.closed):
            return self._enqueue(room, epoch, body)
        current = tail.fold.epoch
        if epoch < current:
            refused: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            refused.set_exception(Fenced(room, epoch, current))
            return refused
        self._tails.used(room)
        future: asyncio.Future[int] = self._start(tail, RECORD, epoch, body, record=True, slot_taken=False).future
        return future

    async def write(self, room: str, kind: str, epoch: int, body: bytes) -> Seen:
        """Append one message to the room's stream; what the fencing rule made of it once its tail saw it."""
        try:
            async with asyncio.timeout(self._link.settings.append_timeout):
                tail = await self._prepare(room, kind, epoch)
                seen: Seen = await self._start(tail, kind, epoch, body, record=False, slot_taken=True).future
                return seen
        except BROKER_ERRORS as exc:  # asyncio.TimeoutError (= TimeoutError) among them
            raise self._failure(room, kind, exc) from exc

    def _enqueue(self, room: str, epoch: int, body: bytes) -> asyncio.Future[int]:
        """A record that cannot start at once (its room's tail not attached yet, no slot free): one task
        per room starts these in order, and later records of the room queue behind them."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        queued = self._queued.get(room)
        if queued is None:
            queued = self._queued[room] = deque()
            self._link.keep(self._start_queued(room, queued))
        queued.append((epoch, body, future))
        return future

    async def _start_queued(self, room: str, queued: deque[tuple[int, bytes, asyncio.Future[int]]]) -> None:
        try:
            while queued:
                epoch, body, future = queued[0]
                try:
                    async with asyncio.timeout(self._link.settings.append_timeout):
                        tail = await self._prepare(room, RECORD, epoch)
                except _WRITE_ERRORS as exc:
                    if not future.done():
                        future.set_exception(self._failure(room, RECORD, exc))
                else:
                    self._start(tail, RECORD, epoch, body, record=True, slot_taken=True, future=future)
                queued.popleft()
        finally:
            if self._queued.get(room) is queued:
                del self._queued[room]  # at once after the last start: the room's next record goes after it
            for _, _, future in queued:
                if not future.done():
                    future.set_exception(JournalUnavailable("journal is closed"))

    async def _prepare(self, room: str, kind: str, epoch: int) -> Tail:
        """A slot, the room's tail, its rooms directory entry and the channels, ready for one write (the
        caller bounds the wait); the slot is the write's, or given back if this fails."""
        await self._writes.take()
        try:
            tail = await self._tails.follow(room)
            current = tail.fold.epoch
            if kind != FORGOTTEN and (epoch < current or (kind == CLAIM and epoch == current)):
                raise Fenced(room, epoch, current)
            if kind != FORGOTTEN:
                await self._directory.opened(room)
            await self._link.publishing()
            if not tail.attached:  # lost while the rooms directory was written to
                raise JournalUnavailable(f"journal: lost the stream of room {room}")
        except BaseException:
            self._writes.give_back()
            raise
        return tail

    def _failure(self, room: str, kind: str, exc: BaseException) -> BaseException:
        """What a failed write raises: :class:`Fenced` and :class:`JournalUnavailable` as they are, the
        rest as :class:`JournalUnavailable` (leaving a connection found broken)."""
        if isinstance(exc, (Fenced, JournalUnavailable)):
            return exc
        if isinstance(exc, TimeoutError):
            return JournalUnavailable(
                f"journal: {kind} to room {room} not done within {self._link.settings.append_timeout} s")
        self._link.drop_if_broken(exc)
        return JournalUnavailable(f"journal: {kind} to room {room} failed, RabbitMQ at {self._link.where}: {exc!r}")

    def _start(self, tail: Tail, kind: str, epoch: int, body: bytes, record: bool, slot_taken: bool,
               future: asyncio.Future[Any] | None = None) -> Write:
        """Publish one message to the room's stream at the end of this event-loop turn, with the turn's
        others; its write is done once the broker confirmed it and the tail delivered it back."""
        message_id = f"{self._id_prefix}.{next(self._ids)}"
        write = self._writes.start(tail.room, kind, epoch, message_id, tail.waiting, record, slot_taken=slot_taken,
                                   future=future)
        # waiting at once: a tail with a waiter is never let go (max_followed_rooms)
        properties = Basic.Properties(headers={"k": kind, "e": epoch}, message_id=message_id, delivery_mode=2)
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append((write, (tail.queue, body, properties)))
        return write

    def _flush(self) -> None:
        """Publish the writes started in this event-loop turn, in one socket write when possible."""
        outgoing, self._outgoing = self._outgoing, []
        writer = self._link.writer
        if writer is None or writer.closed:
            lost = JournalUnavailable(f"journal: connection to RabbitMQ at {self._link.where} lost")
            for write, _ in outgoing:
                self._writes.fail(write, lost)
            return
        pending = [(write, message) for write, message in outgoing if not write.done]  # e.g. its tail was lost
        confirmations = writer.publish([message for _, message in pending])
        for (write, _), confirmation in zip(pending, confirmations):
            confirmation.add_done_callback(partial(self._on_confirm, write))

    def _on_confirm(self, write: Write, publish: asyncio.Future[Any]) -> None:
        error = publish.exception() if not publish.cancelled() else asyncio.CancelledError()
        if error is None:
            self._writes.confirmed(write)
        elif isinstance(error, (aiormq.exceptions.DeliveryError, aiormq.exceptions.PublishError)):
            self._writes.fail(write, JournalUnavailable(
                f"journal: the stream of room {write.room} is gone: {error!r}"))
            self._tails.forget(write.room)  # forgotten by another journal
        else:
            self._link.drop_if_broken(error)
            self._writes.fail(write, JournalUnavailable(
                f"journal: {write.kind} to room {write.room} failed, RabbitMQ at {self._link.where}: {error!r}"))
