"""Switching a cluster's room journal from ``stream`` (one stream per room) to ``holder`` with live rooms
(docs/holder-journal.md, "Switching a cluster"): a controller restarted with ``journal.kind = "holder"``
takes over a room the stream journal wrote, when the stream-journal controller holding it dies; and the
documented procedure, a holder-journal controller added and every stream-journal controller drained."""

from __future__ import annotations

import sys
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


async def test_the_switch_procedure_drains_the_stream_journal_controllers_into_a_holder_journal_one(
        process_cluster: Callable[..., ProcessCluster]) -> None:
    cluster = process_cluster(portals=1, controllers=2, env_overrides={
        "SWITCHBOARD_JOURNAL__KIND": "stream", "SWITCHBOARD_JOURNAL__STREAM__PREFIX": f"sw{uuid.uuid4().hex[:8]}."})
    await cluster.start()
    rooms = ("r1", "r2", "r3")
    clients = {room: [await _join(cluster, room, f"{room}-{n}") for n in range(2)] for room in rooms}
    for room, (first, second) in clients.items():
        assert (await first.next_event("participant", timeout=10)).data["action"] == "join"
        await first.send_text("all", f"{room} before")
        for client in (first, second):
            assert await _text(client) == f"{room} before"
    stream_controllers = {name: await cluster.worker_id(name) for name in ("controller-1", "controller-2")}
    # 2. a holder-journal controller joins (same broker, same prefix)
    cluster._add("controller-3", [sys.executable, "-m", "switchboard", "controller", "--broker", cluster.broker_url],
                 observe=True)
    cluster.roles["controller-3"].start({**cluster.env, "SWITCHBOARD_JOURNAL__KIND": "holder"})

    async def registered() -> bool:
        try:
            worker = await cluster.worker_id("controller-3")
        except RuntimeError:
            return False
        return any(w["id"] == worker for w in await cluster.admin("get_workers"))

    await wait_until(registered, timeout=30, interval=0.2, what="controller-3 registered")
    holder = await cluster.worker_id("controller-3")
    # 3. every stream-journal controller drained, one after the other: a room may move to the other stream one
    #    first (stream to stream), in the end every room is on the holder one
    for name, worker in stream_controllers.items():
        await cluster.admin("drain", worker_id=worker)

        def exited(name: str = name) -> bool:
            process = cluster.roles[name].proc
            return process is not None and process.poll() is not None

        await wait_until(exited, timeout=60, interval=0.5, what=f"the drained {name} exited")
    assert [cluster.roles[name].proc.poll() for name in stream_controllers] == [0, 0]  # type: ignore[union-attr]
    assert sorted(t["task"] for t in await cluster.admin("get_tasks", worker_id=holder)) == list(rooms)
    for room, (first, second) in clients.items():
        await _send_when_served(first, f"{room} after")
        for client in (first, second):
            assert await _text(client) == f"{room} after"
            assert client.reconnections == 0 and client.state == "ready"
            assert client.duplicates == 0 and client.out_of_order == 0
            assert client.drain_events("drop") == [] and client.drain_events("participant") == []
    newcomer = await _join(cluster, "r1", "late")
    assert {"r1-0", "r1-1"} <= {str(p.get("user")) for p in newcomer.room.get("participants", [])}
    for pair in clients.values():
        for client in pair:
            await client.leave()
    await newcomer.leave()
