"""Writing to this journal's holder stream: :class:`HolderWriter`, group commit that follows the load.

Entries (records of every room this journal holds, and its claims' STARTs) go out as one holder message
(:mod:`journal.holder_entries`).  One message is in flight at a time: what is added while it is (not yet
confirmed, or not yet read back by :class:`~journal.holder_tail.OwnTail`) waits and goes out in the next
one as soon as it is done; with nothing in flight, what was added goes out at the end of the event-loop
turn.  So there is no timer: at light load an entry goes out at once, and the busier the journal, the more
entries share a message.  With a ``hold`` (``journal.stream.holder_hold``), a message that follows one
that carried several entries waits that long for more: under load, messages carry more entries; a light
load (a message carrying one entry) is never held.  An entry is done when its message is confirmed **and**
read back.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from functools import partial
from typing import Any

import aiormq
from pamqp.commands import Basic

from .base import JournalUnavailable
from .holder_entries import HOLDER, MAX_ENTRIES, Entry, encode
from .holder_tail import Batch, OwnTail
from .stream_appends import InFlight, Write
from .stream_connection import BROKER_ERRORS, Connection

__all__ = ["HolderWriter"]

#: What getting ready to publish may fail with.
_PREPARE_ERRORS: tuple[type[BaseException], ...] = (JournalUnavailable, *BROKER_ERRORS)
#: Holder messages of one journal in flight at once.
IN_FLIGHT = 1


class HolderWriter:
    """The entries waiting for the next holder message, and the messages in flight."""

    def __init__(self, link: Connection, tail: OwnTail, writes: InFlight, hold: float = 0.0) -> None:
        self._link = link
        self._hold = hold
        self._timer: asyncio.TimerHandle | None = None
        self._tail = tail
        self._writes = writes
        self._entries: list[Entry] = []
        self._futures: list[asyncio.Future[Any]] = []
        self._in_flight = 0
        self._scheduled = False
        self._preparing = False
        self._ids = itertools.count()
        self._id_prefix = uuid.uuid4().hex[:16]
        #: Holder messages published, entries in them, and messages that were held (for tests and benchmarks).
        self.messages = 0
        self.entries = 0
        self.held = 0

    def add(self, kind: int, room: str, epoch: int, body: bytes,
            future: asyncio.Future[Any] | None = None) -> asyncio.Future[Any]:
        """Add an entry to the next holder message; its future has the entry's outcome (a record's
        offset or :class:`~journal.base.Fenced`, a START's ``(position, index)``)."""
        if future is None:
            future = asyncio.get_running_loop().create_future()
        self._entries.append((kind, room, epoch, body))
        self._futures.append(future)
        self._schedule()
        return future

    def close(self, error: BaseException) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._scheduled = False
        futures, self._futures, self._entries = self._futures, [], []
        for future in futures:
            if not future.done():
                future.set_exception(error)

    def _schedule(self, shared: bool = False) -> None:
        """Flush at the end of this loop turn; ``shared`` (the message just done carried several entries):
        after the hold."""
        if not self._scheduled and self._in_flight < IN_FLIGHT and self._entries:
            self._scheduled = True
            if shared and self._hold > 0:
                self.held += 1
                self._timer = asyncio.get_running_loop().call_later(self._hold, self._flush)
            else:
                asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        self._timer = None
        if not self._entries or self._in_flight >= IN_FLIGHT:
            return
        publisher = self._link.writer
        if publisher is None or publisher.closed or not self._tail.attached:
            if not self._preparing:
                self._preparing = True
                self._link.keep(self._prepare())
            return
        entries, self._entries = self._entries[:MAX_ENTRIES], self._entries[MAX_ENTRIES:]
        futures, self._futures = self._futures[:MAX_ENTRIES], self._futures[MAX_ENTRIES:]
        batch = Batch(entries, futures)
        tail = self._tail
        message_id = f"{self._id_prefix}.{next(self._ids)}"
        write = self._writes.start(tail.queue, HOLDER, 0, message_id, tail.waiting, False)
        tail.batches[message_id] = batch
        self._in_flight += 1
        self.messages += 1
        self.entries += len(entries)
        write.future.add_done_callback(partial(self._done, batch, message_id))
        properties = Basic.Properties(headers={"k": HOLDER}, message_id=message_id, delivery_mode=2)
        (confirmation,) = publisher.publish([(tail.queue, encode(entries), properties)])
        confirmation.add_done_callback(partial(self._on_confirm, tail.queue, write))

    async def ready(self) -> None:
        """The connection, the batch channel and the tail, as the next message needs them (a holder stream
        found gone is renewed: :class:`~journal.holder_tail.HolderStreamRenewed`)."""
        await self._link.publishing()
        await self._tail.follow()

    async def _prepare(self) -> None:
        """The connection, the batch channel and the tail, before the next message can go out."""
        try:
            async with asyncio.timeout(self._link.settings.append_timeout):
                await self.ready()
        except _PREPARE_ERRORS as exc:
            error = exc if isinstance(exc, JournalUnavailable) else JournalUnavailable(
                f"journal: the holder stream cannot be written, RabbitMQ at {self._link.where}: {exc!r}")
            self.close(error)
        finally:
            self._preparing = False
            self._schedule()

    def _on_confirm(self, queue: str, write: Write, publish: asyncio.Future[Any]) -> None:
        error = publish.exception() if not publish.cancelled() else asyncio.CancelledError()
        if error is None:
            self._writes.confirmed(write)
            return
        if isinstance(error, aiormq.exceptions.PublishError):  # returned: the broker has no such stream
            self._tail.unroutable(queue)
        elif not isinstance(error, aiormq.exceptions.DeliveryError):
            self._link.drop_if_broken(error)
        self._writes.fail(write, JournalUnavailable(
            f"journal: a holder message failed, RabbitMQ at {self._link.where}: {error!r}"))

    def _done(self, batch: Batch, message_id: str, done: asyncio.Future[Any]) -> None:
        self._tail.batches.pop(message_id, None)
        self._in_flight -= 1
        error = done.exception() if not done.cancelled() else JournalUnavailable("journal is closed")
        for future, outcome in itertools.zip_longest(batch.futures, batch.outcomes):
            if future is None or future.done():
                continue
            if error is not None:
                future.set_exception(error)
            elif outcome is None:
                future.set_exception(JournalUnavailable("journal: a holder message came back incomplete"))
            elif isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        self._schedule(shared=len(batch.entries) > 1)
