"""The whole flow on RabbitMQ with every role in its own process: two portals, two controllers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from switchboard.client import Client
from tests.support.processes import ProcessCluster
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp, pytest.mark.slow]


async def _texts(client: Client, count: int, timeout: float = 15.0) -> list[str]:
    return [(await client.next_event("text", timeout=timeout)).data["message"] for _ in range(count)]


async def test_relogin_on_the_other_portal_gets_exactly_the_missed_messages(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = process_cluster(portals=2, controllers=2)
    await cluster.start()
    try:
        alice = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="c1", user="alice", role="presenter", preference={"isp": "isp-1"})
        bob = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="c1", user="bob", role="presenter", preference={"isp": "isp-2"})
        assert alice.url == cluster.portal_url(1) and bob.url == cluster.portal_url(2)
        assert alice.id is not None  # a successful login sets it
        await bob.send_text(alice.id, "hi")
        assert await _texts(alice, 1) == ["hi"]
        # alice's transport closes; she will come back through the other portal.
        alice.url = cluster.portal_url(2)
        await alice.drop_transport()
        for i in range(3):
            await bob.send_text(alice.id, f"m{i}")
        assert await _texts(alice, 3) == ["m0", "m1", "m2"]
        await wait_until(lambda: alice.reconnections == 1, timeout=15)
        # nothing replayed twice: the next message is the next thing alice gets
        await bob.send_text(alice.id, "marker")
        assert await _texts(alice, 1) == ["marker"]
        assert alice.drain_events("text") == [] and alice.duplicates == 0 and alice.out_of_order == 0
        await alice.leave()
        await bob.leave()
    except BaseException:
        print(cluster.logs_tail())
        raise


async def test_when_a_portal_process_dies_its_clients_relogin_on_the_survivor_and_lose_nothing(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = process_cluster(portals=2, controllers=2, env_overrides={
        "SWITCHBOARD_CONTROLLER__RECONNECTION_TIMEOUT": "30"})
    await cluster.start()
    try:
        alice = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="c2", user="alice", role="presenter", preference={"isp": "isp-1"})
        bob = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="c2", user="bob", role="presenter", preference={"isp": "isp-1"})
        carol = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="c2", user="carol", role="presenter", preference={"isp": "isp-2"})
        await carol.send_text("all", "before")
        for c in (alice, bob, carol):
            assert await _texts(c, 1) == ["before"]
        # portal-1 dies; its clients fail over to portal-2 (as a load balancer or DNS would send them).
        alice.url = bob.url = cluster.portal_url(2)
        cluster.kill("portal-1")
        await carol.send_text("all", "during")
        await wait_until(lambda: alice.reconnections == 1 and bob.reconnections == 1, timeout=20)
        await carol.send_text("all", "after")
        for c in (alice, bob):
            assert await _texts(c, 2) == ["during", "after"]
        assert await _texts(carol, 2) == ["during", "after"]
        await carol.send_text("all", "marker")
        for c in (alice, bob, carol):
            assert await _texts(c, 1) == ["marker"]
            assert c.drain_events("text") == [] and c.duplicates == 0 and c.out_of_order == 0
            await c.leave()
    except BaseException:
        print(cluster.logs_tail())
        raise
