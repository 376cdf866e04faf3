"""A standby's replica of the registry equals the active manager's after random operations."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec
import pytest

from cluster_manager.changes import WorkerRemoved
from cluster_manager.replication import ChangeBatch, Replica, changes_topic
from rpc import RpcRemoteError
from tests.support.fake_clock import FakeClock
from tests.support.waiting import wait_until

from .conftest import ADMIN_KEY, Cluster, MakeCluster

_PURPOSES = ("portal", "conference")


async def _random_operations(
    cluster: Cluster, clock: FakeClock, rng: random.Random, count: int, replica: Replica | None = None
) -> None:
    """Joins, quits, loads, states, drains, schedules, claims, pick-ups, lay-downs, unschedules and
    the clock moving on, in a random order; refused calls are part of the mix.  The clock moves
    only once ``replica`` holds every change: a reservation's deadline is counted from when a
    process applies it, so a clock moved in between would (rightly) put the copies apart."""
    for _ in range(count):
        worker = f"{rng.choice(_PURPOSES)}-{rng.randrange(4)}"
        purpose = worker.split("-")[0]
        task = f"{purpose}-task-{rng.randrange(12)}"
        operation = rng.randrange(12)
        try:
            if operation == 0:
                await cluster.join(worker, purpose, max_load=rng.choice([0.5, 0.9]))
            elif operation == 1:
                await cluster.call("quit", worker_id=worker)
            elif operation == 2:
                await cluster.call("report_load", worker_id=worker, load=rng.random())
            elif operation == 3:
                await cluster.call("report_state", worker_id=worker, state=rng.choice([0, 2, "available"]))
            elif operation == 4:
                await cluster.call(rng.choice(["drain", "undrain"]), worker_id=worker)
            elif operation in (5, 6):
                await cluster.call("schedule", purpose=purpose, task=task, reserve_time=rng.choice([None, 5.0, 30.0]))
            elif operation == 7:
                await cluster.call("claim", purpose=purpose, task=task, worker_id=worker)
            elif operation == 8:
                await cluster.call("pick_up_tasks", worker_id=worker, tasks=[task])
            elif operation == 9:
                await cluster.call("lay_down_task", worker_id=worker, task=task)
            elif operation == 10:
                await cluster.call("unschedule", worker_id=worker, task=task)
            else:
                if replica is not None:
                    await _caught_up(cluster, replica)
                clock.advance(rng.choice([1.0, 4.0, 10.0]))
        except RpcRemoteError:
            pass


async def _caught_up(cluster: Cluster, replica: Replica) -> None:
    feed = cluster.manager._feed
    assert feed is not None
    await wait_until(lambda: replica.synced and replica.seq == feed.seq, what="replica caught up")


async def test_a_replica_equals_the_active_registry_after_random_operations(make_cluster: MakeCluster) -> None:
    clock = FakeClock()
    cluster = await make_cluster(clock=clock, replication=True, replication_batch=7, failover_purposes=[],
                                 strategies={"portal": "randomly-pick", "conference": "round-robin"})
    rng = random.Random(20261204)
    await _random_operations(cluster, clock, rng, 150)
    replica = Replica(await cluster.transports.make(), cluster.manager.settings, clock=clock, admin_key=ADMIN_KEY)
    # The replica starts (snapshot, then changes) while the operations go on.
    await asyncio.gather(replica.start(), _random_operations(cluster, clock, rng, 150, replica))
    await _random_operations(cluster, clock, rng, 300, replica)
    try:
        await _caught_up(cluster, replica)
        active = cluster.manager.snapshot()
        assert replica.snapshot() == active
        assert sum(len(w["tasks"]) for w in active["workers"]) > 3  # the mix leaves tasks to compare
        # A claim that happened on the active is refused by the replica's copy too.
        claimed = [(w["purpose"], t["task"], w["id"]) for w in active["workers"]
                   for t in w["tasks"] if t["state"] == "executing"]
        assert claimed
        assert all(replica.registry.schedulers[p].task_view(t)["state"] == "executing"  # type: ignore[index]
                   for p, t, _ in claimed)
    finally:
        await replica.stop()


async def test_a_replica_ignores_a_deposed_leader_and_resyncs_after_a_gap(make_cluster: MakeCluster) -> None:
    clock = FakeClock()
    cluster = await make_cluster(clock=clock, replication=True, replication_pending=1)
    await cluster.join("portal-1")
    replica = Replica(await cluster.transports.make(), cluster.manager.settings, clock=clock, admin_key=ADMIN_KEY)
    await replica.start()
    try:
        topic = changes_topic(cluster.name)
        forged_remove: dict[str, Any] = msgspec.to_builtins(ChangeBatch(0, replica.seq + 1, [WorkerRemoved("portal-1", "quit")]))
        await cluster.client.publish_event(topic, forged_remove)
        await cluster.call("report_load", worker_id="portal-1", load=0.25)
        await _caught_up(cluster, replica)
        assert replica.snapshot() == cluster.manager.snapshot()  # epoch 0 < 1: ignored

        resyncs = replica.resyncs
        # A batch beyond a gap (change seq + 1 never arrives): the replica takes a new snapshot.
        ahead = msgspec.to_builtins(ChangeBatch(1, replica.seq + 2, [WorkerRemoved("portal-1", "quit")]))
        await cluster.client.publish_event(topic, ahead)
        await cluster.call("report_load", worker_id="portal-1", load=0.5)
        await wait_until(lambda: replica.resyncs > resyncs, what="resync")
        await _caught_up(cluster, replica)
        assert replica.snapshot() == cluster.manager.snapshot()
        assert "portal-1" in replica.registry.members
    finally:
        await replica.stop()


async def test_a_claim_delivered_again_after_a_failover_gets_the_same_answer(make_cluster: MakeCluster) -> None:
    from rpc.base import _REQUEST_ID

    clock = FakeClock()
    cluster = await make_cluster(clock=clock, replication=True)
    await cluster.join("portal-1")
    replica = Replica(await cluster.transports.make(), cluster.manager.settings, clock=clock, admin_key=ADMIN_KEY)
    await replica.start()
    try:
        await cluster.call("schedule", purpose="portal", task="token-1")
        _REQUEST_ID.set("portal-1-node/41")  # as the broker transport sets it for each delivery
        await cluster.manager.claim(purpose="portal", task="token-1", worker_id="portal-1")
        await _caught_up(cluster, replica)
        # The standby's copy: the same request again is answered as the first time ...
        assert replica.registry.claimed_by("portal", "token-1", "portal-1", "portal-1-node/41")
        # ... and on the manager, a repeat of that request succeeds while another claim is refused.
        await cluster.manager.claim(purpose="portal", task="token-1", worker_id="portal-1")
        _REQUEST_ID.set("portal-1-node/42")
        with pytest.raises(Exception) as refused:
            await cluster.manager.claim(purpose="portal", task="token-1", worker_id="portal-1")
        assert getattr(refused.value, "code", None) == "already_claimed"
    finally:
        await replica.stop()


@pytest.mark.parametrize("key", ["", "not-the-key"])
async def test_the_replica_snapshot_is_refused_without_the_admin_key(make_cluster: MakeCluster, key: str) -> None:
    cluster = await make_cluster(replication=True)
    await cluster.join("portal-1")
    with pytest.raises(RpcRemoteError) as refused:
        await cluster.client.call(cluster.name, "replica_snapshot", {"admin_key": key} if key else {})
    assert refused.value.code == "unauthorized"
    answer = await cluster.call("replica_snapshot", admin_key=ADMIN_KEY)
    assert [w["id"] for w in answer["snapshot"]["workers"]] == ["portal-1"]
