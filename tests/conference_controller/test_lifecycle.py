"""Delivery order, the controller's place in the cluster, and a clean stop."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

from .conftest import Env


async def test_notifications_reach_the_portal_in_seq_order(transports: TransportFactory, make_env: Any) -> None:
    env: Env = await make_env(transports)
    await env.join("p1")
    await env.join("p2")
    await asyncio.gather(*(env.call("text", participant="p2", to="all" if n % 2 else "p1", message=n)
                           for n in range(40)))
    await wait_until(lambda: len(env.portal_a.events("p1", "text")) == 40)
    seqs = [seq for seq, _, _ in env.portal_a.events("p1")]
    assert seqs == list(range(1, 42))


async def test_the_controller_joins_as_a_conference_worker(env: Env) -> None:
    assert env.cluster.workers[env.controller.worker_id]["purpose"] == "conference"
    assert env.controller.worker_id.startswith("conference-")


async def test_rooms_are_reported_again_when_the_manager_forgot_the_worker(env: Env) -> None:
    await env.join("p1")
    await wait_until(lambda: env.cluster.picked == ["room-1"])
    env.cluster.workers.clear()
    await wait_until(lambda: env.cluster.picked == ["room-1", "room-1"], timeout=5)


async def test_stop_ends_every_task_and_timer(local: TransportFactory, make_env: Any) -> None:
    env: Env = await make_env(local, reconnection_timeout=30, room_grace_period=30)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await env.call("hold", participant="p2", portal=env.portal_b.name)
    await env.join("q1", room="room-2")
    await env.call("leave", participant="q1")
    controller = env.controller
    await wait_until(lambda: controller.delivery.portals)
    await controller.stop()
    names = {task.get_name() for task in asyncio.all_tasks()}
    mine = {name for name in names if controller.worker_id in name or name.startswith("deliver:")}
    assert mine == set()
    assert all(room.grace_timer is None and not room.hold_timers for room in controller.rooms.values())


async def test_a_sender_idle_for_its_timeout_is_stopped_and_comes_back_when_needed(local: TransportFactory,
                                                                                    make_env: Any) -> None:
    env: Env = await make_env(local, sender_idle_timeout=0.2)
    await env.join("p1")
    await env.join("p2")
    controller = env.controller
    await wait_until(lambda: controller.delivery.portals == [env.portal_a.name])
    await wait_until(lambda: controller.delivery.portals == [], timeout=3)
    await wait_until(lambda: not [t for t in asyncio.all_tasks() if t.get_name() == f"deliver:{env.portal_a.name}"])
    await env.call("text", participant="p2", to="p1", message="again")
    await wait_until(lambda: env.portal_a.events("p1", "text"))
    assert controller.delivery.portals == [env.portal_a.name]
