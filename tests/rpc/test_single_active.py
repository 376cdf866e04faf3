"""Single-active services: of several servers only the first still serving gets the calls."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika

from rpc import Declined, rpc_method
from tests.support.transports import TransportFactory


class Named:
    def __init__(self, name: str, declines: int = 0) -> None:
        self.name = name
        self.declines = declines

    @rpc_method
    async def who(self) -> str:
        if self.declines:
            self.declines -= 1
            raise Declined("not now")
        return self.name


async def test_one_server_gets_every_call_until_it_goes(transports: TransportFactory) -> None:
    service = f"sac-{uuid.uuid4().hex[:6]}"
    first = await (await transports.make()).serve(service, Named("first"), single_active=True)
    await (await transports.make()).serve(service, Named("second"), single_active=True)
    client = await transports.make()
    assert [await client.call(service, "who") for _ in range(6)] == ["first"] * 6
    await first.stop()
    assert [await client.call(service, "who") for _ in range(3)] == ["second"] * 3


async def test_a_declined_request_is_not_answered_by_the_server_that_declined(transports: TransportFactory) -> None:
    service = f"sac-{uuid.uuid4().hex[:6]}"
    declining = Named("declining", declines=1)
    await (await transports.make()).serve(service, declining, single_active=True)
    client = await transports.make()
    if transports.kind == "amqp":
        # Back in the queue unanswered: the active server (here the same one) gets it again.
        assert await client.call(service, "who") == "declining"
    else:
        try:
            await client.call(service, "who")
        except Exception as exc:  # in-process the caller learns at once that nobody handled it
            assert type(exc).__name__ == "RpcUnavailable"
        else:
            raise AssertionError("a declined call was answered")
    assert declining.declines == 0


async def test_a_single_active_service_the_broker_refuses_for_a_while_is_served_once_it_accepts(
        broker_url: str) -> None:
    # A broker under load may refuse a quorum queue's declare (INTERNAL_ERROR) for a moment: a standby
    # manager starting then must not die of it. Here the refusal is real and goes away: the name is taken
    # by a classic queue (406 inequivalent arg) until it is deleted half a second later.
    service = f"sac-{uuid.uuid4().hex[:6]}"
    conn = await aio_pika.connect(broker_url)
    transports = TransportFactory("amqp", broker_url)
    try:
        channel = await conn.channel()
        await channel.declare_queue(service, durable=True)
        server = await transports.make(outage_wait=10.0)
        serving = asyncio.create_task(server.serve(service, Named("late"), single_active=True))
        await asyncio.sleep(0.5)
        assert not serving.done()  # still trying
        await channel.queue_delete(service)
        await asyncio.wait_for(serving, 10)
        client = await transports.make()
        assert await client.call(service, "who") == "late"
    finally:
        await transports.close()
        await conn.close()
