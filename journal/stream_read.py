"""Reading a stream to its end: :func:`read`, and :func:`scan` for a reader that looks at each message.

Every read (replay, the newest snapshot, rooms) first publishes an end marker, then reads with a fresh
consumer (manual acks, basic.qos) from the wanted offset up to that marker, and closes it: a consumer
per read, never one restored by aio-pika.  :func:`scan` may publish a marker that means something to
other readers (the holder journal's fence, its claims), and learns the marker's offset.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from .base import JournalUnavailable
from .stream_connection import BROKER_ERRORS, Connection
from .stream_fold import MARKER, Message, message

__all__ = ["read", "scan", "Seer"]

#: Looks at one message of a scan; ``True`` ends the scan there (the marker is not waited for).
Seer = Callable[[Message], bool]


async def read(link: Connection, queue: str, start: int | str | datetime) -> list[Message] | None:
    """The messages of ``queue`` from stream offset ``start`` (or the first chunk written at or after a
    time) up to an end marker published now; ``None`` if the stream does not exist."""
    messages: list[Message] = []

    def keep(message: Message) -> bool:
        messages.append(message)
        return False

    def begin() -> Seer:
        messages.clear()
        return keep

    if await scan(link, queue, start, begin) is None:
        return None
    return list(messages)


async def scan(link: Connection, queue: str, start: int | str | datetime, begin: Callable[[], Seer], *,
               headers: dict[str, Any] | None = None, body: bytes = b"") -> int | None:
    """Publish an end marker to ``queue`` (``headers`` and ``body``: a plain marker by default), then hand
    each message from stream offset ``start`` up to it to the seer ``begin()`` returns (called again each
    time the read starts over); the marker's journal offset (stream offset + 1), or ``0`` when the seer
    ended the scan before it, or ``None`` if the stream does not exist."""
    s = link.settings
    marker = uuid.uuid4().hex
    published = False

    async def attempt() -> int | None:
        nonlocal published
        # Asked over the look-ups' own connection (journal.stream_lookups): the broker answers a missing
        # stream by closing the channel, which must not race the channel opens on the main connection.
        # While the broker is still starting its queues this raises ("home node … is down"): retried.
        if not await link.lookups.exists(queue):
            return None
        conn = await link.connection()
        channel = await conn.channel(publisher_confirms=False)
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        try:
            await channel.set_qos(prefetch_count=s.prefetch)
            stream = await channel.get_queue(queue, ensure=False)
            if not published:
                await link.publish(queue, body, headers if headers is not None else {"k": MARKER}, message_id=marker)
                published = True
            see = begin()
            count = 0

            def on_close(sender: Any, exc: BaseException | None = None) -> None:
                if not done.done():  # the read starts again (or fails) rather than wait for read_timeout
                    done.set_exception(RuntimeError(f"read channel closed: {exc!r}"))

            channel.close_callbacks.add(on_close)

            async def on_message(delivery: AbstractIncomingMessage) -> None:
                nonlocal count
                if done.done():
                    # Never ack once the read is over: the channel is being closed, and an ack that follows
                    # its close makes the broker close the whole connection (504 "expected 'channel.open'").
                    # A stream keeps delivering past the end (the marker, or where the seer stopped) while
                    # others write to it.  Unacked deliveries go with the channel.
                    return
                count += 1
                if delivery.message_id == marker:
                    done.set_result(message(delivery).offset)
                elif see(message(delivery)):
                    done.set_result(0)
                elif count % s.ack_every == 0:
                    await delivery.ack(multiple=True)

            await link.consume_started(stream.consume(on_message, arguments={"x-stream-offset": start}))
            return await done
        finally:
            if not done.done():
                done.cancel()
            if not channel.is_closed:
                try:
                    await channel.close()
                except BROKER_ERRORS:
                    link.log.debug("journal_close_failed", error="read channel")

    try:
        async with asyncio.timeout(s.read_timeout):
            return await link.attaching(f"read {queue}", attempt)
    except TimeoutError as exc:
        raise JournalUnavailable(f"journal: reading {queue} took longer than {s.read_timeout} s") from exc
