"""The RabbitMQ transport across a broker restart: nothing hangs, failures are fast, service resumes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from rpc import RpcError, RpcSettings, RpcUnavailable, rpc_method
from rpc.amqp import AmqpTransport
from switchboard.devbroker import RabbitNode

pytestmark = [pytest.mark.amqp, pytest.mark.slow]

RECONNECT_INTERVAL = 1.0


class Service:
    @rpc_method
    async def echo(self, value: int) -> int:
        return value

    @rpc_method
    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"


@pytest.fixture
def own_rabbit() -> Iterator[RabbitNode]:
    node = RabbitNode()
    node.start()
    yield node
    node.close()


async def test_calls_fail_fast_during_a_broker_restart_and_succeed_after_it(own_rabbit: RabbitNode) -> None:
    settings = RpcSettings(broker_url=own_rabbit.url, reconnect_interval=RECONNECT_INTERVAL, heartbeat=2)
    server = AmqpTransport("restart-server", settings)
    client = AmqpTransport("restart-client", settings)
    await server.start()
    await client.start()
    await server.serve("restart-svc", Service())
    assert await client.call("restart-svc", "echo", {"value": 0}) == 0

    outcomes: list[tuple[float, float, str]] = []  # (start, duration, "ok" | error code)
    stop_stream = asyncio.Event()

    async def stream() -> None:
        i = 0
        while not stop_stream.is_set():
            i += 1
            started = time.monotonic()
            try:
                assert await client.call("restart-svc", "echo", {"value": i}, timeout=1.5) == i
                outcomes.append((started, time.monotonic() - started, "ok"))
            except RpcError as exc:
                outcomes.append((started, time.monotonic() - started, exc.code))
            await asyncio.sleep(0.02)

    streamer = asyncio.create_task(stream())
    await asyncio.sleep(0.5)
    in_flight = asyncio.create_task(client.call("restart-svc", "slow", {"seconds": 30}, timeout=20))
    await asyncio.sleep(0.2)

    stopped_at = time.monotonic()
    stopping = asyncio.create_task(asyncio.to_thread(own_rabbit.stop))
    with pytest.raises(RpcUnavailable):
        await in_flight
    # the in-flight call failed within 2 s of the broker starting to go away
    assert time.monotonic() - stopped_at < 2.0
    await stopping
    await asyncio.sleep(1.0)
    down_calls = [o for o in outcomes if o[0] > stopped_at + 0.5]
    assert down_calls and all(code == "unavailable" for _, _, code in down_calls), down_calls[-5:]

    await asyncio.to_thread(own_rabbit.start)
    back_at = time.monotonic()
    deadline = back_at + 15
    while time.monotonic() < deadline:
        if any(code == "ok" and start >= back_at for start, _, code in outcomes):
            break
        await asyncio.sleep(0.05)
    first_ok = min(start + dur for start, dur, code in outcomes if code == "ok" and start >= back_at)
    stop_stream.set()
    await streamer

    # No call hung: each one ended within its own timeout (plus scheduling slack).
    assert max(dur for _, dur, _ in outcomes) < 1.5 + 0.5
    # Every failure was a typed, fast "unavailable" (or a timeout right at the edge of the outage).
    assert {code for _, _, code in outcomes} <= {"ok", "unavailable", "timeout"}
    # Calls succeed again within reconnect_interval + 1 s of the broker's return.
    assert first_ok - back_at <= RECONNECT_INTERVAL + 1.0, first_ok - back_at
    # ...and keep succeeding.
    for i in range(20):
        assert await client.call("restart-svc", "echo", {"value": i}) == i
    await client.close()
    await server.close()


async def test_an_in_flight_call_fails_within_two_seconds_when_the_broker_drops_connections(
    own_rabbit: RabbitNode,
) -> None:
    settings = RpcSettings(broker_url=own_rabbit.url, reconnect_interval=RECONNECT_INTERVAL, heartbeat=2)
    server = AmqpTransport("drop-server", settings)
    client = AmqpTransport("drop-client", settings)
    await server.start()
    await client.start()
    await server.serve("drop-svc", Service())
    call = asyncio.create_task(client.call("drop-svc", "slow", {"seconds": 30}, timeout=20))
    await asyncio.sleep(0.3)
    dropped_at = time.monotonic()
    await asyncio.to_thread(own_rabbit.ctl, "close_all_connections", "test")
    with pytest.raises(RpcUnavailable):
        await call
    assert time.monotonic() - dropped_at < 2.0
    # the robust connection comes back by itself, consumers included
    deadline = time.monotonic() + RECONNECT_INTERVAL + 5
    while True:
        try:
            assert await client.call("drop-svc", "echo", {"value": 5}, timeout=1) == 5
            break
        except RpcError:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    await client.close()
    await server.close()


async def test_a_transport_started_while_the_broker_is_down_says_so(own_rabbit: RabbitNode) -> None:
    own_rabbit.stop()
    transport = AmqpTransport("early", RpcSettings(broker_url=own_rabbit.url))
    started = time.monotonic()
    with pytest.raises(RpcUnavailable):
        await transport.start()
    assert time.monotonic() - started < 5
    await transport.close()
