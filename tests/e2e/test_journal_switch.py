"""Switching a cluster's room journal from ``stream`` (one stream per room) to ``holder`` with live rooms
(journal/HOLDER-WIP.md, "Switching a cluster"): a controller restarted with ``journal.kind = "holder"``
takes over a room the stream journal wrote, when the stream-journal controller holding it dies."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from switchboard.client import Client, ClientError
from tests.support.processes import ProcessCluster
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp, pytest.mark.slow]


async def _join(cluster: ProcessCluster, room: str, user: str) -> Client:
    return await Client.join(cluster.api_url, api_headers=cluster.service_headers, room=room, user=user,
                             role="presenter")


async def _text(client: Client) -> str:
    return str((await client.next_event("text", timeout=15)).data["message"])


async def _send_when_served(client: Client, text: str) -> None:
    async def sent() -> bool:
        try:
            await client.send_text("all", text)
        except ClientError:
            return False  # refused in the moment of the move: sent again
        return True

    await wait_until(sent, timeout=30, interval=0.2, what=f"{text!r} taken")


async def test_a_controller_switched_to_the_holder_journal_takes_over_a_room_the_stream_journal_wrote(
        process_cluster: Callable[..., ProcessCluster]) -> None:
    cluster = process_cluster(portals=1, controllers=2, env_overrides={
        "SWITCHBOARD_JOURNAL__KIND": "stream", "SWITCHBOARD_JOURNAL__STREAM__PREFIX": f"sw{uuid.uuid4().hex[:8]}."})
    await cluster.start()
    alice = await _join(cluster, "switched", "alice")
    bob = await _join(cluster, "switched", "bob")
    assert (await alice.next_event("participant", timeout=10)).data["action"] == "join"
    await alice.send_text("all", "before")
    for client in (alice, bob):
        assert await _text(client) == "before"
    hosting, _ = await cluster.holder_of("switched")
    (spare,) = (name for name in ("controller-1", "controller-2") if name != hosting)

    # the rolling switch: the other controller restarts with the holder journal ...
    role = cluster.roles[spare]
    role.stop()
    role.log = cluster.workdir / f"{spare}-holder.log"  # its new worker id is the first in its log
    role.start({**cluster.env, "SWITCHBOARD_JOURNAL__KIND": "holder"})

    async def registered() -> bool:
        try:
            worker = await cluster.worker_id(spare)
            return any(w["id"] == worker for w in await cluster.admin("get_workers"))
        except RuntimeError:
            return False

    await wait_until(registered, timeout=30, interval=0.2, what=f"{spare} registered again")
    # ... and the stream-journal controller holding the room dies: the room moves to the holder journal's
    cluster.kill(hosting)

    async def moved() -> bool:
        tasks = await cluster.admin("get_tasks", worker_id=await cluster.worker_id(spare))
        return any(t["task"] == "switched" for t in tasks)

    await wait_until(moved, timeout=60, interval=0.5, what="the room moved to the holder-journal controller")
    await _send_when_served(alice, "after")
    for client in (alice, bob):
        assert await _text(client) == "after"
    for client in (alice, bob):  # the room was rebuilt from the stream journal's history: nobody noticed
        assert client.reconnections == 0 and client.state == "ready"
        assert client.duplicates == 0 and client.out_of_order == 0
        assert client.drain_events("drop") == [] and client.drain_events("participant") == []
    assert alice.id is not None
    await bob.send_text(alice.id, "still here")
    assert await _text(alice) == "still here"
    carol = await _join(cluster, "switched", "carol")  # the holder controller serves a newcomer too
    # the room's state came from the stream journal's history: carol sees who was there
    assert {"alice", "bob"} <= {str(p.get("user")) for p in carol.room.get("participants", [])}, carol.room
    assert (await alice.next_event("participant", timeout=10)).data["action"] == "join"
    for client in (alice, bob, carol):
        await client.leave()
