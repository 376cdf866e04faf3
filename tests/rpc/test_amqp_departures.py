"""Departures on RabbitMQ without the broker's event exchange: the transport says it cannot tell
(the cluster manager then relies on keepalives) and keeps working."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rpc import RpcSettings, rpc_method
from rpc.amqp import AmqpTransport
from switchboard.devbroker import RabbitNode

pytestmark = [pytest.mark.amqp, pytest.mark.slow]


class _Echo:
    @rpc_method
    async def echo(self, value: int) -> int:
        return value


@pytest.fixture
def rabbit_without_plugins() -> Iterator[RabbitNode]:
    node = RabbitNode(plugins=())
    node.start()
    yield node
    node.close()


async def test_without_the_event_exchange_departures_are_not_watched_and_calls_go_on(
    rabbit_without_plugins: RabbitNode,
) -> None:
    transport = AmqpTransport("no-plugin", RpcSettings(broker_url=rabbit_without_plugins.url))
    await transport.start()
    try:
        seen: list[str] = []
        assert await transport.watch_departures(seen.append) is False
        await transport.serve("echo-svc", _Echo())
        assert await transport.call("echo-svc", "echo", {"value": 3}) == 3
        assert transport.connected
    finally:
        await transport.close()
