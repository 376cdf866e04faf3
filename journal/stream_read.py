"""Reading a stream to its end: :func:`read`.

Every read (replay, the newest snapshot, the rooms directory) publishes an end marker first, then
reads with a fresh consumer (manual acks, basic.qos) from the wanted offset up to that marker, and
closes it: a consumer per read, never one restored by aio-pika.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from .base import JournalUnavailable
from .stream_connection import BROKER_ERRORS, Connection
from .stream_fold import MARKER, Message, message

__all__ = ["read"]


async def read(link: Connection, queue: str, start: int | str) -> list[Message] | None:
    """The messages of ``queue`` from stream offset ``start`` up to an end marker published now;
    ``None`` if the stream does not exist."""
    s = link.settings
    marker = uuid.uuid4().hex
    published = False
    messages: list[Message] = []

    async def attempt() -> list[Message] | None:
        nonlocal published
        # Asked over the look-ups' own connection (journal.stream_lookups): the broker answers a missing
        # stream by closing the channel, which must not race the channel opens on the main connection.
        # While the broker is still starting its queues this raises ("home node … is down"): retried.
        if not await link.lookups.exists(queue):
            return None
        conn = await link.connection()
        channel = await conn.channel(publisher_confirms=False)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            await channel.set_qos(prefetch_count=s.prefetch)
            stream = await channel.get_queue(queue, ensure=False)
            if not published:
                await link.publish(queue, b"", {"k": MARKER}, message_id=marker)
                published = True
            messages.clear()
            count = 0

            def on_close(sender: Any, exc: BaseException | None = None) -> None:
                if not done.done():  # the read starts again (or fails) rather than wait for read_timeout
                    done.set_exception(RuntimeError(f"read channel closed: {exc!r}"))

            channel.close_callbacks.add(on_close)

            async def on_message(delivery: AbstractIncomingMessage) -> None:
                nonlocal count
                if done.done():
                    # Never ack once the read is over: the channel is being closed, and an ack that follows
                    # its close makes the broker close the whole connection (504 "expected 'channel.open'"),
                    # failing every write on it.  A stream keeps delivering past the marker while others
                    # write to it; unacked deliveries go with the channel.
                    return
                count += 1
                if delivery.message_id == marker:
                    done.set_result(None)
                    return
                messages.append(message(delivery))
                if count % s.ack_every == 0:
                    await delivery.ack(multiple=True)

            await link.consume_started(stream.consume(on_message, arguments={"x-stream-offset": start}))
            await done
            return list(messages)
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
