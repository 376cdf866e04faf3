"""A lost conference worker's rooms are handed to live ones, some at a time (``take_over``)."""

from __future__ import annotations

import asyncio
from typing import Any

from rpc import ServiceError, rpc_method
from tests.support.waiting import wait_until

from .conftest import MakeCluster


class FakeController:
    """Answers ``take_over`` as a controller would: rebuilt (it knows the room) or ``unknown_room``."""

    def __init__(self, known: set[str], failures: int = 0, gate: asyncio.Event | None = None) -> None:
        self.known = known
        self.taken: list[str] = []
        self.failures = failures
        #: When given, every ``take_over`` waits for it (after noting its room): the calls in flight.
        self.gate = gate
        self.in_flight = 0

    @rpc_method
    async def take_over(self, room: str) -> dict[str, Any]:
        self.taken.append(room)
        if self.gate is not None:
            self.in_flight += 1
            await self.gate.wait()
            self.in_flight -= 1
        if self.failures:
            self.failures -= 1
            raise ServiceError("controller_error", "journal unavailable")
        if room not in self.known:
            raise ServiceError("unknown_room", f"no room {room} here or in the journal")
        return {"room": room, "epoch": 2, "participants": 1}


async def _lose_worker_with_rooms(cluster: Any, rooms: list[str]) -> None:
    await cluster.join("conf-dead", purpose="conference")
    await cluster.client.cast(cluster.name, "pick_up_tasks", {"worker_id": "conf-dead", "tasks": rooms})
    # the call goes after the cast on the same queue: the tasks are there when it answers
    assert len(await cluster.call("get_tasks", worker_id="conf-dead")) == len(rooms)
    await cluster.call("quit", worker_id="conf-dead")


async def test_each_room_of_a_lost_controller_is_taken_over_by_a_live_one(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster(failover_interval=0.01)
    survivor = FakeController({"room-1", "room-2"})
    await cluster.client.serve("conf-live", survivor)
    await cluster.join("conf-live", purpose="conference")
    await _lose_worker_with_rooms(cluster, ["room-1", "room-2", "room-3"])
    await wait_until(lambda: len(survivor.taken) == 3, what="three hand-overs")
    assert sorted(survivor.taken) == ["room-1", "room-2", "room-3"]
    scheduled = [await cluster.call("get_scheduled", purpose="conference", task=room) for room in survivor.taken]
    assert [s["id"] for s in scheduled] == ["conf-live"] * 3  # sticky there now


async def test_a_refused_hand_over_is_retried_within_its_attempts(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster(failover_interval=0.01, failover_attempts=3, failover_concurrency=1)
    survivor = FakeController({"room-1", "room-2"}, failures=2)
    await cluster.client.serve("conf-live", survivor)
    await cluster.join("conf-live", purpose="conference")
    await _lose_worker_with_rooms(cluster, ["room-1", "room-2"])
    await wait_until(lambda: len(survivor.taken) == 4, what="two refusals, then both rooms")
    assert survivor.taken == ["room-1", "room-1", "room-1", "room-2"]


async def test_rooms_are_handed_over_concurrently_up_to_the_bound(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster(failover_interval=0.01, failover_concurrency=2)
    gate = asyncio.Event()
    survivor = FakeController({"room-1", "room-2", "room-3"}, gate=gate)
    await cluster.client.serve("conf-live", survivor)
    await cluster.join("conf-live", purpose="conference")
    await _lose_worker_with_rooms(cluster, ["room-1", "room-2", "room-3"])
    await wait_until(lambda: survivor.in_flight == 2, what="two hand-overs in flight at once")
    assert len(survivor.taken) == 2  # the third waits for one of them
    gate.set()
    await wait_until(lambda: len(survivor.taken) == 3 and survivor.in_flight == 0, what="the third hand-over")
    assert sorted(survivor.taken) == ["room-1", "room-2", "room-3"]


async def test_portal_tasks_are_not_handed_over(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster(failover_interval=0.01)
    other = FakeController({"token"})
    await cluster.client.serve("portal-live", other)
    await cluster.join("portal-live", purpose="portal")
    await cluster.join("portal-dead", purpose="portal")
    await cluster.client.cast(cluster.name, "pick_up_tasks", {"worker_id": "portal-dead", "tasks": ["token"]})
    events = await cluster.watch_exits()
    await cluster.call("quit", worker_id="portal-dead")
    await wait_until(lambda: events, what="the exit event")
    assert other.taken == []


class DrainingController:
    """Refuses every room with ``controller_draining``; at its first refusal it has just been
    drained (the room was placed on it a moment before) and another controller has joined."""

    def __init__(self, cluster: Any, worker_id: str) -> None:
        self.cluster = cluster
        self.worker_id = worker_id
        self.refused: list[str] = []

    @rpc_method
    async def take_over(self, room: str) -> dict[str, Any]:
        if not self.refused:
            await self.cluster.join("conf-live", purpose="conference")
            await self.cluster.call("drain", worker_id=self.worker_id)
        self.refused.append(room)
        raise ServiceError("controller_draining", "this controller is draining")

    @rpc_method
    async def migrate(self, admin_key: str = "") -> dict[str, Any]:
        return {"rooms": 0}


async def test_a_room_refused_by_a_draining_controller_is_placed_on_another(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster(failover_interval=0.01, failover_attempts=3, failover_concurrency=1)
    draining = DrainingController(cluster, "conf-draining")
    live = FakeController({"room-1"})
    await cluster.client.serve("conf-draining", draining)
    await cluster.client.serve("conf-live", live)
    await cluster.join("conf-draining", purpose="conference")
    await _lose_worker_with_rooms(cluster, ["room-1"])
    await wait_until(lambda: live.taken == ["room-1"], what="the room handed to the live controller")
    assert draining.refused == ["room-1"]
    assert (await cluster.call("get_scheduled", purpose="conference", task="room-1"))["id"] == "conf-live"
