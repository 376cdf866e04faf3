"""Declaring and deleting streams over a connection of their own: :class:`Lookups`.

The broker answers a passive declare of a missing stream by closing the channel (and so it refuses a
declare with other arguments, or one while the broker is still starting its queues).  aiormq (7.2) frees the
channel's number as soon as it reads that close, and only later queues its close-ok; a channel opened
meanwhile on the same connection may take the number, and its ``channel.open`` may go out before the
close-ok, which the broker answers by closing the whole connection (504 "second 'channel.open' seen"),
failing every write on it.  A controller taking over many rooms asks each for its newest snapshot at
once, and a room that has not reached ``snapshot_every`` has none: on the journal's main connection,
20 batches of 25 such look-ups beside appends lost it 6–11 times (5 runs).  Here the look-ups take turns on a connection that
carries nothing else, each on a channel opened only after the previous one is closed for good
(its close-ok queued), so no open ever races a close.  Anything unexpected (a timeout, a cancelled
look-up, a lost connection) leaves the connection; the next look-up makes a new one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection

from .base import JournalUnavailable
from .logs import EventLog
from .settings import StreamJournalSettings

__all__ = ["Lookups"]


def _usable(conn: AbstractConnection | None) -> bool:
    transport = conn.transport if conn is not None else None
    return conn is not None and not conn.is_closed and transport is not None and not transport.connection.is_closed


class _Session:
    """One connection of the look-ups, its channel, and the lock they take turns with."""

    def __init__(self) -> None:
        self.conn: AbstractConnection | None = None
        self.channel: AbstractChannel | None = None
        self.lock = asyncio.Lock()


class Lookups:
    """Declares and deletes, one at a time, on a connection of their own (opened on first use)."""

    def __init__(self, settings: StreamJournalSettings, connect: Callable[[str], Awaitable[AbstractConnection]],
                 name: str, log: EventLog, keep: Callable[[Awaitable[Any]], None]) -> None:
        self.settings = settings
        self._connect = connect
        self._keep = keep
        self.name = name
        self.log = log
        self._session = _Session()
        self._closed = False
        #: Connections made (a loss or anything unexpected leaves one; the next look-up makes another).
        self.connections = 0

    async def exists(self, queue: str) -> bool:
        """Whether ``queue`` exists; raises ``ChannelNotFoundEntity`` while its home node is down (the
        broker is still starting its queues), a broker error or ``TimeoutError`` otherwise."""
        try:
            await self._on_channel(lambda channel: channel.declare_queue(queue, passive=True))
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            if "home node" in str(exc):
                raise  # still starting
            return False
        return True

    async def declare(self, queue: str, arguments: dict[str, Any]) -> None:
        """Declare the durable ``queue`` with ``arguments`` (nothing if it exists with them); a refusal
        (``inequivalent arg``, a home node still down) raises the broker's error."""
        await self._on_channel(lambda channel: channel.declare_queue(queue, durable=True, arguments=arguments))

    async def delete(self, queue: str) -> None:
        """Delete ``queue`` (nothing if there is none)."""
        await self._on_channel(lambda channel: channel.queue_delete(queue))

    def leave(self) -> None:
        """Leave the current connection (the journal left its node): the next action connects again,
        while an action under way ends on the old one."""
        self._abandon(self._session)

    async def _on_channel(self, action: Callable[[AbstractChannel], Awaitable[Any]]) -> None:
        """``action`` on the look-ups' channel, after every other action on the same connection."""
        session = self._session
        await session.lock.acquire()
        while session is not self._session:  # left while this action waited: go on with the new one
            session.lock.release()
            session = self._session
            await session.lock.acquire()
        try:
            done = False
            try:
                async with asyncio.timeout(self.settings.consume_timeout + self.settings.connect_timeout):
                    channel = await self._open(session)
                    try:
                        await action(channel)
                    except aiormq.exceptions.ChannelClosed:
                        # The broker refused, closing the channel.  By the time the action raises, aiormq
                        # has queued the close-ok (its channel reader queues it before it fails the calls
                        # waiting on the channel); wait until the channel is closed for good all the same,
                        # before the next action opens another.
                        session.channel = None
                        await channel.closed()
                        done = _usable(session.conn)  # else the channel went with the connection
                        raise
                done = True
            finally:
                if not done:  # a timeout, a cancel, another error: the state of the channel is unknown
                    self._abandon(session)
        finally:
            session.lock.release()

    async def _open(self, session: _Session) -> AbstractChannel:
        if self._closed:
            raise JournalUnavailable("journal is closed")
        conn = session.conn
        if conn is not None and not _usable(conn):  # lost (a broker restart): connect again at once
            session.conn = session.channel = None
            if not conn.is_closed:
                self._keep(conn.close())
            conn = None
        if conn is None:
            conn = await self._connect(self.name)
            if self._closed or session is not self._session:
                self._keep(conn.close())
                if self._closed:
                    raise JournalUnavailable("journal is closed")
                raise ConnectionError("journal: the look-ups left their node while connecting")
            session.conn = conn
            self.connections += 1
            self.log.debug("journal_lookups_connected", connections=self.connections)
        channel = session.channel
        if channel is None or channel.is_closed:
            session.channel = channel = await conn.channel(publisher_confirms=False)
        return channel

    def _abandon(self, session: _Session) -> None:
        if session is self._session:
            self._session = _Session()
        conn, session.conn, session.channel = session.conn, None, None
        if conn is not None and not conn.is_closed:
            self._keep(conn.close())

    def shut(self) -> None:
        """Refuse every action from now on and start closing the connection (an action under way ends
        with it)."""
        self._closed = True
        self._abandon(self._session)
