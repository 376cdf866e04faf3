"""The room journal on RabbitMQ stream queues (aio-pika): :class:`StreamJournal`.

Layout (chosen by measurement, docs/design-notes.md "Room journal on RabbitMQ streams: layout"):

- ``<prefix>room.<room>``: one stream per room holding its records and its claims, in append order;
- ``<prefix>snap.<room>``: the room's snapshots, a small stream whose retention keeps only the last
  few, so the newest is found by reading a bounded amount, never the room's records;
- ``<prefix>rooms``: the directory, one small entry per claim and per forget, for :meth:`rooms`.

Offsets: a record's offset is its stream offset (``x-stream-offset``) plus one, so the first record of
a room is 1 and ``replay(after=0)`` means "from the beginning".  A publisher confirm carries no offset,
so a journal that writes to a room follows the room's stream with one consumer (its *tail*): an append
or claim returns once the broker has confirmed the message **and** the tail has delivered it, which
gives its offset and shows exactly what precedes it in the stream.  Writes are started without a
coroutine each (:meth:`StreamJournal.submit`, the controller's path; :mod:`journal.stream_appends`) and
the writes of one event-loop turn go out together in one socket write (:mod:`journal.stream_publish`);
a room's records land in the order they were submitted.

Fencing: the broker cannot refuse a message, so the rule is applied by every reader in stream order.
A claim of epoch ``e`` counts iff ``e`` is above the highest epoch counted before it, a record iff ``e`` is
at least that (a record of a higher epoch raises it, as a claim would); anything else is fenced off
and skipped by :meth:`~StreamJournal.replay`.  Because an append waits until its tail has seen its own record, it
returns an offset only if the record counts and raises :class:`~journal.base.Fenced` if it does not:
the append's outcome is the one every later replay will see.  A fenced record still takes room in
the stream.

Forgetting a room leaves a "forgotten" entry in its stream (a new history starts after it, offsets
and epoch going on) and deletes its snapshots; the stream itself stays, its old records going by
retention.  A journal follows at most ``max_followed_rooms`` rooms (least recently used let go).

Reading (replay, the newest snapshot, rooms) publishes an end marker first, then reads with a fresh
consumer (manual acks, basic.qos) from the wanted offset up to that marker.  A consumer is never
restored by aio-pika: connections are plain ones; after a loss the next operation reconnects and a
tail resumes from the offset after the last message it handled.  A stream refuses consumers for ~10 s
after a broker start (each refusal closes the connection); attaching is retried within
``attach_timeout``.  Every failure to reach the broker raises :class:`~journal.base.JournalUnavailable`.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue
from aiormq.abc import AbstractChannel as RawChannel
from aiormq.abc import DeliveredMessage
from pamqp.commands import Basic

from .base import Fenced, JournalRecord, JournalUnavailable, Snapshot
from .logs import EventLog
from .settings import StreamJournalSettings
from .stream_appends import InFlight, Seen, Write
from .stream_publish import BatchPublisher, Outgoing

__all__ = ["StreamJournal"]


#: Message kinds (header ``k``); the epoch is header ``e``, a snapshot's offset header ``o``.
_RECORD, _CLAIM, _MARKER, _SNAPSHOT = "record", "claim", "marker", "snapshot"
_OPENED, _FORGOTTEN = "opened", "forgotten"

_BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aio_pika.exceptions.AMQPError,
    ConnectionError,
    OSError,
    RuntimeError,
    asyncio.TimeoutError,
)

#: What starting a write may fail with (:meth:`StreamJournal._failure` says what the caller is told).
_WRITE_ERRORS: tuple[type[BaseException], ...] = (Fenced, JournalUnavailable, *_BROKER_ERRORS)

_T = TypeVar("_T")


@dataclass(slots=True, frozen=True)
class _Message:
    offset: int  # journal offset: stream offset + 1
    kind: str
    epoch: int
    headers: dict[str, Any]
    body: bytes


_Seen = Seen


def _message_of(headers: dict[str, Any], body: bytes) -> _Message:
    epoch = headers.get("e", 0)
    offset = headers.get("x-stream-offset")
    if not isinstance(offset, int):
        raise JournalUnavailable(f"journal: a delivery without its stream offset (headers {headers!r})")
    return _Message(
        offset=offset + 1,
        kind=str(headers.get("k", "")),
        epoch=epoch if isinstance(epoch, int) else 0,
        headers=headers,
        body=body,
    )


def _message(delivery: AbstractIncomingMessage) -> _Message:
    return _message_of(dict(delivery.headers), delivery.body)


def _usable(conn: AbstractConnection) -> bool:
    transport = conn.transport
    return not conn.is_closed and transport is not None and not transport.connection.is_closed


class _Fold:
    """The fencing rule applied in stream order, from a known point (``epoch`` in force, ``last`` record).

    The message at offset ``last`` itself (where a read starts when it resumes after a known record)
    only confirms the epoch in force there."""

    def __init__(self, epoch: int = 0, last: int = 0) -> None:
        self.epoch = epoch
        self.last = last

    def see(self, message: _Message) -> _Seen:
        before = self.last
        if message.kind == _FORGOTTEN and message.offset > self.last:
            self.last = 0  # a new history starts; the epoch goes on
            return _Seen(message.offset, False, self.epoch, before)
        if message.offset <= self.last:
            if message.kind in (_RECORD, _CLAIM):
                self.epoch = max(self.epoch, message.epoch)
            return _Seen(message.offset, False, self.epoch, before)
        # a claim needs an epoch of its own (two holders never share one); a record the epoch in force
        counts = (message.kind == _CLAIM and message.epoch > self.epoch) or (
            message.kind == _RECORD and message.epoch >= self.epoch)
        if counts:
            self.epoch = message.epoch
            if message.kind == _RECORD:
                self.last = message.offset
        return _Seen(message.offset, counts, self.epoch, before)


@dataclass(slots=True, eq=False)
class _Tail:
    """This journal's consumer following one room's stream."""

    room: str
    queue: str
    fold: _Fold
    #: Where to (re)attach: the stream offset after the last message handled.
    position: int | str
    #: This journal's writes to the room not yet done, by message id.
    waiting: dict[str, Write] = field(default_factory=dict)
    channel: AbstractChannel | None = None
    #: The consumer's channel as aiormq has it (deliveries and acks without aio-pika's wrapping).
    raw: RawChannel | None = None
    unacked: int = 0

    @property
    def attached(self) -> bool:
        return self.channel is not None and not self.channel.is_closed


class StreamJournal:
    """A :class:`~journal.base.Journal` on RabbitMQ stream queues (one stream per room)."""

    def __init__(self, url: str, settings: StreamJournalSettings | None = None, *, name: str = "journal") -> None:
        if not url:
            raise ValueError("StreamJournal needs a broker URL")
        self.url = url
        self.settings = settings or StreamJournalSettings()
        self.name = name
        parts = urlsplit(url)
        self._where = f"{parts.hostname}:{parts.port or 5672}"
        self._log = EventLog(journal=name, broker=self._where)
        self._conn: AbstractConnection | None = None
        self._publisher: AbstractChannel | None = None
        #: The channel the writes to room streams go out on, in batches (nothing else publishes there).
        self._writer: BatchPublisher | None = None
        #: Writes started in this event-loop turn, published together at its end.
        self._outgoing: list[tuple[Write, Outgoing]] = []
        #: Records submitted that could not start at once, by room, in order (see :meth:`_enqueue`).
        self._queued: dict[str, deque[tuple[int, bytes, asyncio.Future[int]]]] = {}
        self._declared: set[str] = set()
        self._tails: dict[str, _Tail] = {}
        self._connect_lock = asyncio.Lock()
        self._tail_locks: dict[str, asyncio.Lock] = {}
        self._writes = InFlight(self.settings.max_in_flight, self.settings.append_timeout)
        #: Message ids of this journal's writes: a prefix of its own and a count.
        self._ids = itertools.count()
        self._id_prefix = uuid.uuid4().hex[:16]
        self._closing: set[asyncio.Future[Any]] = set()
        #: Rooms this journal has put in the rooms directory since it last saw them forgotten.
        self._listed: set[str] = set()
        self._closed = False
        #: Connections made after the first (each loss is followed by one on the next operation).
        self.reconnects = 0
        self._connections = 0

    # -- names ---------------------------------------------------------------------------------------

    def _room_queue(self, room: str) -> str:
        return f"{self.settings.prefix}room.{room}"

    def _snap_queue(self, room: str) -> str:
        return f"{self.settings.prefix}snap.{room}"

    @property
    def _rooms_queue(self) -> str:
        return f"{self.settings.prefix}rooms"

    def _arguments(self, queue: str) -> dict[str, Any]:
        s = self.settings
        if queue == self._rooms_queue:
            size, segment = s.rooms_max_bytes, s.rooms_segment_bytes
        elif queue.startswith(f"{s.prefix}snap."):
            size, segment = s.snapshot_max_bytes, s.snapshot_segment_bytes
        else:
            size, segment = s.room_max_bytes, s.room_segment_bytes
        return {"x-queue-type": "stream", "x-max-length-bytes": size, "x-stream-max-segment-size-bytes": segment}

    # -- lifecycle -----------------------------------------------------------------------------------

    async def open(self) -> None:
        await self._connection()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        gone = JournalUnavailable("journal is closed")
        self._writes.close(gone)
        self._tails.clear()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed:
            self._closing.add(asyncio.ensure_future(conn.close()))
        for result in await asyncio.gather(*self._closing, return_exceptions=True):
            if isinstance(result, BaseException):
                self._log.debug("journal_close_failed", error=repr(result))
        self._log.info("journal_closed", reconnects=self.reconnects)

    async def _connection(self) -> AbstractConnection:
        if self._closed:
            raise JournalUnavailable("journal is closed")
        conn = self._conn
        if conn is not None and _usable(conn):
            return conn
        async with self._connect_lock:
            if self._conn is not None and _usable(self._conn):
                return self._conn
            if self._conn is not None:
                self._drop(self._conn, None)
            s = self.settings
            try:
                conn = await asyncio.wait_for(
                    aio_pika.connect(self.url, heartbeat=s.heartbeat, timeout=s.connect_timeout,
                                     client_properties={"connection_name": self.name}),
                    s.connect_timeout)
                publisher = await conn.channel(publisher_confirms=True, on_return_raises=True)
                writer = await self._open_writer(conn)
            except _BROKER_ERRORS as exc:
                self._log.warning("journal_connect_failed", error=repr(exc))
                raise JournalUnavailable(f"journal: cannot connect to RabbitMQ at {self._where}: {exc!r}") from exc
            if self._closed:
                await conn.close()
                raise JournalUnavailable("journal is closed")
            conn.close_callbacks.add(self._on_connection_lost)
            self.reconnects += self._connections > 0
            self._connections += 1
            self._log.info("journal_connected", reconnects=self.reconnects)
            self._conn, self._publisher, self._declared = conn, publisher, set()
            self._writer = writer
            return conn

    def _on_connection_lost(self, conn: Any, exc: BaseException | None = None) -> None:
        if conn is self._conn:
            self._drop(self._conn, exc)

    def _drop(self, conn: AbstractConnection, exc: BaseException | None) -> None:
        """Leave a connection that failed (aio-pika may not mark it closed at once); the next
        operation connects again and every tail resumes from where it was."""
        if conn is not self._conn:
            return
        self._conn = self._publisher = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._log.warning("journal_connection_lost", error=repr(exc), rooms_followed=len(self._tails))
        if not conn.is_closed:
            closing = asyncio.ensure_future(conn.close())
            self._closing.add(closing)
            closing.add_done_callback(self._closing.discard)
        lost = JournalUnavailable(f"journal: connection to RabbitMQ at {self._where} lost: {exc!r}")
        for tail in self._tails.values():
            tail.channel = tail.raw = None
            self._writes.fail_all(tail.waiting, lost)

    async def _publishing(self) -> AbstractChannel:
        conn = await self._connection()
        try:
            if self._publisher is None or self._publisher.is_closed:
                self._publisher = await conn.channel(publisher_confirms=True, on_return_raises=True)
            if self._writer is None or self._writer.closed:
                if self._writer is not None:
                    self._writer.close()
                self._writer = await self._open_writer(conn)
        except _BROKER_ERRORS as exc:
            raise JournalUnavailable(f"journal: RabbitMQ at {self._where} refused a channel: {exc!r}") from exc
        return self._publisher

    @staticmethod
    async def _open_writer(conn: AbstractConnection) -> BatchPublisher:
        channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
        return BatchPublisher(cast(aiormq.Channel, await channel.get_underlay_channel()))

    async def _declare(self, channel: AbstractChannel, queue: str) -> AbstractQueue:
        declared = await channel.declare_queue(queue, durable=True, arguments=self._arguments(queue))
        self._declared.add(queue)
        return declared

    async def _publish(self, queue: str, body: bytes, headers: dict[str, Any], message_id: str | None = None) -> None:
        """Publish with confirm to an existing stream (``mandatory``: a missing one raises)."""
        channel = await self._publishing()
        await channel.default_exchange.publish(
            aio_pika.Message(body, headers=headers, message_id=message_id,
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue, mandatory=True)

    async def _attaching(self, what: str, attempt: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``attempt`` until it succeeds, the broker cannot be reached, or ``attach_timeout`` passes:
        a stream that is still recovering after a broker start refuses consumers (and drops the connection)."""
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.attach_timeout
        while True:
            conn = self._conn
            try:
                return await attempt()
            except _BROKER_ERRORS as exc:
                if conn is not None and not _usable(conn):
                    self._drop(conn, exc)
                if isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed) and "inequivalent arg" in str(exc):
                    raise JournalUnavailable(
                        f"journal: cannot {what}: the stream exists with other arguments (every journal on a broker "
                        f"must use the same stream sizes): {exc}") from exc
                if loop.time() + s.attach_retry_interval > deadline:
                    raise JournalUnavailable(
                        f"journal: cannot {what} on RabbitMQ at {self._where} within {s.attach_timeout} s: {exc!r}"
                    ) from exc
                self._log.debug("journal_attach_retry", what=what, error=repr(exc))
            await asyncio.sleep(s.attach_retry_interval)

    # -- reading a stream to an end marker -----------------------------------------------------------

    async def _read(self, queue: str, start: int | str) -> list[_Message] | None:
        """The messages of ``queue`` from stream offset ``start`` up to an end marker published now;
        ``None`` if the stream does not exist."""
        s = self.settings
        marker = uuid.uuid4().hex
        published = False
        messages: list[_Message] = []

        async def attempt() -> list[_Message] | None:
            nonlocal published
            conn = await self._connection()
            channel = await conn.channel(publisher_confirms=False)
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            try:
                await channel.set_qos(prefetch_count=s.prefetch)
                try:
                    stream = await channel.declare_queue(queue, passive=True)
                except aiormq.exceptions.ChannelNotFoundEntity as exc:
                    if "home node" in str(exc):
                        raise  # the broker is still starting its queues: "home node … of durable queue … is down"
                    return None
                if not published:
                    await self._publish(queue, b"", {"k": _MARKER}, message_id=marker)
                    published = True
                messages.clear()
                count = 0

                def on_close(sender: Any, exc: BaseException | None = None) -> None:
                    if not done.done():  # the read starts again (or fails) rather than wait for read_timeout
                        done.set_exception(RuntimeError(f"read channel closed: {exc!r}"))

                channel.close_callbacks.add(on_close)

                async def on_message(delivery: AbstractIncomingMessage) -> None:
                    nonlocal count
                    count += 1
                    end = delivery.message_id == marker
                    if end:
                        if not done.done():
                            done.set_result(None)
                    elif not done.done():
                        messages.append(_message(delivery))
                    if end or count % s.ack_every == 0:
                        await delivery.ack(multiple=True)

                await stream.consume(on_message, arguments={"x-stream-offset": start})
                await done
                return list(messages)
            finally:
                if not done.done():
                    done.cancel()
                if not channel.is_closed:
                    try:
                        await channel.close()
                    except _BROKER_ERRORS:
                        self._log.debug("journal_close_failed", error="read channel")

        try:
            async with asyncio.timeout(s.read_timeout):
                return await self._attaching(f"read {queue}", attempt)
        except TimeoutError as exc:
            raise JournalUnavailable(f"journal: reading {queue} took longer than {s.read_timeout} s") from exc

    # -- following a room (the tail) -----------------------------------------------------------------

    async def _tail(self, room: str) -> _Tail:
        tail = self._tails.pop(room, None)
        if tail is not None:
            self._tails[room] = tail  # most recently used last
            if tail.attached:
                return tail
        async with self._tail_locks.setdefault(room, asyncio.Lock()):
            tail = self._tails.get(room)
            if tail is None:
                newest = await self.snapshot(room)
                # start at the newest snapshot's record: its epoch and everything after it are all that matter
                fold = _Fold(newest.epoch, newest.offset) if newest else _Fold()
                start: int | str = newest.offset - 1 if newest else "first"
                tail = _Tail(room, self._room_queue(room), fold, start)
                self._tails[room] = tail
                self._evict_tails()
            if not tail.attached:
                await self._attaching(f"follow room {room}", partial(self._attach, tail))
            return tail

    async def _attach(self, tail: _Tail) -> None:
        conn = await self._connection()
        channel = await conn.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=self.settings.prefetch)
            await self._declare(channel, tail.queue)
            raw = await channel.get_underlay_channel()
            tail.channel, tail.raw, tail.unacked = channel, raw, 0
            channel.close_callbacks.add(partial(self._on_tail_closed, tail))
            # aiormq's consumer directly: aio-pika would add a task and an IncomingMessage per delivery
            await raw.basic_consume(tail.queue, partial(self._on_tail_message, tail, raw),
                                    arguments={"x-stream-offset": tail.position})
        except BaseException:
            tail.channel = tail.raw = None
            if not channel.is_closed:
                await asyncio.shield(channel.close())
            raise

    def _on_tail_closed(self, tail: _Tail, channel: Any, exc: BaseException | None = None) -> None:
        if tail.channel is channel:
            tail.channel = tail.raw = None
            self._writes.fail_all(tail.waiting, JournalUnavailable(
                f"journal: lost the stream of room {tail.room}: {exc!r}"))

    async def _on_tail_message(self, tail: _Tail, raw: RawChannel, delivery: DeliveredMessage) -> None:
        if tail.raw is not raw:
            return  # a delivery to a consumer this tail has left
        properties = delivery.header.properties
        message = _message_of(properties.headers or {}, delivery.body)
        seen = tail.fold.see(message)
        tail.position = message.offset  # = the next stream offset
        if message.kind == _FORGOTTEN:
            self._listed.discard(tail.room)
        write = tail.waiting.get(properties.message_id or "")
        if write is not None:
            self._writes.seen(write, seen)
        tail.unacked += 1
        if tail.unacked >= self.settings.ack_every:
            tail.unacked = 0
            try:
                await raw.basic_ack(delivery.delivery_tag or 0, multiple=True, wait=False)
            except _BROKER_ERRORS:
                self._log.debug("journal_ack_failed", room=tail.room)

    # -- writing to a room's stream -------------------------------------------------------------------

    def _start(self, tail: _Tail, kind: str, epoch: int, body: bytes, record: bool, slot_taken: bool,
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
        writer = self._writer
        if writer is None or writer.closed:
            lost = JournalUnavailable(f"journal: connection to RabbitMQ at {self._where} lost")
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
            self._forget_tail(write.room)  # forgotten by another journal
        else:
            if self._conn is not None and not _usable(self._conn):
                self._drop(self._conn, error)
            self._writes.fail(write, JournalUnavailable(
                f"journal: {write.kind} to room {write.room} failed, RabbitMQ at {self._where}: {error!r}"))

    def submit(self, room: str, epoch: int, body: bytes) -> asyncio.Future[int]:
        """:meth:`append` without a coroutine of its own (the controller's path): the future has the
        record's offset, or :class:`Fenced`.  A room's records land in the order they were submitted."""
        tail = self._tails.get(room)
        writer = self._writer
        if (room in self._queued or tail is None or not tail.attached or room not in self._listed
                or self._writes.full or writer is None or writer.closed):
            return self._enqueue(room, epoch, body)
        current = tail.fold.epoch
        if epoch < current:
            refused: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            refused.set_exception(Fenced(room, epoch, current))
            return refused
        self._tails[room] = self._tails.pop(room)  # most recently used last
        future: asyncio.Future[int] = self._start(tail, _RECORD, epoch, body, record=True, slot_taken=False).future
        return future

    def _enqueue(self, room: str, epoch: int, body: bytes) -> asyncio.Future[int]:
        """A record that cannot start at once (its room's tail not attached yet, no slot free): one task
        per room starts these in order, and later records of the room queue behind them."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        queued = self._queued.get(room)
        if queued is None:
            queued = self._queued[room] = deque()
            task = asyncio.ensure_future(self._start_queued(room, queued))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        queued.append((epoch, body, future))
        return future

    async def _start_queued(self, room: str, queued: deque[tuple[int, bytes, asyncio.Future[int]]]) -> None:
        try:
            while queued:
                epoch, body, future = queued[0]
                try:
                    async with asyncio.timeout(self.settings.append_timeout):
                        tail = await self._prepare(room, _RECORD, epoch)
                except _WRITE_ERRORS as exc:
                    if not future.done():
                        future.set_exception(self._failure(room, _RECORD, exc))
                else:
                    self._start(tail, _RECORD, epoch, body, record=True, slot_taken=True, future=future)
                queued.popleft()
        finally:
            if self._queued.get(room) is queued:
                del self._queued[room]  # at once after the last start: the room's next record goes after it
            for _, _, future in queued:
                if not future.done():
                    future.set_exception(JournalUnavailable("journal is closed"))

    async def _prepare(self, room: str, kind: str, epoch: int) -> _Tail:
        """A slot, the room's tail, its rooms directory entry and the channels, ready for one write (the
        caller bounds the wait); the slot is the write's, or given back if this fails."""
        await self._writes.take()
        try:
            tail = await self._tail(room)
            current = tail.fold.epoch
            if kind != _FORGOTTEN and (epoch < current or (kind == _CLAIM and epoch == current)):
                raise Fenced(room, epoch, current)
            if kind != _FORGOTTEN and room not in self._listed:
                await self._note(room, _OPENED)
                self._listed.add(room)
            await self._publishing()
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
            return JournalUnavailable(f"journal: {kind} to room {room} not done within {self.settings.append_timeout} s")
        if self._conn is not None and not _usable(self._conn):
            self._drop(self._conn, exc)
        return JournalUnavailable(f"journal: {kind} to room {room} failed, RabbitMQ at {self._where}: {exc!r}")

    async def _write(self, room: str, kind: str, epoch: int, body: bytes) -> _Seen:
        """Append one message to the room's stream; what the fencing rule made of it once its tail saw it."""
        try:
            async with asyncio.timeout(self.settings.append_timeout):
                tail = await self._prepare(room, kind, epoch)
                seen: _Seen = await self._start(tail, kind, epoch, body, record=False, slot_taken=True).future
                return seen
        except _BROKER_ERRORS as exc:  # asyncio.TimeoutError (= TimeoutError) among them
            raise self._failure(room, kind, exc) from exc

    def _evict_tails(self) -> None:
        """Stop following the least recently used rooms beyond ``max_followed_rooms`` (a controller that
        gave a room away stops writing to it; following it again later reads from its newest snapshot)."""
        for room in list(self._tails):
            if len(self._tails) <= self.settings.max_followed_rooms:
                return
            if not self._tails[room].waiting:
                self._forget_tail(room)
                self._tail_locks.pop(room, None)

    def _forget_tail(self, room: str) -> None:
        tail = self._tails.pop(room, None)
        if tail is not None:
            self._writes.fail_all(tail.waiting, JournalUnavailable(f"journal: room {room} was forgotten"))
            channel, tail.channel, tail.raw = tail.channel, None, None
            if channel is not None and not channel.is_closed:
                closing = asyncio.ensure_future(channel.close())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)

    # -- the Journal interface -----------------------------------------------------------------------

    async def claim(self, room: str, epoch: int) -> int:
        seen = await self._write(room, _CLAIM, epoch, b"")
        if not seen.counts:
            raise Fenced(room, epoch, seen.epoch)
        return seen.last_before

    async def append(self, room: str, epoch: int, body: bytes) -> int:
        seen = await self._write(room, _RECORD, epoch, body)
        if not seen.counts:
            raise Fenced(room, epoch, seen.epoch)
        return seen.offset

    async def replay(self, room: str, after: int = 0) -> list[JournalRecord]:
        # Start at the record ``after`` itself (when there is one) to learn the epoch in force there.
        messages = await self._read(self._room_queue(room), after - 1 if after > 0 else "first")
        fold = _Fold(0, after)
        records: list[JournalRecord] = []
        for message in messages or ():
            seen = fold.see(message)
            if message.kind == _FORGOTTEN and message.offset > after:
                records.clear()
            if seen.counts and message.kind == _RECORD:
                records.append(JournalRecord(offset=message.offset, epoch=message.epoch, body=message.body))
        if messages:
            self._follow_from(room, fold, messages[-1].offset)
        return records

    def _follow_from(self, room: str, fold: _Fold, position: int) -> None:
        """A replay read the room up to ``position`` (the stream offset after its last message) and
        folded it: a room this journal does not follow yet is followed from there (its tail attaches
        on the first write), so a takeover's claim after its replay reads nothing twice."""
        if room in self._tails:
            return
        self._tails[room] = _Tail(room, self._room_queue(room), _Fold(fold.epoch, fold.last), position)
        self._evict_tails()

    async def save_snapshot(self, room: str, snapshot: Snapshot) -> None:
        queue = self._snap_queue(room)
        try:
            async with asyncio.timeout(self.settings.append_timeout):
                tail = await self._tail(room)  # the room's current epoch
                if snapshot.epoch < tail.fold.epoch:
                    raise Fenced(room, snapshot.epoch, tail.fold.epoch)
                if queue not in self._declared:
                    await self._declare(await self._publishing(), queue)
                await self._publish(queue, snapshot.body, {"k": _SNAPSHOT, "e": snapshot.epoch, "o": snapshot.offset})
        except TimeoutError as exc:
            raise JournalUnavailable(f"journal: snapshot of room {room} not saved within "
                                     f"{self.settings.append_timeout} s") from exc
        except _BROKER_ERRORS as exc:
            raise JournalUnavailable(f"journal: snapshot of room {room} failed, RabbitMQ at {self._where}: "
                                     f"{exc!r}") from exc

    async def snapshot(self, room: str) -> Snapshot | None:
        newest: Snapshot | None = None
        for message in await self._read(self._snap_queue(room), "first") or ():
            offset = message.headers.get("o")
            if message.kind != _SNAPSHOT or not isinstance(offset, int):
                continue
            if newest is None or offset >= newest.offset:  # an older one saved later is ignored
                newest = Snapshot(offset=offset, epoch=message.epoch, body=message.body)
        return newest

    async def forget(self, room: str) -> None:
        # The room's stream stays (with a "forgotten" entry): a new history there keeps the offsets and
        # the epoch going up, as the contract wants; retention drops the old records.  Its snapshots go.
        if not await self._exists(self._room_queue(room)):
            return
        tail = await self._tail(room)
        await self._write(room, _FORGOTTEN, tail.fold.epoch, b"")
        self._listed.discard(room)

        async def delete() -> None:
            channel = await (await self._connection()).channel(publisher_confirms=False)
            try:
                await channel.queue_delete(self._snap_queue(room))
            finally:
                await channel.close()

        try:
            async with asyncio.timeout(self.settings.append_timeout):
                await delete()
        except TimeoutError as exc:
            raise JournalUnavailable(f"journal: forgetting room {room} took longer than "
                                     f"{self.settings.append_timeout} s") from exc
        except _BROKER_ERRORS as exc:
            raise JournalUnavailable(f"journal: forgetting room {room} failed, RabbitMQ at {self._where}: "
                                     f"{exc!r}") from exc
        self._declared.discard(self._snap_queue(room))
        await self._note(room, _FORGOTTEN)

    async def _exists(self, queue: str) -> bool:
        async def attempt() -> bool:
            channel = await (await self._connection()).channel(publisher_confirms=False)
            try:
                await channel.declare_queue(queue, passive=True)
            except aiormq.exceptions.ChannelNotFoundEntity as exc:
                if "home node" in str(exc):
                    raise  # still starting
                return False
            finally:
                if not channel.is_closed:
                    await channel.close()
            return True

        return await self._attaching(f"look up {queue}", attempt)

    async def rooms(self) -> list[str]:
        present: dict[str, None] = {}
        for message in await self._read(self._rooms_queue, "first") or ():
            room = message.headers.get("room")
            if not isinstance(room, str):
                continue
            if message.kind == _OPENED:
                present[room] = None
            elif message.kind == _FORGOTTEN:
                present.pop(room, None)
        return sorted(present)

    async def _note(self, room: str, kind: str) -> None:
        """Add an entry to the rooms directory (before the room's first claim, after its forget)."""
        queue = self._rooms_queue
        try:
            async with asyncio.timeout(self.settings.append_timeout):
                if queue not in self._declared:
                    await self._declare(await self._publishing(), queue)
                await self._publish(queue, b"", {"k": kind, "room": room})
        except TimeoutError as exc:
            raise JournalUnavailable(f"journal: the rooms directory took longer than "
                                     f"{self.settings.append_timeout} s") from exc
        except _BROKER_ERRORS as exc:
            raise JournalUnavailable(
                f"journal: the rooms directory failed, RabbitMQ at {self._where}: {exc!r}") from exc
