"""A controller drained, then two killed in turn, under a steady load, and nobody notices (issue:
room journal).

A cluster of real processes on RabbitMQ (cluster manager, token API, one portal, four controllers,
one media agent) with 24 clients in 4 rooms: per room two Python library clients with the
switchboard extension (one sending numbered texts all along, the other publishing), one library
client speaking plain OWT (subscribed to the room's stream), one bare python-socketio client
speaking plain OWT, one library client *held* (its socket lost) at the moment of each kill, and one
that goes away for good at the first kill.  Before each fault the publishing client starts a
publication, and the plain library client a subscription to the room's first stream, that they
finish only after the fault (mid-publish).  First the controller holding the most
rooms is drained (`switchboard admin drain`: it moves its rooms and exits 0), then the busiest one is
killed (`kill -9`) and, once its rooms are served again, the next one.

Counted for every text the server acknowledged: extension clients got it exactly once and in order,
plain clients at least once; nobody was dropped or told of a leave or a join, but for the client
that went away, which left only after its hold window.  Every held client relogged within its hold
window, measured on the server (the controllers' JSON log events).  Every stream stayed, and every
publication started before a fault was finished and announced after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from switchboard.client import Client, ClientError, ClientSettings
from tests.support.chaos import Chaos
from tests.support.media_agent import agent_lines
from tests.support.numbered_texts import send_numbered
from tests.support.processes import ProcessCluster
from tests.support.sockets import RecordingClient
from tests.support.waiting import wait_until

ROOMS = ("room-a", "room-b", "room-c", "room-d")
#: The hold window (``reconnection_timeout``), long enough for a takeover on a loaded machine.
HOLD = 20.0
#: A held client's first relogin waits 0.75–2.25 s: it comes after the kill that follows its hold.
HELD = ClientSettings(reconnection_delay=1.5)
VIDEO = {"tracks": [{"type": "video", "source": "camera"}]}


@dataclass
class Room:
    name: str
    sender: Client
    extension: Client
    plain: Client
    bare: RecordingClient
    held: Client
    gone: Client
    acked: list[str] = field(default_factory=list)
    #: Texts whose send failed (the moment of a move): the server may still have taken them.
    unsure: set[str] = field(default_factory=set)
    #: The streams announced in the room, in order (the first one ready before any fault).
    streams: list[str] = field(default_factory=list)
    #: The publication and the subscription (to the first stream) started before the fault under
    #: way: ``{id, transportId}`` each.
    pending: dict[str, Any] = field(default_factory=dict)
    pending_subscription: dict[str, Any] = field(default_factory=dict)

    @property
    def library(self) -> list[Client]:
        return [self.sender, self.extension, self.plain, self.held]


async def _join(cluster: ProcessCluster, room: str, user: str, extension: bool = True,
                settings: ClientSettings | None = None) -> Client:
    return await Client.join(cluster.api_url, api_headers=cluster.service_headers, room=room, user=user,
                             role="presenter", extension=extension, settings=settings)


async def _room(cluster: ProcessCluster, name: str) -> Room:
    sender = await _join(cluster, name, f"{name}-sender")
    extension = await _join(cluster, name, f"{name}-ext")
    plain = await _join(cluster, name, f"{name}-plain", extension=False)
    held = await _join(cluster, name, f"{name}-held", settings=HELD)
    gone = await _join(cluster, name, f"{name}-gone")
    token = await _token(cluster, name, f"{name}-bare")
    bare = await RecordingClient(cluster.portal_url(1)).connect()
    await bare.login_ok(token)
    return Room(name, sender, extension, plain, bare, held, gone)


async def _token(cluster: ProcessCluster, room: str, user: str) -> str:
    from switchboard.client.tokens import mint_token

    return await mint_token(cluster.api_url, room, user, "presenter", headers=cluster.service_headers)


async def _progress(client: Client, transport_id: str, status: str) -> dict[str, Any]:
    while True:
        data: dict[str, Any] = (await client.next_event("progress", timeout=30)).data
        if data["id"] == transport_id and data["status"] == status:
            return data


async def _negotiate(client: Client, session: dict[str, Any]) -> None:
    """Send the offer of ``session`` (again while its room is moving: a request then may be
    refused) and wait for its answer and its ``ready``."""
    async def offered() -> bool:
        try:
            await client.request("soac", {"id": session["transportId"],
                                          "signaling": {"type": "offer", "sdp": "v=0 offer"}})
        except ClientError:
            return False
        return True
    await wait_until(offered, timeout=30, what="the offer taken")
    await _progress(client, session["transportId"], "soac")
    assert (await _progress(client, session["transportId"], "ready"))["sessionId"] == session["id"]


async def _with_media(room: Room) -> None:
    """The publishing client's stream, ready, and the plain client's subscription to it, ready."""
    stream = await room.extension.publish(VIDEO)
    await _negotiate(room.extension, stream)
    room.streams.append(stream["id"])
    watching = await room.plain.subscribe({"tracks": [{"type": "video", "from": stream["id"]}]})
    await _negotiate(room.plain, watching)


async def _start_publishing(rooms: list[Room]) -> None:
    """Mid-publish at the fault: a publication and a subscription started, not negotiated."""
    for room in rooms:
        room.pending = await room.extension.publish(VIDEO)
        room.pending_subscription = await room.plain.subscribe({"tracks": [{"type": "video", "from": room.streams[0]}]})


async def _finish_publishing(rooms: list[Room]) -> None:
    for room in rooms:
        await _negotiate(room.extension, room.pending)
        room.streams.append(room.pending["id"])
        await _negotiate(room.plain, room.pending_subscription)


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


async def _busiest(cluster: ProcessCluster, alive: dict[str, str]) -> str:
    load = {wid: len(await _tasks(cluster, wid)) for wid in alive}
    return max(load, key=lambda wid: load[wid])


async def _drain_busiest(cluster: ProcessCluster, alive: dict[str, str]) -> None:
    """`switchboard admin drain` the controller with the most rooms; it exits 0 once they moved."""
    drained = await _busiest(cluster, alive)
    admin = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard", "admin", "drain", drained, "--url", cluster.api_url,
        stdout=asyncio.subprocess.DEVNULL, env={**cluster.env, "SWITCHBOARD_ADMIN_KEY": cluster.admin_key})
    assert await admin.wait() == 0
    process = cluster.roles[alive.pop(drained)].proc
    assert process is not None
    await wait_until(lambda: process.poll() is not None, timeout=60, what="the drained controller's exit")
    assert process.returncode == 0, "the drained controller exits 0 once it holds no room"
    await _served_again(cluster, drained, list(alive))


async def _kill_busiest(cluster: ProcessCluster, alive: dict[str, str], held: list[Client]) -> tuple[str, float]:
    """Hold ``held`` (their sockets lost), kill -9 the controller with the most rooms, let the held
    clients relog while the rooms move, and wait until every room is served again; the dead one's
    id and the wall-clock time of the kill."""
    dead = await _busiest(cluster, alive)
    holds = len(cluster.log_events("participant_held"))
    for client in held:
        await client.drop_transport()  # held at the moment of the kill (it relogs on its own, later)
    await wait_until(lambda: len(cluster.log_events("participant_held")) >= holds + len(held), timeout=10,
                     what="the holds")
    killed_at = time.time()
    cluster.kill(alive.pop(dead))
    await _served_again(cluster, dead, list(alive))
    return dead, killed_at


def _recovery(cluster: ProcessCluster, kills: list[tuple[str, float]]) -> tuple[float, float]:
    """The longest detection (kill to the dead controller removed) and the longest recovery (removed
    to the last of its rooms recovered elsewhere) over ``kills``, from the roles' JSON log events."""
    detected, recovered = 0.0, 0.0
    for (dead, killed_at), until in zip(kills, [*(at for _, at in kills[1:]), float("inf")]):
        (removed,) = [float(e["ts"]) for e in cluster.log_events("worker_removed") if e["worker_id"] == dead]
        back = [float(e["ts"]) for e in cluster.log_events("room_recovered") if removed <= float(e["ts"]) < until]
        detected = max(detected, removed - killed_at)
        recovered = max(recovered, max(back, default=removed) - removed)
    return detected, recovered


