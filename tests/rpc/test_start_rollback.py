"""An AMQP transport whose start fails after it connected closes its connection (and with it the
channels and the reply queue it declared), and cannot be started again."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import pytest
from aio_pika.abc import ExchangeType

from rpc import RpcSettings, RpcUnavailable
from rpc.amqp import AmqpTransport
from switchboard.devbroker import RabbitNode
from tests.support.waiting import wait_until


async def _no_connection_named(rabbit: RabbitNode, name: str) -> bool:
    listed = await asyncio.to_thread(rabbit.ctl, "list_connections", "client_properties")
    return name not in listed


async def test_a_transport_that_cannot_declare_its_exchange_closes_its_connection(rabbit: RabbitNode) -> None:
    exchange = f"events-{uuid.uuid4().hex[:6]}"
    other = await aio_pika.connect(rabbit.url)
    try:
        channel = await other.channel()
        # The transport declares the events exchange as a topic exchange: the broker refuses it.
        await channel.declare_exchange(exchange, ExchangeType.FANOUT, auto_delete=False)
        node = f"rollback-{uuid.uuid4().hex[:6]}"
        transport = AmqpTransport(node, RpcSettings(broker_url=rabbit.url, events_exchange=exchange))
        with pytest.raises(RpcUnavailable, match="PRECONDITION_FAILED"):
            await transport.start()
        assert not transport.connected
        await wait_until(lambda: _no_connection_named(rabbit, node), timeout=30, what="the connection to close")
        with pytest.raises(RuntimeError, match="was closed; make a new one"):
            await transport.start()
        await channel.exchange_delete(exchange)
    finally:
        await other.close()
