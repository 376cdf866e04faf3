"""Following rooms' streams (one consumer, a *tail*, per room): :class:`Tails`.

A publisher confirm carries no offset, so a journal that writes to a room follows the room's stream:
the tail delivers each message back, which gives its offset and what the fencing rule makes of it
(:class:`~journal.stream_fold.Fold`), and completes this journal's write of it
(:class:`~journal.stream_appends.InFlight`).  A tail starts where a replay of the room by this journal
ended, else at the room's newest snapshot, else at the first offset; after a lost connection it
resumes from the offset after the last message it handled.  At most ``max_followed_rooms`` rooms are
followed (least recently used let go, never one with writes waiting).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aio_pika.abc import AbstractChannel
from aiormq.abc import AbstractChannel as RawChannel
from aiormq.abc import DeliveredMessage

from .base import JournalUnavailable, Snapshot
from .stream_appends import InFlight, Write
from .stream_connection import BROKER_ERRORS, Connection
from .stream_fold import FORGOTTEN, Fold, message_of
from .stream_rooms import Directory

__all__ = ["Tail", "Tails"]


@dataclass(slots=True, eq=False)
class Tail:
    """This journal's consumer following one room's stream."""

    room: str
    queue: str
    fold: Fold
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


class Tails:
    """The rooms this journal follows, least recently used first."""

    def __init__(self, link: Connection, writes: InFlight, directory: Directory,
                 newest: Callable[[str], Awaitable[Snapshot | None]]) -> None:
        self._link = link
        self._writes = writes
        self._directory = directory
        self._newest = newest
        self._tails: dict[str, Tail] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def followed(self) -> list[str]:
        return list(self._tails)

    def get(self, room: str) -> Tail | None:
        return self._tails.get(room)

    def used(self, room: str) -> None:
        """``room`` (followed) was just used: it goes last in the least-recently-used order."""
        self._tails[room] = self._tails.pop(room)

    async def follow(self, room: str) -> Tail:
        """The room's tail, attached (started from the newest snapshot if the room is not followed yet)."""
        tail = self._tails.pop(room, None)
        if tail is not None:
            self._tails[room] = tail  # most recently used last
            if tail.attached:
                return tail
        async with self._locks.setdefault(room, asyncio.Lock()):
            tail = self._tails.get(room)
            if tail is None:
                newest = await self._newest(room)
                # start at the newest snapshot's record: its epoch and everything after it are all that matter
                fold = Fold(newest.epoch, newest.offset) if newest else Fold()
                start: int | str = newest.offset - 1 if newest else "first"
                tail = Tail(room, self._link.layout.room_queue(room), fold, start)
                self._tails[room] = tail
                self._evict()
            if not tail.attached:
                await self._link.attaching(f"follow room {room}", partial(self._attach, tail))
            return tail

    def follow_from(self, room: str, fold: Fold, position: int) -> None:
        """A replay read the room up to ``position`` (the stream offset after its last message) and
        folded it: a room this journal does not follow yet is followed from there (its tail attaches
        on the first write), so a takeover's claim after its replay reads nothing twice."""
        if room in self._tails:
            return
        self._tails[room] = Tail(room, self._link.layout.room_queue(room), Fold(fold.epoch, fold.last), position)
        self._evict()

    def forget(self, room: str) -> None:
        """Stop following ``room``, failing the writes that wait on its tail."""
        tail = self._tails.pop(room, None)
        if tail is not None:
            self._writes.fail_all(tail.waiting, JournalUnavailable(f"journal: room {room} was forgotten"))
            channel, tail.channel, tail.raw = tail.channel, None, None
            if channel is not None and not channel.is_closed:
                self._link.keep(channel.close())

    def lost(self, exc: BaseException | None) -> None:
        """The connection was lost: every tail is detached (it resumes where it was) and its writes fail."""
        link = self._link
        link.log.warning("journal_connection_lost", error=repr(exc), rooms_followed=len(self._tails))
        lost = JournalUnavailable(f"journal: connection to RabbitMQ at {link.where} lost: {exc!r}")
        for tail in self._tails.values():
            tail.channel = tail.raw = None
            self._writes.fail_all(tail.waiting, lost)

    def clear(self) -> None:
        self._tails.clear()

    def _evict(self) -> None:
        """Stop following the least recently used rooms beyond ``max_followed_rooms`` (a controller that
        gave a room away stops writing to it; following it again later reads from its newest snapshot)."""
        for room in list(self._tails):
            if len(self._tails) <= self._link.settings.max_followed_rooms:
                return
            if not self._tails[room].waiting:
                self.forget(room)
                self._locks.pop(room, None)

    async def _attach(self, tail: Tail) -> None:
        link = self._link
        await link.declare(tail.queue)  # before the channel: a refusal closes the look-ups' channel, not this one
        conn = await link.connection()
        channel = await conn.channel(publisher_confirms=False)
        try:
            await channel.set_qos(prefetch_count=link.settings.prefetch)
            raw = await channel.get_underlay_channel()
            tail.channel, tail.raw, tail.unacked = channel, raw, 0
            channel.close_callbacks.add(partial(self._on_closed, tail))
            # aiormq's consumer directly: aio-pika would add a task and an IncomingMessage per delivery
            await link.consume_started(raw.basic_consume(tail.queue, partial(self._on_message, tail, raw),
                                                         arguments={"x-stream-offset": tail.position}))
        except BaseException:
            tail.channel = tail.raw = None
            if not channel.is_closed:
                await asyncio.shield(channel.close())
            raise

    def _on_closed(self, tail: Tail, channel: Any, exc: BaseException | None = None) -> None:
        if tail.channel is channel:
            tail.channel = tail.raw = None
            self._writes.fail_all(tail.waiting, JournalUnavailable(
                f"journal: lost the stream of room {tail.room}: {exc!r}"))

    async def _on_message(self, tail: Tail, raw: RawChannel, delivery: DeliveredMessage) -> None:
        if tail.raw is not raw:
            return  # a delivery to a consumer this tail has left
        properties = delivery.header.properties
        message = message_of(properties.headers or {}, delivery.body)
        seen = tail.fold.see(message)
        tail.position = message.offset  # = the next stream offset
        if message.kind == FORGOTTEN:
            self._directory.left(tail.room)
        write = tail.waiting.get(properties.message_id or "")
        if write is not None:
            self._writes.seen(write, seen)
        tail.unacked += 1
        if tail.unacked >= self._link.settings.ack_every:
            tail.unacked = 0
            try:
                await raw.basic_ack(delivery.delivery_tag or 0, multiple=True, wait=False)
            except BROKER_ERRORS:
                self._link.log.debug("journal_ack_failed", room=tail.room)
