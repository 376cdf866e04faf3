"""Controllers die under a steady load, in turn, and nobody notices (issue: room journal).

A cluster of real processes on RabbitMQ (cluster manager, token API, one portal, three controllers)
with 20 clients in 4 rooms: per room two Python library clients with the switchboard extension (one
of them sending numbered texts all along), one library client speaking plain OWT, one bare
python-socketio client speaking plain OWT, and one library client that is *held* (its socket lost)
at the moment of the kill.  The controller holding the most rooms is killed (`kill -9`), then, once
its rooms are served again, the next one.  Counted for every text the server acknowledged:
extension clients got it exactly once and in order, plain clients at least once; nobody was dropped
or told of a leave or a join.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

from switchboard.client import Client, ClientError
from tests.support.processes import ProcessCluster
from tests.support.sockets import RecordingClient
from tests.support.waiting import wait_until

ROOMS = ("room-a", "room-b", "room-c", "room-d")


@dataclass
class Room:
    name: str
    sender: Client
    extension: Client
    plain: Client
    bare: RecordingClient
    held: Client
    acked: list[str] = field(default_factory=list)
    #: Texts whose send failed (the moment of a move): the server may still have taken them.
    unsure: set[str] = field(default_factory=set)

    @property
    def library(self) -> list[Client]:
        return [self.sender, self.extension, self.plain, self.held]


async def _join(cluster: ProcessCluster, room: str, user: str, extension: bool = True) -> Client:
    return await Client.join(cluster.api_url, api_headers=cluster.service_headers, room=room, user=user,
                             role="presenter", extension=extension)


async def _room(cluster: ProcessCluster, name: str) -> Room:
    sender = await _join(cluster, name, f"{name}-sender")
    extension = await _join(cluster, name, f"{name}-ext")
    plain = await _join(cluster, name, f"{name}-plain", extension=False)
    held = await _join(cluster, name, f"{name}-held")
    token = await _token(cluster, name, f"{name}-bare")
    bare = await RecordingClient(cluster.portal_url(1)).connect()
    await bare.login_ok(token)
    return Room(name, sender, extension, plain, bare, held)


async def _token(cluster: ProcessCluster, room: str, user: str) -> str:
    from switchboard.client.tokens import mint_token

    return await mint_token(cluster.api_url, room, user, "presenter", headers=cluster.service_headers)


async def _send_all_along(room: Room, stop: asyncio.Event) -> None:
    """Numbered texts, one at a time; a text the server refused (the moment of a move) is sent again
    under a new number, so only acknowledged ones are expected anywhere."""
    n = 0
    while not stop.is_set():
        text = f"{room.name}-{n}"
        n += 1
        try:
            await room.sender.send_text("all", text)
        except ClientError:
            room.unsure.add(text)
            await asyncio.sleep(0.2)
            continue
        room.acked.append(text)
        await asyncio.sleep(0.05)


async def _tasks(cluster: ProcessCluster, worker_id: str) -> list[str]:
    return sorted(t["task"] for t in await cluster.admin("get_tasks", worker_id=worker_id) if t["state"] == "executing")


async def _served_again(cluster: ProcessCluster, dead: str, survivors: list[str]) -> None:
    for _ in range(120):
        workers = sorted(w["id"] for w in await cluster.admin("get_workers", purpose="conference"))
        hosted = [task for wid in survivors for task in await _tasks(cluster, wid)]
        if dead not in workers and sorted(hosted) == sorted(ROOMS):
            return
        await asyncio.sleep(0.5)
    raise AssertionError("the rooms were not served again")


async def _kill_busiest(cluster: ProcessCluster, alive: dict[str, str], rooms: list[Room]) -> None:
    """Hold one client per room, kill -9 the controller with the most rooms, let the held clients
    relog while the rooms move, and wait until every room is served again."""
    load = {wid: len(await _tasks(cluster, wid)) for wid in alive}
    dead = max(load, key=lambda wid: load[wid])
    for room in rooms:
        await room.held.drop_transport()  # held at the moment of the kill (it relogs on its own)
    cluster.kill(alive.pop(dead))
    await _served_again(cluster, dead, list(alive))


async def test_controllers_killed_in_turn_under_load_drop_and_lose_nothing(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = process_cluster(portals=1, controllers=3, env_overrides={
        "SWITCHBOARD_CONTROLLER__RECONNECTION_TIMEOUT": "60"})
    await cluster.start()
    rooms: list[Room] = []
    stop = asyncio.Event()
    senders: list[asyncio.Task[None]] = []
    try:
        rooms = [await _room(cluster, name) for name in ROOMS]
        assert sum(len(r.library) + 1 for r in rooms) == 20
        for room in rooms:  # everyone in before anything is counted; from here on, no participant event
            for _ in range(4):
                await room.sender.next_event("participant", timeout=15)
            await asyncio.sleep(0.5)  # the joins the later joiners' arrivals caused have reached everyone
            for client in room.library:
                client.drain_events("participant")
        alive = {await cluster.worker_id(f"controller-{n}"): f"controller-{n}" for n in (1, 2, 3)}
        senders = [asyncio.create_task(_send_all_along(room, stop)) for room in rooms]
        await wait_until(lambda: all(len(r.acked) >= 5 for r in rooms), timeout=20, what="texts flowing")

        await _kill_busiest(cluster, alive, rooms)
        await wait_until(lambda: all(r.held.reconnections == 1 for r in rooms), timeout=30, what="held relogins")
        await wait_until(lambda: all(len(r.acked) >= 30 for r in rooms), timeout=30, what="texts flowing again")
        await _kill_busiest(cluster, alive, rooms)
        await wait_until(lambda: all(r.held.reconnections == 2 for r in rooms), timeout=30, what="held relogins")
        await wait_until(lambda: all(len(r.acked) >= 55 for r in rooms), timeout=30, what="texts after both kills")
        stop.set()
        await asyncio.gather(*senders)

        for room in rooms:
            marker = f"{room.name}-end"
            await room.sender.send_text("all", marker)
            expected = [*room.acked, marker]
            for client in (room.sender, room.extension, room.held):
                got: list[str] = []
                while marker not in got:
                    got.append((await client.next_event("text", timeout=30)).data["message"])
                # Every acked text exactly once, in the order sent; besides them only texts whose
                # answer the sender did not get (taken by the server, the answer lost in the move).
                assert [text for text in got if text not in room.unsure] == expected, room.name
                assert len(got) == len(set(got)) and set(got) - set(expected) <= room.unsure, room.name
                assert client.duplicates == 0 and client.out_of_order == 0
            got = []
            while marker not in got:
                got.append((await room.plain.next_event("text", timeout=30)).data["message"])
            assert set(expected) <= set(got), f"{room.name}: the plain library client lost texts"
            await wait_until(lambda room=room, marker=marker: marker in room.bare.texts(), timeout=30)  # type: ignore[misc]
            assert set(expected) <= set(room.bare.texts()), f"{room.name}: the bare OWT client lost texts"
            for client in room.library:
                assert client.state == "ready", f"{room.name}: a client is {client.state}"
                assert client.drain_events("drop") == [] and client.drain_events("participant") == []
            assert room.bare.participant_events() == [] and not room.bare.disconnected.is_set()
            assert room.sender.reconnections == room.extension.reconnections == room.plain.reconnections == 0
    except BaseException:
        print(cluster.logs_tail(4000))
        raise
    finally:
        stop.set()
        for task in senders:
            task.cancel()
        for room in rooms:
            for client in room.library:
                with contextlib.suppress(Exception):
                    await client.close()
            await room.bare.close()
