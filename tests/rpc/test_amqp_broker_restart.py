"""The RabbitMQ transport across a broker restart: nothing hangs, failures are fast, service resumes.

No assertion here reads a clock: every call has a timeout far longer than the test could need, so
a call that ends with ``RpcUnavailable`` ended because the transport saw the connection go (the
message says which path failed it), never because it waited; a hung call ends as ``RpcTimeout``
and fails the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from rpc import RpcConnectionLost, RpcError, RpcNoService, RpcSettings, RpcUnavailable, rpc_method
from rpc.amqp import AmqpTransport
from switchboard.devbroker import RabbitNode
from tests.support.processes import free_port
from tests.support.tcp_cut import CutProxy
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp, pytest.mark.slow]

RECONNECT_INTERVAL = 1.0
#: Longer than any of these tests may take: only a detected failure can end such a call early.
LONG = 90.0


class Service:
    @rpc_method
    async def echo(self, value: int) -> int:
        return value

    @rpc_method
    async def slow(self, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "done"


async def test_calls_fail_fast_during_a_broker_restart_without_an_outage_wait_and_succeed_after_it(
        own_rabbit: RabbitNode) -> None:
    settings = RpcSettings(broker_url=own_rabbit.url, reconnect_interval=RECONNECT_INTERVAL, heartbeat=2,
                           outage_wait=0)
    server = AmqpTransport("restart-server", settings)
    client = AmqpTransport("restart-client", settings)
    await server.start()
    await client.start()
    await server.serve("restart-svc", Service())
    assert await client.call("restart-svc", "echo", {"value": 0}) == 0

    outcomes: list[tuple[str, str]] = []  # (phase when the call started, "ok" | error code)
    phase = "up"
    stop_stream = asyncio.Event()

    async def stream() -> None:
        i = 0
        while not stop_stream.is_set():
            i += 1
            started_in = phase
            try:
                assert await client.call("restart-svc", "echo", {"value": i}, timeout=LONG) == i
                outcomes.append((started_in, "ok"))
            except RpcError as exc:
                outcomes.append((started_in, exc.code))
            await asyncio.sleep(0.02)  # pacing only: a call every 20 ms, not a wait for anything

    streamer = asyncio.create_task(stream())
    await wait_until(lambda: len(outcomes) >= 5, what="calls before the restart")
    in_flight = asyncio.create_task(client.call("restart-svc", "slow", {"seconds": LONG}, timeout=LONG))
    await wait_until(lambda: client._pending, what="the slow call to be in flight")

    stopping = asyncio.create_task(asyncio.to_thread(own_rabbit.stop))
    with pytest.raises(RpcUnavailable) as info:
        await in_flight
    # failed by the connection loss (not by its 90 s timeout)
    assert info.value.message.startswith("broker connection lost"), info.value.message
    phase = "down"
    await stopping
    await wait_until(lambda: sum(1 for p, _ in outcomes if p == "down") >= 3, what="calls while the broker is down")
    assert {code for p, code in outcomes if p == "down"} == {"unavailable"}

    phase = "restarting"
    await asyncio.to_thread(own_rabbit.start)
    phase = "back"
    await wait_until(lambda: ("back", "ok") in outcomes, timeout=60, what="a call to succeed after the restart")
    stop_stream.set()
    await streamer

    # No call hung (a hung call ends as a timeout); every failure was a typed "unavailable".
    assert {code for _, code in outcomes} == {"ok", "unavailable"}
    # The same robust connections came back by themselves (no new transport), consumers included.
    assert (client.reconnects, server.reconnects) == (1, 1)
    for i in range(20):
        assert await client.call("restart-svc", "echo", {"value": i}, timeout=LONG) == i
    await client.close()
    await server.close()


async def test_without_an_outage_wait_a_call_is_not_sent_while_the_connection_is_being_restored(
        own_rabbit: RabbitNode) -> None:
    # Between a reconnection and the end of its restore (``_on_reconnected``), the caller's reply queue
    # may not be declared yet: a request sent then would have its reply dropped and its caller would
    # wait out its whole timeout (seen once in CI as a call hanging after a broker restart).  That
    # window is hard to hit from outside, so the transport is put in it directly.
    settings = RpcSettings(broker_url=own_rabbit.url, reconnect_interval=RECONNECT_INTERVAL, outage_wait=0)
    server = AmqpTransport("restoring-server", settings)
    client = AmqpTransport("restoring-client", settings)
    await server.start()
    await client.start()
    try:
        await server.serve("restoring-svc", Service())
        assert await client.call("restoring-svc", "echo", {"value": 1}, timeout=LONG) == 1
        client._restored.clear()
        with pytest.raises(RpcUnavailable) as info:
            await client.call("restoring-svc", "echo", {"value": 2}, timeout=LONG)
        assert info.value.message == "broker connection is being restored"
        client._restored.set()
        assert await client.call("restoring-svc", "echo", {"value": 3}, timeout=LONG) == 3
    finally:
        await client.close()
        await server.close()


async def test_calls_casts_and_events_made_during_a_broker_restart_wait_for_it_and_succeed(
        own_rabbit: RabbitNode) -> None:
    settings = RpcSettings(broker_url=own_rabbit.url, reconnect_interval=RECONNECT_INTERVAL, heartbeat=2,
                           outage_wait=LONG)
    server = AmqpTransport("wait-server", settings)
    client = AmqpTransport("wait-client", settings)
    await server.start()
    await client.start()
    service = Service()
    await server.serve("wait-svc", service)
    heard: list[object] = []

    async def on_event(topic: str, payload: object) -> None:
        heard.append(payload)

    await server.subscribe_events("wait.#", on_event)
    assert await client.call("wait-svc", "echo", {"value": 0}) == 0

    await asyncio.to_thread(own_rabbit.stop)
    await wait_until(lambda: not client.connected, what="the client to see the loss")
    # Made while the broker is down: each waits for it instead of failing.
    calls = [asyncio.create_task(client.call("wait-svc", "echo", {"value": i}, timeout=LONG)) for i in range(1, 6)]
    event = asyncio.create_task(client.publish_event("wait.one", {"n": 1}))
    await asyncio.sleep(0)
    assert not any(call.done() for call in calls) and not event.done()
    await asyncio.to_thread(own_rabbit.start)
    assert await asyncio.gather(*calls) == [1, 2, 3, 4, 5]
    await event  # published once the client's connection was back, not failed
    # Events are at most once: one published before the subscriber's queue is declared again on the
    # restarted broker has nowhere to go (their users number them and resync on a gap). What must hold
    # is that the subscription itself comes back: an event published once the server is restored is heard.
    await wait_until(lambda: server.reconnects == 1, timeout=60, what="the server's consumers restored")
    await client.publish_event("wait.two", {"n": 2})
    await wait_until(lambda: {"n": 2} in heard, timeout=30, what="the event heard")
    assert heard in ([{"n": 1}, {"n": 2}], [{"n": 2}]), heard
    await client.close()
    await server.close()


async def test_a_call_waits_no_longer_than_the_outage_wait(own_rabbit: RabbitNode) -> None:
    settings = RpcSettings(broker_url=own_rabbit.url, reconnect_interval=RECONNECT_INTERVAL, heartbeat=2,
                           outage_wait=0.5)
    client = AmqpTransport("short-wait-client", settings)
    await client.start()
    await asyncio.to_thread(own_rabbit.stop)
    await wait_until(lambda: not client.connected, what="the client to see the loss")
    with pytest.raises(RpcUnavailable) as info:
        await client.call("nobody", "echo", {"value": 1}, timeout=LONG)
    assert info.value.message == "broker unavailable (waited 0.5 s for it)"
    with pytest.raises(RpcUnavailable):
        await client.cast("nobody", "echo", {"value": 1})
    await client.close()
    await asyncio.to_thread(own_rabbit.start)


async def test_an_in_flight_call_fails_at_once_when_the_broker_drops_connections(own_rabbit: RabbitNode) -> None:
    settings = RpcSettings(broker_url=own_rabbit.url, reconnect_interval=RECONNECT_INTERVAL, heartbeat=2)
    server = AmqpTransport("drop-server", settings)
    client = AmqpTransport("drop-client", settings)
    await server.start()
    await client.start()
    await server.serve("drop-svc", Service())
    call = asyncio.create_task(client.call("drop-svc", "slow", {"seconds": LONG}, timeout=LONG))
    await wait_until(lambda: client._pending, what="the slow call to be in flight")
    await asyncio.to_thread(own_rabbit.ctl, "close_all_connections", "test")
    with pytest.raises(RpcConnectionLost) as info:  # it may have reached the service: not "no service"
        await call
    assert info.value.message.startswith("broker connection lost"), info.value.message

    # the robust connection comes back by itself, consumers included
    async def echoes() -> bool:
        try:
            return bool(await client.call("drop-svc", "echo", {"value": 5}, timeout=LONG) == 5)
        except RpcUnavailable:
            return False

    await wait_until(echoes, timeout=60, interval=0.1, what="the service to answer again")
    assert (client.reconnects, server.reconnects) == (1, 1)
    await client.close()
    await server.close()


async def test_a_transport_started_while_the_broker_is_down_says_so(own_rabbit: RabbitNode) -> None:
    own_rabbit.stop()
    transport = AmqpTransport("early", RpcSettings(broker_url=own_rabbit.url))
    with pytest.raises(RpcUnavailable) as info:
        await transport.start()
    assert info.value.message.startswith("cannot connect to the broker"), info.value.message
    await transport.close()


@pytest.mark.parametrize("outage_wait", [LONG, 0.5])
async def test_a_call_right_after_a_restart_waits_for_its_server_to_declare_its_queue_again(
        own_rabbit: RabbitNode, outage_wait: float) -> None:
    # The server reaches the broker through a proxy that stays cut until the call is made: when the
    # client is back, the server's service queue (not durable) is not.
    proxy = CutProxy(free_port(), own_rabbit.port)
    await proxy.start()
    server = AmqpTransport("late-server", RpcSettings(broker_url=f"amqp://guest:guest@127.0.0.1:{proxy.listen_port}/",
                                                      reconnect_interval=0.2, heartbeat=2))
    client = AmqpTransport("early-client", RpcSettings(broker_url=own_rabbit.url, reconnect_interval=0.2,
                                                        heartbeat=2, outage_wait=outage_wait))
    await server.start()
    await client.start()
    await server.serve("late-svc", Service())
    assert await client.call("late-svc", "echo", {"value": 0}) == 0
    proxy.cut()
    await asyncio.to_thread(own_rabbit.restart)
    await wait_until(lambda: client.reconnects == 1, timeout=30, what="the client back")
    call = asyncio.create_task(client.call("late-svc", "echo", {"value": 1}, timeout=LONG))
    if outage_wait == LONG:  # it waits (the message went to nobody, so it is sent again) and is answered
        await wait_until(lambda: client.unroutable > 0, what="the call sent to nobody at first")
        proxy.restore()
        assert await call == 1
    else:  # past the outage wait it is a fast "no service", as without a restart
        with pytest.raises(RpcNoService):
            await call
        proxy.restore()
    await client.close()
    await server.close()
    await proxy.stop()
