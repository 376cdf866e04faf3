"""Two controllers drained at the same moment (docs/architecture.md §Faults, docs/operations.md
*Draining*), every role its own process on RabbitMQ with the default journal (holder): a drained controller
never takes a room another drained controller hands it (it refuses the ``take_over``, and the room
goes elsewhere), so every room ends on the live controller with nobody dropped; with no live
controller left the drains wait, the rooms served where they are, until one joins."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from switchboard.client import Client, ClientError
from tests.support.processes import ProcessCluster
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp, pytest.mark.slow]

ROOMS = [f"d{n}" for n in range(6)]

#: Round robin spreads the rooms over every controller (``last-used`` would pile them on one).
_ENV = {"SWITCHBOARD_CLUSTER_MANAGER__STRATEGIES": json.dumps({"conference": "round-robin"}),
        "SWITCHBOARD_LOG__JSON": "true"}


async def _join(cluster: ProcessCluster, room: str, user: str) -> Client:
    return await Client.join(cluster.api_url, api_headers=cluster.service_headers, room=room, user=user,
                             role="presenter")


async def _tasks(cluster: ProcessCluster, worker_id: str) -> list[str]:
    return sorted(t["task"] for t in await cluster.admin("get_tasks", worker_id=worker_id))


async def _rooms(cluster: ProcessCluster) -> dict[str, list[Client]]:
    clients = {room: [await _join(cluster, room, f"{room}-{n}") for n in range(2)] for room in ROOMS}
    for first, _ in clients.values():
        assert (await first.next_event("participant", timeout=10)).data["action"] == "join"
    return clients


async def _send_when_served(client: Client, text: str, timeout: float = 30.0) -> None:
    """Send until taken: a request in the moment of a move may be refused (an error, not a drop)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await client.send_text("all", text)
            return
        except ClientError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _each_text_once(clients: dict[str, list[Client]], tag: str) -> None:
    """A text in every room reaches both its participants exactly once; nobody was dropped, left,
    reconnected or saw anything twice."""
    for room, (a, b) in clients.items():
        await _send_when_served(a, f"{tag} {room}")
    for room, pair in clients.items():
        for client in pair:
            got = [(await client.next_event("text", timeout=15)).data["message"]]
            await asyncio.sleep(0)
            got += [e.data["message"] for e in client.drain_events("text")]
            assert got == [f"{tag} {room}"], (room, got)
            assert client.reconnections == 0 and client.state == "ready", room
            assert client.duplicates == 0 and client.out_of_order == 0, room
            assert client.drain_events("drop") == [] and client.drain_events("participant") == [], room


def _dropped_or_doubled(cluster: ProcessCluster) -> dict[str, Any]:
    """What the logs say went wrong (call it before anyone leaves): a participant gone (a hold that
    ran out), a room served by two controllers (fenced by the journal), a drain that stopped."""
    return {event: cluster.log_events(event) for event in
            ("participant_left", "room_fenced", "room_moved_away", "migration_stopped")
            if cluster.log_events(event)}


async def _drain_both(cluster: ProcessCluster, first: str, second: str) -> None:
    await asyncio.gather(cluster.admin("drain", worker_id=first), cluster.admin("drain", worker_id=second))


async def _drained_onto(cluster: ProcessCluster, names: dict[str, str], drained: tuple[str, str], live: str,
                       clients: dict[str, list[Client]]) -> None:
    """The drained controllers exit 0, ``live`` holds every room, every client gets each text once after
    the drains, nobody was dropped or served twice; then the clients leave."""
    for wid in drained:
        process = cluster.roles[names[wid]].proc
        assert process is not None
        await wait_until(lambda p=process: p.poll() is not None, timeout=60,  # type: ignore[misc]
                         what=f"{names[wid]} exits once drained")
        assert process.returncode == 0, "a drained controller exits 0 once it holds no room"
    assert await _tasks(cluster, live) == ROOMS
    await _each_text_once(clients, "after the drains")
    assert _dropped_or_doubled(cluster) == {}
    for pair in clients.values():
        for client in pair:
            await client.leave()