def _holds_kept(cluster: ProcessCluster, rooms: list[Room]) -> None:
    """On the server: every hold of a held client ended with its relogin within the hold window;
    the client that went away left after its window, and not later than a window after the last
    takeover of its room."""
    held = cluster.log_events("participant_held")
    resumed = cluster.log_events("participant_resumed")
    for room in rooms:
        holds = [e for e in held if e["participant"] == room.held.id]
        assert len(holds) == 2, (room.name, holds)
        for hold in holds:
            back = next(e for e in resumed if e["participant"] == room.held.id and e["ts"] >= hold["ts"])
            assert back["ts"] - hold["ts"] < HOLD, (room.name, hold, back)
        (gone,) = [e for e in held if e["participant"] == room.gone.id]
        (left,) = [e for e in cluster.log_events("participant_left") if e["participant"] == room.gone.id]
        assert left["ts"] >= gone["ts"] + HOLD - 0.1, (room.name, gone, left)  # the timer's own clock
        takeovers = [e["ts"] for e in cluster.log_events("room_recovered")
                     if e["room"] == room.name and gone["ts"] <= e["ts"] <= left["ts"]]
        assert left["ts"] <= max([gone["ts"], *takeovers]) + HOLD + 3, (room.name, gone, left, takeovers)


async def test_a_drain_and_two_kills_under_load_drop_lose_and_duplicate_nothing(
    process_cluster: Callable[..., ProcessCluster], chaos: Chaos,
) -> None:
    burst = chaos.scale(20, 60)  # texts acknowledged between two faults, at least
    cluster = process_cluster(portals=1, controllers=4, media_agents=1, env_overrides={
        "SWITCHBOARD_CONTROLLER__RECONNECTION_TIMEOUT": str(HOLD), "SWITCHBOARD_LOG__JSON": "true"})
    await cluster.start()
    rooms: list[Room] = []
    stop = asyncio.Event()
    senders: list[asyncio.Task[None]] = []
    try:
        rooms = [await _room(cluster, name) for name in ROOMS]
        assert sum(len(r.library) + 2 for r in rooms) == 24
        for room in rooms:  # everyone in before anything is counted; from here on, no participant event
            for _ in range(5):
                await room.sender.next_event("participant", timeout=15)
            await _with_media(room)
            await asyncio.sleep(0.5)  # the joins the later joiners' arrivals caused have reached everyone
            for client in [*room.library, room.gone]:
                client.drain_events("participant")
            room.bare.received.clear()
        alive = {await cluster.worker_id(f"controller-{n}"): f"controller-{n}" for n in (1, 2, 3, 4)}
        senders = [asyncio.create_task(send_numbered(room.sender, room.name, stop, room.acked, room.unsure)) for room in rooms]
        await wait_until(lambda: all(len(r.acked) >= 5 for r in rooms), timeout=20, what="texts flowing")

        await _start_publishing(rooms)
        await _drain_busiest(cluster, alive)
        await _finish_publishing(rooms)
        await wait_until(lambda: all(len(r.acked) >= burst for r in rooms), timeout=30, what="texts after the drain")

        await _start_publishing(rooms)
        holds = len(cluster.log_events("participant_held"))
        for room in rooms:
            await room.gone.close()  # away for good: held, and left once its hold runs out
        await wait_until(lambda: len(cluster.log_events("participant_held")) == holds + len(rooms), timeout=10,
                         what="the holds of the clients that went away")
        kills = [await _kill_busiest(cluster, alive, [r.held for r in rooms])]
        await wait_until(lambda: all(r.held.reconnections == 1 for r in rooms), timeout=30, what="held relogins")
        await _finish_publishing(rooms)
        await wait_until(lambda: all(len(r.acked) >= 2 * burst for r in rooms), timeout=30, what="texts flowing again")

        await _start_publishing(rooms)
        kills.append(await _kill_busiest(cluster, alive, [r.held for r in rooms]))
        await wait_until(lambda: all(r.held.reconnections == 2 for r in rooms), timeout=30, what="held relogins")
        await _finish_publishing(rooms)
        await wait_until(lambda: all(len(r.acked) >= 3 * burst for r in rooms), timeout=30, what="texts after both kills")
        gone = {room.gone.id for room in rooms}
        await wait_until(lambda: gone <= {e["participant"] for e in cluster.log_events("participant_left")},
                         timeout=3 * HOLD, what="the clients that went away left")
        stop.set()
        await asyncio.gather(*senders)

        _holds_kept(cluster, rooms)
        detected, recovered = _recovery(cluster, kills)
        counts = {kind: {"dropped": 0, "lost": 0, "duplicated": 0} for kind in ("extension", "plain library", "bare OWT")}
        agent = cluster.roles["agent-1"].log
        assert agent_lines(agent, "session_ended") == []  # nothing ended at the agent: every stream stayed
        for room in rooms:
            marker = f"{room.name}-end"
            await room.sender.send_text("all", marker)
            expected = [*room.acked, marker]
            for client in (room.sender, room.extension, room.held):
                got: list[str] = []
                while marker not in got:
                    got.append((await client.next_event("text", timeout=30)).data["message"])
                counts["extension"]["lost"] += len(set(expected) - set(got))
                counts["extension"]["duplicated"] += len(got) - len(set(got)) + client.duplicates
                # Every acked text exactly once, in the order sent; besides them only texts whose
                # answer the sender did not get (taken by the server, the answer lost in the move).
                assert [text for text in got if text not in room.unsure] == expected, room.name
                assert len(got) == len(set(got)) and set(got) - set(expected) <= room.unsure, room.name
                assert client.duplicates == 0 and client.out_of_order == 0
                # Every stream announced once, in order, and none removed.
                assert [(e.data["status"], e.data["id"]) for e in client.drain_events("stream")] == [
                    ("add", stream) for stream in room.streams], room.name
            got = []
            while marker not in got:
                got.append((await room.plain.next_event("text", timeout=30)).data["message"])
            counts["plain library"]["lost"] += len(set(expected) - set(got))
            counts["plain library"]["duplicated"] += len(got) - len(set(got))
            assert set(expected) <= set(got), f"{room.name}: the plain library client lost texts"
            assert {(e.data["status"], e.data["id"]) for e in room.plain.drain_events("stream")} == {
                ("add", stream) for stream in room.streams}, room.name
            await wait_until(lambda room=room, marker=marker: marker in room.bare.texts(), timeout=30)  # type: ignore[misc]
            counts["bare OWT"]["lost"] += len(set(expected) - set(room.bare.texts()))
            counts["bare OWT"]["duplicated"] += len(room.bare.texts()) - len(set(room.bare.texts()))
            assert set(expected) <= set(room.bare.texts()), f"{room.name}: the bare OWT client lost texts"
            assert {(d["status"], d["id"]) for e, d in room.bare.received if e == "stream"} == {
                ("add", stream) for stream in room.streams[1:]}, room.name  # it heard the first one before counting
            left = {"action": "leave", "data": room.gone.id}
            counts["bare OWT"]["dropped"] += int(room.bare.disconnected.is_set())
            for client in room.library:
                drops = client.drain_events("drop")
                counts["plain library" if client is room.plain else "extension"]["dropped"] += int(
                    client.state != "ready" or bool(drops))
                assert client.state == "ready", f"{room.name}: a client is {client.state}"
                assert drops == []
                assert [e.data for e in client.drain_events("participant")] == [left], room.name
            assert room.bare.participant_events() == [left] and not room.bare.disconnected.is_set()
            assert room.sender.reconnections == room.extension.reconnections == room.plain.reconnections == 0
            late = await _join(cluster, room.name, f"{room.name}-late")
            assert sorted(s["id"] for s in late.room["streams"]) == sorted(room.streams), room.name
            await late.leave()
        for kind, count in counts.items():
            chaos.record("controller drain, then kill -9 twice, under load", kind, **count, recovery_s=recovered,
                         detected_s=detected, notes=f"{len(rooms)} rooms, {sum(len(r.acked) for r in rooms)} texts acked")
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
