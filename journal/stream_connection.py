"""The stream journal's connection to RabbitMQ (aio-pika): :class:`Connection`.

Connections are plain ones (never restored by aio-pika): after a loss the next operation connects
again, and the journal is told (``on_lost``) so its tails resume from where they were.  The URL may name
the nodes of a RabbitMQ cluster (comma-separated, :func:`rpc.brokers.broker_urls`): a connection goes to
the first node that answers, starting after the one whose connection was lost, so the journal goes on at
another node (its streams are replicated on every node of the cluster).  A connection
carries a publishing channel with confirms (reads' end markers, the rooms directory, snapshots) and a
channel of its own for the batched writes to room streams (:class:`~journal.stream_publish.BatchPublisher`).
Declares, look-ups and deletes go over a second connection, one at a time (:mod:`journal.stream_lookups`):
the broker refuses them by closing the channel, which must never race a channel open on this one.
A stream refuses consumers for ~10 s after a broker start (each refusal closes the connection):
:meth:`Connection.attaching` retries within ``attach_timeout``.  Every failure to reach the broker
raises :class:`~journal.base.JournalUnavailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection

from rpc.brokers import broker_urls

from .base import JournalUnavailable
from .logs import EventLog
from .settings import StreamJournalSettings
from .stream_layout import Layout
from .stream_lookups import Lookups
from .stream_publish import BatchPublisher

__all__ = ["BROKER_ERRORS", "Connection"]

BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aio_pika.exceptions.AMQPError,
    ConnectionError,
    OSError,
    RuntimeError,
    asyncio.TimeoutError,
)

_T = TypeVar("_T")


def _usable(conn: AbstractConnection) -> bool:
    transport = conn.transport
    return not conn.is_closed and transport is not None and not transport.connection.is_closed


class Connection:
    """The journal's one connection, its channels, the streams declared on it, and the background work
    (closing channels and connections, queued starts) that :meth:`close` waits for."""

    def __init__(self, url: str, settings: StreamJournalSettings, name: str, layout: Layout,
                 on_lost: Callable[[BaseException | None], None]) -> None:
        self.urls = broker_urls(url)
        #: The address the next connection tries first.
        self._index = 0
        self.settings = settings
        self.name = name
        self.layout = layout
        self.log = EventLog(journal=name, broker=",".join(self._where(u) for u in self.urls))
        self._on_lost = on_lost
        self._conn: AbstractConnection | None = None
        self._publisher: AbstractChannel | None = None
        #: The channel the writes to room streams go out on, in batches (nothing else publishes there).
        self._writer: BatchPublisher | None = None
        self._declared: set[str] = set()
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Future[Any]] = set()
        self._closed = False
        #: Connections made after the first (each loss is followed by one on the next operation).
        self.reconnects = 0
        self._connections = 0
        #: Streams are declared (passively: whether one exists) over a connection of their own
        #: (:mod:`journal.stream_lookups`): the broker refuses by closing the channel, which must never
        #: race a channel open on this connection.
        self.lookups = Lookups(settings, self._connect_any, f"{name}-lookups", self.log, self.keep)

    @staticmethod
    def _where(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port or 5672}"

    @property
    def where(self) -> str:
        """The broker node of the current connection (or of the next attempt)."""
        return self._where(self.urls[self._index])

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def conn(self) -> AbstractConnection | None:
        return self._conn

    @property
    def writer(self) -> BatchPublisher | None:
        return self._writer

    def keep(self, work: Awaitable[Any]) -> None:
        """Run ``work`` in the background; :meth:`close` waits for it."""
        future = asyncio.ensure_future(work)
        self._closing.add(future)
        future.add_done_callback(self._closing.discard)

    def shut(self) -> None:
        """Refuse every operation from now on and start closing the connection (:meth:`wait_closed`)."""
        self._closed = True
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed:
            self._closing.add(asyncio.ensure_future(conn.close()))
        self.lookups.shut()

    async def wait_closed(self) -> None:
        for result in await asyncio.gather(*self._closing, return_exceptions=True):
            if isinstance(result, BaseException):
                self.log.debug("journal_close_failed", error=repr(result))
        self.log.info("journal_closed", reconnects=self.reconnects)

    async def connection(self) -> AbstractConnection:
        if self._closed:
            raise JournalUnavailable("journal is closed")
        conn = self._conn
        if conn is not None and _usable(conn):
            return conn
        async with self._lock:
            if self._conn is not None and _usable(self._conn):
                return self._conn
            if self._conn is not None:
                self.drop(self._conn, None)
            conn = await self._connect_any(self.name)
            try:
                publisher = await conn.channel(publisher_confirms=True, on_return_raises=True)
                writer = await self._open_writer(conn)
            except BaseException as exc:
                self.keep(conn.close())  # a connection without its channels is of no use: let it go
                if not isinstance(exc, BROKER_ERRORS):
                    raise
                self.log.warning("journal_connect_failed", error=repr(exc))
                raise JournalUnavailable(f"journal: RabbitMQ at {self.where} refused a channel: {exc!r}") from exc
            if self._closed:
                await conn.close()
                raise JournalUnavailable("journal is closed")
            conn.close_callbacks.add(self._on_connection_lost)
            self.reconnects += self._connections > 0
            self._connections += 1
            self.log.info("journal_connected", reconnects=self.reconnects)
            self._conn, self._publisher, self._declared = conn, publisher, set()
            self._writer = writer
            return conn

    async def _connect_any(self, name: str) -> AbstractConnection:
        """A connection (named ``name`` on the broker) to the first node that answers, from the current
        one on (each within ``connect_timeout``); ``JournalUnavailable`` when none does."""
        s = self.settings
        error: BaseException | None = None
        for _ in range(len(self.urls)):
            try:
                async with asyncio.timeout(s.connect_timeout):
                    return await aio_pika.connect(self.urls[self._index], heartbeat=s.heartbeat,
                                                  timeout=s.connect_timeout,
                                                  client_properties={"connection_name": name})
            except BROKER_ERRORS as exc:
                self.log.warning("journal_connect_failed", node=self.where, error=repr(exc))
                error = exc
                self._index = (self._index + 1) % len(self.urls)
        raise JournalUnavailable(f"journal: cannot connect to RabbitMQ at {self.where}: {error!r}") from error

    def _on_connection_lost(self, conn: Any, exc: BaseException | None = None) -> None:
        if conn is self._conn:
            self.drop(self._conn, exc)

    def drop(self, conn: AbstractConnection, exc: BaseException | None) -> None:
        """Leave a connection that failed (aio-pika may not mark it closed at once); the next
        operation connects again and every tail resumes from where it was."""
        if conn is not self._conn:
            return
        self._conn = self._publisher = None
        if len(self.urls) > 1:  # the node has most likely gone: the next connection tries another first
            self._index = (self._index + 1) % len(self.urls)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if not conn.is_closed:
            self.keep(conn.close())
        self.lookups.leave()  # to the node the next connection goes to
        self._on_lost(exc)

    def leave_stalled(self, what: str) -> None:
        """The current connection let something run out of time (a write neither confirmed nor read
        back within ``append_timeout``): leave it, so the next operation goes to the next broker node
        and every tail attaches again there.  Measured on RabbitMQ 3.10: after a node of a cluster was
        killed and the node everyone then moved to was stopped gracefully, a room's stream took no
        more writes through the third node's connection for over a minute, while a connection to
        the restarted node was served at once."""
        conn = self._conn
        if conn is not None:
            self.log.warning("journal_link_stalled", node=self.where, what=what)
            self.drop(conn, TimeoutError(f"journal: {what}"))

    def drop_if_broken(self, exc: BaseException) -> None:
        """Leave the connection if ``exc`` came with it broken."""
        if self._conn is not None and not _usable(self._conn):
            self.drop(self._conn, exc)

    async def publishing(self) -> AbstractChannel:
        """The publishing channel, and the batch writer, opened again if they were closed."""
        conn = await self.connection()
        try:
            if self._publisher is None or self._publisher.is_closed:
                self._publisher = await conn.channel(publisher_confirms=True, on_return_raises=True)
            if self._writer is None or self._writer.closed:
                if self._writer is not None:
                    self._writer.close()
                self._writer = await self._open_writer(conn)
        except BROKER_ERRORS as exc:
            raise JournalUnavailable(f"journal: RabbitMQ at {self.where} refused a channel: {exc!r}") from exc
        return self._publisher

    @staticmethod
    async def _open_writer(conn: AbstractConnection) -> BatchPublisher:
        channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
        return BatchPublisher(cast(aiormq.Channel, await channel.get_underlay_channel()))

    async def declare(self, queue: str) -> None:
        """Declare the stream ``queue`` (over the look-ups' connection: a refusal closes the channel)."""
        if self._closed:
            raise JournalUnavailable("journal is closed")
        conn = self._conn
        await self.lookups.declare(queue, self.layout.arguments(queue))
        if conn is not None and conn is self._conn:
            self._declared.add(queue)

    async def ensure_declared(self, queue: str) -> None:
        """Declare ``queue`` unless it was since the current connection was made."""
        if queue not in self._declared:
            await self.declare(queue)

    def undeclared(self, queue: str) -> None:
        """``queue`` was deleted: declare it again before the next publish to it."""
        self._declared.discard(queue)

    async def publish(self, queue: str, body: bytes, headers: dict[str, Any], message_id: str | None = None) -> None:
        """Publish with confirm to an existing stream (``mandatory``: a missing one raises)."""
        channel = await self.publishing()
        await channel.default_exchange.publish(
            aio_pika.Message(body, headers=headers, message_id=message_id,
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queue, mandatory=True)

    async def consume_started(self, start: Awaitable[_T]) -> _T:
        """``start`` (a ``basic.consume``) within ``consume_timeout``.  One that gets no answer leaves this
        connection, so the next attempt goes to the next broker node, and raises ``TimeoutError`` (which
        :meth:`attaching` retries): measured on RabbitMQ 3.10, after a node of a cluster was killed and
        another stopped, a stream's writer on the third node never answered consumers while its replica
        on the restarted node did."""
        try:
            async with asyncio.timeout(self.settings.consume_timeout):
                return await start
        except TimeoutError:
            conn = self._conn
            self.log.warning("journal_consume_stalled", node=self.where, timeout=self.settings.consume_timeout)
            if conn is not None:
                self.drop(conn, TimeoutError(f"no answer to a stream consumer within {self.settings.consume_timeout} s"))
            raise

    async def attaching(self, what: str, attempt: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
        """Run ``attempt`` until it succeeds, the broker cannot be reached, or ``attach_timeout`` passes:
        a stream that is still recovering after a broker start refuses consumers (and drops the connection)."""
        s = self.settings
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.attach_timeout
        while True:
            conn = self._conn
            try:
                return await attempt()
            except BROKER_ERRORS as exc:
                if conn is not None and not _usable(conn):
                    self.drop(conn, exc)
                if isinstance(exc, aiormq.exceptions.ChannelPreconditionFailed) and "inequivalent arg" in str(exc):
                    raise JournalUnavailable(
                        f"journal: cannot {what}: the stream exists with other arguments (every journal on a broker "
                        f"must use the same stream sizes): {exc}") from exc
                if loop.time() + s.attach_retry_interval > deadline:
                    raise JournalUnavailable(
                        f"journal: cannot {what} on RabbitMQ at {self.where} within {s.attach_timeout} s: {exc!r}"
                    ) from exc
                self.log.debug("journal_attach_retry", what=what, error=repr(exc))
            await asyncio.sleep(s.attach_retry_interval)

    async def exists(self, queue: str) -> bool:
        """Whether ``queue`` exists (retried within ``attach_timeout`` while the broker is starting)."""
        if self._closed:
            raise JournalUnavailable("journal is closed")
        return await self.attaching(f"look up {queue}", lambda: self.lookups.exists(queue))

    async def delete(self, queue: str) -> None:
        if self._closed:
            raise JournalUnavailable("journal is closed")
        await self.lookups.delete(queue)