async def test_two_controllers_drained_at_once_move_every_room_to_the_third_and_drop_nobody(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = process_cluster(portals=1, controllers=3, env_overrides=_ENV)
    await cluster.start()
    clients: dict[str, list[Client]] = {}
    try:
        clients = await _rooms(cluster)
        names = {await cluster.worker_id(f"controller-{n}"): f"controller-{n}" for n in (1, 2, 3)}
        held = {wid: await _tasks(cluster, wid) for wid in names}
        assert sorted(room for rooms in held.values() for room in rooms) == ROOMS
        assert all(held.values()), held  # round robin: every controller has rooms
        a, b, c = sorted(names, key=lambda wid: names[wid])

        await _drain_both(cluster, a, b)
        await _drained_onto(cluster, names, (a, b), c, clients)
    except BaseException:
        print(cluster.logs_tail())
        raise


async def test_a_controller_drained_while_a_room_is_handed_to_it_passes_the_room_on(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    """The race at its narrowest: B is drained the moment A's drain placed a room on B, while B
    rebuilds it (or is about to); B must not take it and then exit without it."""
    cluster = process_cluster(portals=1, controllers=3, env_overrides=_ENV)
    await cluster.start()
    clients: dict[str, list[Client]] = {}
    try:
        clients = await _rooms(cluster)
        names = {await cluster.worker_id(f"controller-{n}"): f"controller-{n}" for n in (1, 2, 3)}
        held = {wid: await _tasks(cluster, wid) for wid in names}
        a = max(held, key=lambda wid: (len(held[wid]), wid))  # the busiest: several hand-overs
        await cluster.admin("drain", worker_id=a)
        b = c = ""
        while not b:  # the first controller A hands a room to is drained at once
            for wid in names:
                if wid != a and set(await _tasks(cluster, wid)) - set(held[wid]):
                    b = wid
                    break
        await cluster.admin("drain", worker_id=b)
        (c,) = [wid for wid in names if wid not in (a, b)]
        await _drained_onto(cluster, names, (a, b), c, clients)
    except BaseException:
        print(cluster.logs_tail())
        raise


async def test_with_no_live_controller_left_the_drains_wait_and_drop_nobody(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = process_cluster(portals=1, controllers=2, env_overrides=_ENV)
    await cluster.start()
    try:
        clients = await _rooms(cluster)
        names = {await cluster.worker_id(f"controller-{n}"): f"controller-{n}" for n in (1, 2)}
        a, b = sorted(names, key=lambda wid: names[wid])
        before = {wid: await _tasks(cluster, wid) for wid in names}

        await _drain_both(cluster, a, b)
        await asyncio.sleep(3)  # long enough for the drains to have moved rooms, had they anywhere to go
        for wid in (a, b):
            process = cluster.roles[names[wid]].proc
            assert process is not None and process.poll() is None, "a drain with nowhere to go waits"
        assert {wid: await _tasks(cluster, wid) for wid in names} == before
        assert cluster.log_events("migration_waiting"), "the drains say why they wait"
        await _each_text_once(clients, "while the drains wait")

        # A controller joins: the waiting drains move every room to it, and both exit.
        cluster._add("controller-3", cluster.roles["controller-1"].argv[:-2], observe=True)
        role = cluster.roles["controller-3"]
        role.start(cluster.env)
        for wid in (a, b):
            process = cluster.roles[names[wid]].proc
            assert process is not None
            await wait_until(lambda p=process: p.poll() is not None, timeout=60,  # type: ignore[misc]
                             what=f"{names[wid]} exits once a controller joined")
            assert process.returncode == 0
        third = await cluster.worker_id("controller-3")
        assert await _tasks(cluster, third) == ROOMS
        await _each_text_once(clients, "after the drains")
        assert _dropped_or_doubled(cluster) == {}
        for pair in clients.values():
            for client in pair:
                await client.leave()
    except BaseException:
        print(cluster.logs_tail())
        raise
