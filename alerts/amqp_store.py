"""Dead letters on RabbitMQ (cluster mode): a durable dead-letter exchange and a durable **quorum**
queue bound to it (``x-max-length``: the oldest go), so that dead letters outlive any process and a
broker node.

Writes are persistent and confirmed.  Reading browses: one channel takes every message unacked
(``basic.get``), the ones to drop are acked, and closing the channel gives the rest back to the queue.
Only the active alert service reads and writes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aio_pika
import aiormq
import msgspec
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection, DeliveryMode, ExchangeType

from rpc.brokers import broker_urls, connect_first

from .logs import log
from .deadletters import DeadLetter, DeadLetterStore, StoreUnavailable
from .settings import DeadLetterSettings

__all__ = ["AmqpDeadLetters"]


T = TypeVar("T")
_ERRORS = (aiormq.exceptions.AMQPError, aio_pika.exceptions.AMQPError, ConnectionError, OSError, RuntimeError,
           TimeoutError)
_decode = msgspec.json.Decoder(DeadLetter).decode
_encode = msgspec.json.Encoder().encode


class AmqpDeadLetters(DeadLetterStore):
    """The exchange and queue ``<cluster>.<settings.suffix>`` on ``broker_url``."""

    def __init__(self, broker_url: str, cluster: str, settings: DeadLetterSettings, *, node_id: str) -> None:
        self.name = f"{cluster}.{settings.suffix}"
        self._url = broker_url
        self._settings = settings
        self._node_id = node_id
        self._conn: AbstractRobustConnection | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        try:
            async with asyncio.timeout(self._settings.broker_timeout):
                # Any node of the broker cluster (``rpc.broker_url`` may list several), failing over.
                self._conn = await connect_first(
                    broker_urls(self._url), timeout=self._settings.broker_timeout, errors=_ERRORS,
                    client_properties={"connection_name": f"{self._node_id}.dead-letters"})
                channel = await self._conn.channel()
                exchange = await channel.declare_exchange(self.name, ExchangeType.FANOUT, durable=True)
                queue = await channel.declare_queue(self.name, durable=True, arguments={
                    "x-queue-type": "quorum", "x-max-length": self._settings.max_count})
                await queue.bind(exchange)
                await channel.close()
        except _ERRORS as exc:
            await self.close()
            raise StoreUnavailable(f"dead-letter queue {self.name}: {exc!r}") from exc

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.close()
            except _ERRORS:
                log.debug("dead_letter_connection_close_failed", exc_info=True)

    async def _on_channel(self, work: Callable[[aio_pika.abc.AbstractChannel], Awaitable[T]]) -> T:
        if self._conn is None:
            raise StoreUnavailable("dead-letter store not started")
        async with self._lock:
            try:
                async with asyncio.timeout(self._settings.broker_timeout):
                    channel = await self._conn.channel()
                    try:
                        return await work(channel)
                    finally:
                        if not channel.is_closed:
                            await channel.close()  # what was taken and not acked goes back
            except _ERRORS as exc:
                raise StoreUnavailable(f"dead-letter queue {self.name}: {type(exc).__name__}") from exc

    async def put(self, letter: DeadLetter) -> None:
        async def publish(channel: aio_pika.abc.AbstractChannel) -> None:
            exchange = await channel.get_exchange(self.name, ensure=False)
            await exchange.publish(aio_pika.Message(_encode(letter), content_type="application/json",
                                                    delivery_mode=DeliveryMode.PERSISTENT, message_id=letter.id),
                                   routing_key="")

        await self._on_channel(publish)

    async def _browse(self, channel: aio_pika.abc.AbstractChannel) -> list[tuple[AbstractIncomingMessage, DeadLetter]]:
        queue = await channel.get_queue(self.name, ensure=False)
        taken: list[tuple[AbstractIncomingMessage, DeadLetter]] = []
        for _ in range(self._settings.max_count):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            try:
                taken.append((message, _decode(message.body)))
            except (msgspec.DecodeError, msgspec.ValidationError):
                log.warning("malformed_dead_letter_dropped", queue=self.name)
                await message.ack()
        return taken

    async def list(self) -> list[DeadLetter]:
        async def browse(channel: aio_pika.abc.AbstractChannel) -> list[DeadLetter]:
            return [letter for _, letter in await self._browse(channel)]

        return await self._on_channel(browse)

    async def remove(self, letter_id: str) -> bool:
        async def take(channel: aio_pika.abc.AbstractChannel) -> bool:
            found = False
            for message, letter in await self._browse(channel):
                if letter.id == letter_id:
                    await message.ack()
                    found = True
            return found

        return await self._on_channel(take)

    async def purge(self) -> int:
        async def purge(channel: aio_pika.abc.AbstractChannel) -> int:
            queue = await channel.get_queue(self.name, ensure=False)
            result = await queue.purge()
            return int(getattr(result, "message_count", 0) or 0)

        return await self._on_channel(purge)
