"""Media sessions survive the kill of their room's controller (docs/controller.md §Takeover and media).

Real processes on RabbitMQ: cluster manager, token API, one portal, two controllers and one media
agent (:mod:`tests.support.media_agent`).  alice publishes a stream that bob subscribes to (both
ready), and starts a second publication she has not negotiated yet; the room's controller is killed
(``kill -9``).  After the takeover the ready stream and the subscription are still there (nobody is
told of a removal, the agent ends nothing), and the pending publication finishes: its offer is
answered and the stream announced to everyone — the agent reports to the new holder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from switchboard.client import Client, ClientError
from tests.support.media_agent import agent_lines
from tests.support.processes import ProcessCluster
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp, pytest.mark.slow]

VIDEO = {"tracks": [{"type": "video", "source": "camera"}]}


async def _join(cluster: ProcessCluster, user: str) -> Client:
    return await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="media", user=user,
                             role="presenter")


async def _offer(client: Client, transport_id: str) -> None:
    await client.request("soac", {"id": transport_id, "signaling": {"type": "offer", "sdp": "v=0 offer"}})


async def _progress(client: Client, status: str) -> dict[str, Any]:
    while True:
        data: dict[str, Any] = (await client.next_event("progress", timeout=30)).data
        if data["status"] == status:
            return data


async def _offer_when_served(client: Client, transport_id: str) -> None:
    """The offer, sent again while the room is moving (a request then may be refused)."""
    async def sent() -> bool:
        try:
            await _offer(client, transport_id)
        except ClientError:
            return False
        return True
    await wait_until(sent, timeout=30, what="the offer taken")


async def _tasks(cluster: ProcessCluster, worker_id: str) -> list[str]:
    return [t["task"] for t in await cluster.admin("get_tasks", worker_id=worker_id) if t["state"] == "executing"]


async def test_a_takeover_keeps_ready_streams_and_subscriptions_and_finishes_a_pending_publication(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = process_cluster(portals=1, controllers=2, media_agents=1)
    await cluster.start()
    try:
        alice, bob = await _join(cluster, "alice"), await _join(cluster, "bob")
        ready = await alice.publish(VIDEO)
        await _offer(alice, ready["transportId"])
        assert (await _progress(alice, "ready"))["sessionId"] == ready["id"]
        for client in (alice, bob):
            assert (await client.next_event("stream", timeout=15)).data["status"] == "add"
        watching = await bob.subscribe({"tracks": [{"type": "video", "from": ready["id"]}]})
        await _offer(bob, watching["transportId"])
        assert (await _progress(bob, "ready"))["sessionId"] == watching["id"]
        pending = await alice.publish(VIDEO)  # started, not negotiated: not ready at the kill
        log = cluster.roles["agent-1"].log
        assert [s["session"] for s in agent_lines(log, "session_started")] == [ready["id"], watching["id"],
                                                                               pending["id"]]

        names = {name: await cluster.worker_id(name) for name in ("controller-1", "controller-2")}
        (holder,) = [name for name, wid in names.items() if "media" in await _tasks(cluster, wid)]
        (survivor,) = [wid for name, wid in names.items() if name != holder]
        cluster.kill(holder)
        await _offer_when_served(alice, pending["transportId"])

        # The pending publication finishes at the new holder: answered, ready, announced to all.
        assert (await _progress(alice, "soac"))["id"] == pending["transportId"]
        assert (await _progress(alice, "ready"))["sessionId"] == pending["id"]
        for client in (alice, bob):
            added = (await client.next_event("stream", timeout=15)).data
            assert (added["status"], added["id"]) == ("add", pending["id"])
        assert [m["controller"] for m in agent_lines(log, "controller_moved")] == [survivor]
        # The ready stream and the subscription are still there: nothing ended, nobody told.
        carol = await _join(cluster, "carol")
        assert sorted(s["id"] for s in carol.room["streams"]) == sorted([ready["id"], pending["id"]])
        assert agent_lines(log, "session_ended") == []
        await bob.unsubscribe(watching["id"])  # the new holder knows it, and tells the agent
        await wait_until(lambda: [e["session"] for e in agent_lines(log, "session_ended")] == [watching["id"]],
                         what="the subscription ended at the agent")
        for client in (alice, bob):
            assert client.drain_events("stream") == [] and client.drain_events("drop") == []
            assert client.reconnections == 0 and client.duplicates == 0 and client.out_of_order == 0
        for client in (alice, bob, carol):
            await client.leave()
    except BaseException:
        print(cluster.logs_tail())
        raise
