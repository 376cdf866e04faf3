"""The holder journal's consumer of its own holder stream: :class:`OwnTail`.

A publisher confirm carries no offset, and a claimer's FENCE may land in the holder stream ahead of a
message in flight, so the writer follows its own stream with one consumer (started at its first message:
the stream is new with each journal instance).  It folds every entry (:class:`~journal.holder_fold.HolderFold`),
gives each entry of this journal's own messages its outcome (a record's offset, or :class:`Fenced`; a
START's place), and lets a room go as soon as a FENCE of a newer epoch closes its window here.

Its stream may be deleted under it (a sweeper took this journal for dead: :mod:`journal.holder_sweeper`).
The tail leaves its consumer when the broker cancels it, and looks its stream up (never declares it) when
it attaches again; a stream found gone is :meth:`OwnTail.renew`-ed by the journal: a new holder stream,
followed from its first message (:meth:`journal.holder.HolderJournal._renew`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel
from aiormq.abc import AbstractChannel as RawChannel
from aiormq.abc import DeliveredMessage

from .base import Fenced, JournalUnavailable
from .holder_entries import END, FENCE, HOLDER, RECORD, START, Entry, decode, offset_of
from .holder_fold import HolderFold
from .stream_appends import InFlight, Seen, Write
from .stream_connection import BROKER_ERRORS, Connection
from .stream_fold import message_of

__all__ = ["Holding", "Batch", "OwnTail", "HolderStreamRenewed"]

#: What attaching again after the broker cancelled the consumer may fail with (the next write tries again).
_ATTACH_ERRORS: tuple[type[BaseException], ...] = (JournalUnavailable, *BROKER_ERRORS)


class HolderStreamRenewed(JournalUnavailable):
    """This journal's holder stream was found deleted: what was written or about to be written to it is
    not, and the journal writes to a new holder stream from now on (every room held must be held again)."""


@dataclass(slots=True)
class Holding:
    """A room this journal holds: its claim's journal offset in the room's stream, its epoch, and the
    offset of its last record that counts (0: none)."""

    claim: int
    epoch: int
    last: int = 0


@dataclass(slots=True, eq=False)
class Batch:
    """One holder message of this journal: its entries, a future each, and their outcomes once read back."""

    entries: list[Entry]
    futures: list[asyncio.Future[Any]]
    outcomes: list[Any] = field(default_factory=list)


class OwnTail:
    """This journal's consumer of its own holder stream."""

    def __init__(self, link: Connection, queue: str, writes: InFlight, holdings: dict[str, Holding]) -> None:
        self._link = link
        self.queue = queue
        self._writes = writes
        self._holdings = holdings
        self.fold = HolderFold()
        #: Rooms this journal is forgetting: let go (new records wait for the forget), their records still in
        #: flight answered by this holding until the forget's END is read back.
        self.leaving: dict[str, Holding] = {}
        #: Where to (re)attach: the stream offset after the last message handled.
        self.position: int | str = "first"
        #: This journal's messages not done yet, by message id (for :class:`InFlight`), and their batches.
        self.waiting: dict[str, Write] = {}
        self.batches: dict[str, Batch] = {}
        self._channel: AbstractChannel | None = None
        self._raw: RawChannel | None = None
        self._unacked = 0
        self._lock = asyncio.Lock()
        #: Told the journal offset of each message handled, after it (:class:`~journal.holder_due.SnapshotsDue`).
        self.passed: Callable[[int], None] | None = None
        #: Declared once, at the first attach; later attaches only look it up: a stream the sweeper deleted
        #: (:mod:`journal.holder_sweeper`) is never made again, empty, under this journal's feet.
        self._declared = False
        #: Called when this tail finds its stream gone, before it fails (the journal moves to a new stream,
        #: :meth:`renew`), and before it declares its stream (the journal's sign of life).
        self.gone: Callable[[], None] | None = None
        self.announce: Callable[[], Awaitable[None]] | None = None

    @property
    def attached(self) -> bool:
        return self._channel is not None and not self._channel.is_closed

    async def follow(self) -> None:
        """Attached (the holder stream declared), within ``attach_timeout``."""
        if self.attached:
            return
        async with self._lock:
            if not self.attached:
                await self._link.attaching(f"follow holder stream {self.queue}", self._attach)

    def renew(self, queue: str) -> None:
        """Follow ``queue``, a new holder stream, from its first message, declared at the next attach (the
        journal failed every write in flight to the old one)."""
        self.queue, self.fold, self.position, self._declared = queue, HolderFold(), "first", False
        self.leaving.clear()
        self.detach()

    def detach(self) -> None:
        """Leave the consumer (the next write attaches again, and so looks the stream up)."""
        channel, self._channel, self._raw = self._channel, None, None
        if channel is not None and not channel.is_closed:
            self._link.keep(asyncio.shield(channel.close()))

    def lost(self, exc: BaseException | None) -> None:
        """The connection was lost: detached (it resumes where it was), and the messages in flight fail."""
        self._channel = self._raw = None
        self._writes.fail_all(self.waiting, JournalUnavailable(
            f"journal: connection to RabbitMQ at {self._link.where} lost: {exc!r}"))

    async def _attach(self) -> None:
        link = self._link
        queue = self.queue
        # Declared or looked up before the channel, over the look-ups' connection (journal.stream_lookups): a
        # refusal closes the look-ups' channel, never one of this connection.
        if not self._declared:
            if self.announce is not None:  # a sign of life before the stream exists: no sweeper takes it
                await self.announce()
                self._check_current(queue)
            await link.declare(queue)
            self._check_current(queue)
            self._declared = True
        elif not await link.lookups.exists(queue):
            self._check_current(queue)  # renewed meanwhile: attached again (to the new stream)
            link.log.error("journal_holder_stream_gone", holder=queue)
            if self.gone is not None:
                self.gone()  # a new holder stream from now on
            raise HolderStreamRenewed(f"journal: this journal's holder stream {queue} was deleted (swept as dead: "
                                      f"no sign of life for holder_dead_after)")
        conn = await link.connection()
        channel = await conn.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=link.settings.prefetch)
            self._check_current(queue)
            raw = await channel.get_underlay_channel()
            self._channel, self._raw, self._unacked = channel, raw, 0
            channel.close_callbacks.add(self._on_closed)
            raw.on_consumer_cancel_callbacks.add(partial(self._on_cancelled, raw))
            await link.consume_started(raw.basic_consume(queue, partial(self._on_message, raw),
                                                         arguments={"x-stream-offset": self.position}))
        except BaseException:
            self._channel = self._raw = None
            if not channel.is_closed:
                await asyncio.shield(channel.close())
            raise

    def _check_current(self, queue: str) -> None:
        """An attach to ``queue`` goes on only while it is this journal's holder stream: one renewed meanwhile
        is never declared again (:meth:`Connection.attaching` attaches again, to the new one)."""
        if queue != self.queue:
            raise ConnectionError(f"holder stream {queue} renewed while attaching")

    def _on_closed(self, channel: Any, exc: BaseException | None = None) -> None:
        if self._channel is channel:
            self._channel = self._raw = None
            self._writes.fail_all(self.waiting, JournalUnavailable(f"journal: lost the holder stream: {exc!r}"))

    def _on_cancelled(self, raw: RawChannel, frame: Any) -> None:
        """The broker cancelled the consumer (its stream was deleted, most likely): leave it, and attach again
        at once, which looks the stream up (and renews it if it is gone).  The messages in flight wait: read
        back after the attach if the stream is there, failed by the renewal if it is not."""
        if self._raw is not raw:
            return
        self._link.log.warning("journal_holder_consumer_cancelled", holder=self.queue)
        self.detach()
        self._link.keep(self._attach_again())

    async def _attach_again(self) -> None:
        try:
            await self.follow()
        except _ATTACH_ERRORS as exc:
            self._link.log.debug("journal_holder_attach_failed", holder=self.queue, error=repr(exc))

    def unroutable(self, queue: str) -> None:
        """A message to holder stream ``queue`` came back unroutable: the broker has no such stream.  If it is
        this tail's, the journal goes on in a new one."""
        if queue != self.queue:
            return  # renewed already
        self._link.log.error("journal_holder_stream_gone", holder=queue)
        self.detach()
        if self.gone is not None:
            self.gone()

    async def _on_message(self, raw: RawChannel, delivery: DeliveredMessage) -> None:
        if self._raw is not raw:
            return  # a delivery to a consumer this tail has left
        properties = delivery.header.properties
        message = message_of(properties.headers or {}, delivery.body)
        self.position = message.offset  # = the next stream offset
        message_id = properties.message_id or ""
        if message.kind == HOLDER:
            self._fold(message.offset, decode(message.body), self.batches.get(message_id))
        write = self.waiting.get(message_id)
        if write is not None:
            self._writes.seen(write, Seen(message.offset, True, 0, 0))
        if self.passed is not None:
            self.passed(message.offset)
        self._unacked += 1
        if self._unacked >= self._link.settings.ack_every:
            self._unacked = 0
            try:
                await raw.basic_ack(delivery.delivery_tag or 0, multiple=True, wait=False)
            except BROKER_ERRORS:
                self._link.log.debug("journal_ack_failed", stream=self.queue)

    def _fold(self, position: int, entries: list[Entry], batch: Batch | None) -> None:
        fold, holdings = self.fold, self._holdings
        for index, (kind, room, epoch, _) in enumerate(entries):
            counts = fold.see(kind, room, epoch)
            holding = holdings.get(room)
            outcome: Any = None
            if kind == RECORD:
                if counts and holding is None:
                    holding = self.leaving.get(room)
                if counts and holding is not None and holding.epoch == epoch:
                    outcome = holding.last = offset_of(holding.claim, position, index)
                elif counts:
                    outcome = JournalUnavailable(f"journal: room {room} was let go while its record was in flight")
                else:
                    outcome = Fenced(room, epoch, fold.epoch(room))
            elif kind == START:
                # A window opens only if the START opened the room here: a FENCE of its epoch or above may be
                # here already (a claimer fences before its claim reaches the claims log), and then a window
                # starting at this START would count records this journal is told are fenced.
                outcome = (position, index) if fold.opened(room, epoch) else Fenced(room, epoch, fold.epoch(room))
            elif kind == END:
                outcome = counts  # False: a claimer's FENCE had ended the window already
            elif kind == FENCE and counts and holding is not None:
                del holdings[room]  # another journal claimed the room: its next append goes to the claims log
                self._link.log.info("journal_room_fenced", room=room, epoch=epoch)
            if batch is not None:
                batch.outcomes.append(outcome)
