"""Reservations through the RPC layer: schedule, claim, lay down, linger, expiry, drain, ISP filter."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from cluster_manager import task_digest
from rpc import RpcRemoteError
from tests.support.fake_clock import FakeClock

from .conftest import MakeCluster

PORTAL_INFO = {
    "capacity": {"isps": [], "regions": []},
    "hostname": "portal-1.example",
    "port": 8080,
    "via_host": "",
    "secure": True,
    "max_load": 0.85,
}


async def _error_code(call: Awaitable[Any]) -> str:
    with pytest.raises(RpcRemoteError) as err:
        await call
    return err.value.code


async def test_reserve_claim_lay_down_linger_and_expire(make_cluster: MakeCluster) -> None:
    clock = FakeClock()
    cluster = await make_cluster(clock=clock)
    await cluster.call("join", purpose="portal", worker_id="portal-1", info=PORTAL_INFO)

    scheduled = await cluster.call("schedule", purpose="portal", task="token-1", preference={"isp": "x"}, reserve_time=10.0)
    assert scheduled == {"id": "portal-1", "info": PORTAL_INFO}
    assert await cluster.call("get_scheduled", purpose="portal", task="token-1") == scheduled
    [task] = await cluster.call("get_tasks", worker_id="portal-1")
    assert task == {"task": task_digest("token-1"), "worker": "portal-1", "state": "reserved", "expires_in": 10.0}

    assert await cluster.call("claim", purpose="portal", task="token-1", worker_id="portal-1") is None
    [task] = await cluster.call("get_tasks", worker_id="portal-1")
    assert task["state"] == "executing" and task["expires_in"] is None
    clock.advance(100)  # an executing task does not expire
    assert (await cluster.call("get_scheduled", purpose="portal", task="token-1"))["id"] == "portal-1"

    await cluster.call("lay_down_task", worker_id="portal-1", task="token-1")
    [task] = await cluster.call("get_tasks", worker_id="portal-1")
    assert task["state"] == "reserved" and task["expires_in"] == 10.0
    clock.advance(9)
    assert (await cluster.call("schedule", purpose="portal", task="token-1"))["id"] == "portal-1"  # linger: sticky

    clock.advance(60.5)
    assert await cluster.call("get_scheduled", purpose="portal", task="token-1") is None
    assert await cluster.call("get_tasks", worker_id="portal-1") == []
    assert await _error_code(cluster.call("claim", purpose="portal", task="token-1", worker_id="portal-1")) == "expired"


async def test_a_reservation_that_lapses_before_its_claim_is_expired(make_cluster: MakeCluster) -> None:
    clock = FakeClock()
    cluster = await make_cluster(clock=clock)
    await cluster.join("portal-1")
    await cluster.call("schedule", purpose="portal", task="token-1", reserve_time=5.0)
    clock.advance(5.0)
    assert await _error_code(cluster.call("claim", purpose="portal", task="token-1", worker_id="portal-1")) == "expired"
    assert await _error_code(cluster.call("claim", purpose="portal", task="never", worker_id="portal-1")) == "unknown_task"


async def test_schedule_without_a_reserve_time_uses_the_configured_default(make_cluster: MakeCluster) -> None:
    clock = FakeClock()
    cluster = await make_cluster(clock=clock, schedule_reserve_time=42.0)
    await cluster.join("portal-1")
    await cluster.call("schedule", purpose="portal", task="token-1")
    [task] = await cluster.call("get_tasks", worker_id="portal-1")
    assert task["expires_in"] == 42.0


async def test_a_claim_is_single_use(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.join("portal-1", capacity={"isps": ["isp-1"]})
    await cluster.join("portal-2", capacity={"isps": ["isp-2"]})
    await cluster.call("schedule", purpose="portal", task="token-1", reserve_time=30.0)
    where = (await cluster.call("get_scheduled", purpose="portal", task="token-1"))["id"]
    other = "portal-2" if where == "portal-1" else "portal-1"

    assert await _error_code(cluster.call("claim", purpose="portal", task="token-1", worker_id=other)) == "wrong_worker"
    await cluster.call("claim", purpose="portal", task="token-1", worker_id=where)
    assert await _error_code(cluster.call("claim", purpose="portal", task="token-1", worker_id=where)) == "already_claimed"


async def test_a_sibling_claims_a_token_of_a_portal_lost_before_or_after_it_is_noticed(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.join("portal-1", capacity={"isps": ["isp-1"], "regions": ["r1"]})
    await cluster.join("portal-2", capacity={"isps": ["isp-1"], "regions": ["r2"]})
    await cluster.call("drain", worker_id="portal-2")
    for token in ("before", "after"):
        await cluster.call("schedule", purpose="portal", task=token, reserve_time=30.0)
        assert (await cluster.call("get_scheduled", purpose="portal", task=token))["id"] == "portal-1"
    await cluster.call("undrain", worker_id="portal-2")

    await cluster.call("claim", purpose="portal", task="before", worker_id="portal-2")
    await cluster.call("quit", worker_id="portal-1")
    await cluster.call("claim", purpose="portal", task="after", worker_id="portal-2")
    assert [t["state"] for t in await cluster.call("get_tasks", worker_id="portal-2")] == [
        "executing", "executing"]
    for token in ("before", "after"):
        code = await _error_code(cluster.call("claim", purpose="portal", task=token, worker_id="portal-2"))
        assert code == "already_claimed"


async def test_racing_claims_let_exactly_one_win(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.join("portal-1")
    tokens = [f"token-{i}" for i in range(20)]
    for token in tokens:
        await cluster.call("schedule", purpose="portal", task=token, reserve_time=30.0)
    other = await cluster.transports.make()

    claims = [
        transport.call(cluster.name, "claim", {"purpose": "portal", "task": token, "worker_id": "portal-1"})
        for token in tokens
        for transport in (cluster.client, other)
    ]
    outcomes = await asyncio.gather(*claims, return_exceptions=True)

    for token, pair in zip(tokens, zip(outcomes[::2], outcomes[1::2])):
        wins = [o for o in pair if o is None]
        losses = [o for o in pair if isinstance(o, RpcRemoteError)]
        assert len(wins) == 1, (token, pair)
        assert [loss.code for loss in losses] == ["already_claimed"], (token, pair)


async def test_a_drained_worker_keeps_its_tasks_and_gets_no_new_ones(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.join("conf-1", purpose="conference")
    await cluster.call("schedule", purpose="conference", task="room-old", reserve_time=30.0)
    await cluster.call("pick_up_tasks", worker_id="conf-1", tasks=["room-old"])
    await cluster.join("conf-2", purpose="conference")

    drained = await cluster.call("drain", worker_id="conf-1")
    assert drained["drained"] is True and drained["executing"] == 1

    for i in range(5):
        assert (await cluster.call("schedule", purpose="conference", task=f"room-{i}"))["id"] == "conf-2"
    assert (await cluster.call("schedule", purpose="conference", task="room-old"))["id"] == "conf-1"  # sticky
    assert [t["task"] for t in await cluster.call("get_tasks", worker_id="conf-1")] == ["room-old"]

    await cluster.call("drain", worker_id="conf-2")
    assert await _error_code(cluster.call("schedule", purpose="conference", task="room-new")) == "no_worker_available"
    assert (await cluster.call("undrain", worker_id="conf-1"))["drained"] is False
    assert (await cluster.call("schedule", purpose="conference", task="room-new"))["id"] == "conf-1"


async def test_the_isp_filter_is_hard_and_the_region_preference_soft(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster(strategies={"portal": "round-robin"})
    await cluster.join("isp-a-east", capacity={"isps": ["isp-a"], "regions": ["east"]})
    await cluster.join("isp-a-west", capacity={"isps": ["isp-a"], "regions": ["west"]})
    await cluster.join("isp-b", capacity={"isps": ["isp-b"], "regions": []})

    async def placed(task: str, preference: dict[str, str]) -> str:
        return str((await cluster.call("schedule", purpose="portal", task=task, preference=preference))["id"])

    assert {await placed(f"a{i}", {"isp": "isp-a", "region": "west"}) for i in range(4)} == {"isp-a-west"}
    assert {await placed(f"b{i}", {"isp": "isp-a", "region": "north"}) for i in range(4)} == {"isp-a-east", "isp-a-west"}
    assert {await placed(f"c{i}", {"isp": "isp-b", "region": "west"}) for i in range(4)} == {"isp-b"}
    code = await _error_code(cluster.call("schedule", purpose="portal", task="d", preference={"isp": "isp-c"}))
    assert code == "no_matching_worker"

    await cluster.join("any-isp", capacity={"isps": [], "regions": []})
    assert await placed("e", {"isp": "isp-c", "region": "west"}) == "any-isp"


async def test_unschedule_repeals_only_a_task_of_that_worker(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.join("portal-1")
    await cluster.join("conf-1", purpose="conference")
    await cluster.call("schedule", purpose="portal", task="token-1")
    await cluster.call("schedule", purpose="portal", task="token-2")

    await cluster.call("unschedule", worker_id="conf-1", task="token-1")
    assert await cluster.call("get_scheduled", purpose="portal", task="token-1") is not None
    await cluster.call("unschedule", worker_id="portal-1", task="token-1")
    assert await cluster.call("get_scheduled", purpose="portal", task="token-1") is None
    code = await _error_code(cluster.call("unschedule", purpose="conference", worker_id="portal-1", task="token-2"))
    assert code == "unknown_worker"
    await cluster.call("unschedule", purpose="portal", worker_id="portal-1", task="token-2")
    assert await cluster.call("get_scheduled", purpose="portal", task="token-2") is None


async def test_picked_up_tasks_are_adopted_and_other_workers_casts_arrive(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.join("conf-1", purpose="conference")
    await cluster.client.cast(cluster.name, "pick_up_tasks", {"worker_id": "conf-1", "tasks": ["room-9"]})
    await cluster.client.cast(cluster.name, "lay_down_task", {"worker_id": "conf-1", "task": "room-9"})
    [task] = await cluster.call("get_tasks", worker_id="conf-1")
    assert task["task"] == "room-9" and task["state"] == "reserved"


async def test_status_counts_workers_and_tasks_per_purpose(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.join("portal-1")
    await cluster.join("conf-1", purpose="conference")
    await cluster.call("schedule", purpose="portal", task="token-1")
    await cluster.call("pick_up_tasks", worker_id="conf-1", tasks=["room-1", "room-2"])
    status = await cluster.call("status")
    assert status["name"] == cluster.name
    assert status["state"] == "in-service" and status["freshman"] is False
    assert status["workers"] == {"portal": 1, "conference": 1}
    assert status["tasks"] == {"portal": {"reserved": 1, "executing": 0}, "conference": {"reserved": 0, "executing": 2}}
    assert status["uptime"] >= 0


async def test_a_purpose_nobody_joined_has_no_worker(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    assert await _error_code(cluster.call("schedule", purpose="sip", task="call-1")) == "no_worker_available"
    assert await cluster.call("get_scheduled", purpose="sip", task="call-1") is None
    assert await cluster.call("get_workers", purpose="sip") == []
