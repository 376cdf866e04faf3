"""Publishing several messages with publisher confirms in one socket write: :class:`BatchPublisher`.

aiormq's ``basic_publish`` hands each message to the connection's writer on its own, and the writer
sends each with a syscall of its own; over loopback that send (with the broker's wake-up it causes) was
the largest single cost of a journal append (docs/design-notes.md, "stream journal's cost").  The
stream journal collects the writes of one event-loop turn, across rooms, and publishes them here as one
frame sequence on a channel of their own: the same bookkeeping ``basic_publish`` does (the channel's
next delivery tag, a confirmation future the channel resolves on the broker's ack or fails on a
return, a nack or the channel's close), one write.  An aiormq without the channel attributes used here
gets each message through ``basic_publish`` instead.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from functools import partial
from typing import Any

import aiormq
from aiormq.abc import ChannelFrame
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader

__all__ = ["BatchPublisher", "Outgoing"]

#: One message: the stream (routing key on the default exchange), the body, its properties (with a message id).
Outgoing = tuple[str, bytes, Basic.Properties]

_USED = ("delivery_tag", "confirmations", "message_id_delivery_tag", "write_queue", "max_content_size", "number",
         "create_future")


def _forget(channel: aiormq.Channel, message_id: str, tag: int, _: asyncio.Future[Any]) -> None:
    if channel.message_id_delivery_tag.get(message_id) == tag:
        channel.message_id_delivery_tag.pop(message_id)


class BatchPublisher:
    """Publishes batches on one aiormq channel with publisher confirms, which nothing else publishes on
    (the delivery tags it numbers must follow the order of the frames on the wire)."""

    def __init__(self, channel: aiormq.Channel) -> None:
        self.channel = channel
        self._by_hand = all(hasattr(channel, name) for name in _USED) and channel.publisher_confirms
        #: Frames waiting for room in the connection's write queue (it holds a few frames), in order.
        self._backlog: deque[ChannelFrame] = deque()
        self._putting: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        return self.channel.is_closed

    def close(self) -> None:
        if self._putting is not None:
            self._putting.cancel()
        self._backlog.clear()

    def publish(self, messages: Sequence[Outgoing]) -> list[asyncio.Future[Any]]:
        """Publish ``messages`` (``mandatory``: a missing stream returns them) in this order; one future per
        message, done when the broker confirmed it or failed (returned, nacked, the channel closed)."""
        channel = self.channel
        if not messages:
            return []
        if not self._by_hand:
            return [asyncio.ensure_future(channel.basic_publish(body, routing_key=queue, properties=properties,
                                                                mandatory=True))
                    for queue, body, properties in messages]
        frames: list[Any] = []
        confirmations: list[asyncio.Future[Any]] = []
        size = channel.max_content_size
        for queue, body, properties in messages:
            channel.delivery_tag += 1
            tag = channel.delivery_tag
            confirmation = channel.create_future()
            channel.confirmations[tag] = confirmation
            message_id = properties.message_id
            assert message_id is not None
            channel.message_id_delivery_tag[message_id] = tag
            confirmation.add_done_callback(partial(_forget, channel, message_id, tag))
            frames.append(Basic.Publish(routing_key=queue, mandatory=True))
            frames.append(ContentHeader(properties=properties, body_size=len(body)))
            frames.extend(ContentBody(body[at:at + size]) for at in range(0, len(body), size))
            confirmations.append(confirmation)
        frame = ChannelFrame.marshall(channel_number=channel.number, frames=frames)
        if self._backlog or channel.write_queue.full():
            self._backlog.append(frame)
            if self._putting is None:
                self._putting = asyncio.ensure_future(self._put_backlog())
        else:
            channel.write_queue.put_nowait(frame)
        return confirmations

    async def _put_backlog(self) -> None:
        try:
            while self._backlog:
                await self.channel.write_queue.put(self._backlog[0])
                self._backlog.popleft()
        finally:
            self._putting = None
