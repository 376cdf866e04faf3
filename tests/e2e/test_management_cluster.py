"""The management API in cluster mode: real processes on RabbitMQ, rooms on either of two
controllers; the token API reaches whichever holds a room, also after it moved (its controller
killed)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from switchboard.client import Client
from tests.support.processes import ProcessCluster
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp]

ROOMS = [f"managed-{n}" for n in range(4)]


async def _api(cluster: ProcessCluster, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session:
        async with session.request(method, cluster.api_url + path, json=body, headers=cluster.service_headers) as resp:
            try:
                return resp.status, await resp.json(content_type=None)
            except ValueError:
                return resp.status, await resp.text()


async def _holders(cluster: ProcessCluster) -> dict[str, str]:
    """room → the controller process holding it."""
    found: dict[str, str] = {}
    for name in ("controller-1", "controller-2"):
        if cluster.roles[name].proc is None or cluster.roles[name].proc.poll() is not None:  # type: ignore[union-attr]
            continue
        worker = await cluster.worker_id(name)
        for task in await cluster.admin("get_tasks", worker_id=worker):
            found[task["task"]] = name
    return found


async def test_participants_texts_and_drops_reach_the_rooms_on_either_controller_and_after_a_move(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = process_cluster(portals=1, controllers=2, env_overrides={
        "SWITCHBOARD_CLUSTER_MANAGER__STRATEGIES": '{"conference": "round-robin"}'})
    await cluster.start()
    clients: dict[str, list[Client]] = {}
    try:
        for room in ROOMS:
            clients[room] = [await Client.join(cluster.api_url, api_headers=cluster.service_headers, room=room,
                                               user=f"{who}-{room}", role="presenter") for who in ("ann", "ben")]
        holders = await _holders(cluster)
        assert set(holders.values()) == {"controller-1", "controller-2"}, holders  # rooms on both

        for room, (ann, ben) in clients.items():
            status, listed = await _api(cluster, "GET", f"/v1/rooms/{room}/participants")
            assert status == 200 and {p["id"] for p in listed} == {ann.id, ben.id}, (room, listed)
            assert await _api(cluster, "POST", f"/v1/rooms/{room}/messages", {"message": f"hi {room}"}) == (
                200, {"to": "all", "delivered_to": 2})
            for client in (ann, ben):
                assert (await client.next_event("text", timeout=15)).data == {
                    "from": "server", "to": "all", "message": f"hi {room}"}

        # The controller holding ROOMS[0] dies: the room moves, and the API follows it.
        moved = ROOMS[0]
        cluster.kill(holders[moved])
        ann, ben = clients[moved]
        async def served_elsewhere() -> bool:
            now = await _holders(cluster)
            return now.get(moved) not in (None, holders[moved])

        await wait_until(served_elsewhere, timeout=45, interval=0.5, what="the room served by the survivor")
        status, answer = await _api(cluster, "POST", f"/v1/rooms/{moved}/messages", {"to": ben.id, "message": "moved"})
        assert (status, answer) == (200, {"to": ben.id, "delivered_to": 1}), answer
        assert (await ben.next_event("text", timeout=15)).data == {"from": "server", "to": "me", "message": "moved"}
        status, text = await _api(cluster, "DELETE", f"/v1/rooms/{moved}/participants/{ben.id}")
        assert (status, text) == (200, "Participant deleted")
        await ben.next_event("drop", timeout=15)
        status, listed = await _api(cluster, "GET", f"/v1/rooms/{moved}/participants")
        assert status == 200 and [p["id"] for p in listed] == [ann.id]
    except BaseException:
        print(cluster.logs_tail(4000))
        raise
    finally:
        for pair in clients.values():
            for client in pair:
                with contextlib.suppress(Exception):
                    await client.close()


async def test_streams_are_listed_and_ended_through_the_api_on_either_controller(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    """With a media agent: a published stream is listed (as participants see it) and ended by
    ``DELETE`` — its owner's publication ends and everyone is told — whichever controller holds it."""
    cluster = process_cluster(portals=1, controllers=2, media_agents=1, env_overrides={
        "SWITCHBOARD_CLUSTER_MANAGER__STRATEGIES": '{"conference": "round-robin"}'})
    await cluster.start()
    clients: list[Client] = []
    try:
        rooms = ("streams-a", "streams-b")
        for room in rooms:
            clients += [await Client.join(cluster.api_url, api_headers=cluster.service_headers, room=room,
                                          user=f"{who}-{room}", role="presenter") for who in ("pub", "watch")]
        assert {(await cluster.holder_of(room))[0] for room in rooms} == {"controller-1", "controller-2"}
        for n, room in enumerate(rooms):
            publisher, watcher = clients[2 * n], clients[2 * n + 1]
            session = await publisher.publish({"tracks": [{"type": "video", "source": "camera"}]})
            await publisher.request("soac", {"id": session["transportId"],
                                             "signaling": {"type": "offer", "sdp": "v=0 offer"}})
            added = (await watcher.next_event("stream", timeout=30)).data
            assert added["status"] == "add"
            status, listed = await _api(cluster, "GET", f"/v1/rooms/{room}/streams")
            assert status == 200 and listed == [added["data"]], listed
            assert await _api(cluster, "GET", f"/v1/rooms/{room}/streams/{session['id']}") == (200, added["data"])
            assert await _api(cluster, "DELETE", f"/v1/rooms/{room}/streams/{session['id']}") == (200, "Stream deleted")
            removed = (await watcher.next_event("stream", timeout=30)).data
            assert removed == {"id": session["id"], "status": "remove"}
            assert await _api(cluster, "GET", f"/v1/rooms/{room}/streams") == (200, [])
            assert (await _api(cluster, "DELETE", f"/v1/rooms/{room}/streams/{session['id']}"))[0] == 404
    except BaseException:
        print(cluster.logs_tail(4000))
        raise
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
