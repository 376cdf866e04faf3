"""The fault timeline (``faults``), the lost workers and the ``overview`` admin method."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cluster_manager import FaultLog
from contracts.admin import Fault
from cluster_manager.standbys import StandbyBoard, StandbyNotice
from rpc import RpcRemoteError
from tests.support.fake_clock import FakeClock
from tests.support.waiting import wait_until

from .conftest import Cluster, MakeCluster
from .test_failover import FakeController


def test_faults_are_numbered_in_order_and_read_after_since() -> None:
    log = FaultLog(10, clock=FakeClock(5.0))
    log.record("worker_joined", severity="info", worker_id="a")
    log.record("worker_lost", severity="error", worker_id="a", reason="timeout")
    page = log.since(0)
    assert [(f.seq, f.kind) for f in page.faults] == [(1, "worker_joined"), (2, "worker_lost")]
    assert page.faults[1].detail == {"reason": "timeout"}
    assert page.faults[1].at == 5.0
    assert page.next == 2
    assert log.since(page.next).faults == []
    assert log.since(page.next).next == 2
    assert [f.seq for f in log.since(0, limit=1).faults] == [1]
    assert log.since(0, limit=1).next == 1


def test_the_log_keeps_only_the_newest_size_faults() -> None:
    log = FaultLog(3)
    for n in range(5):
        log.record("worker_joined", worker_id=f"w{n}")
    assert len(log) == 3
    assert [f.seq for f in log.since(0).faults] == [3, 4, 5]
    with pytest.raises(ValueError):
        FaultLog(0)


def test_subscribers_hear_every_fault_and_a_failing_one_harms_nobody() -> None:
    log = FaultLog(10)
    heard: list[Fault] = []

    def broken(fault: Fault) -> None:
        raise RuntimeError("subscriber bug")

    log.subscribe(broken)
    unsubscribe = log.subscribe(heard.append)
    recorded = log.record("alert", severity="error", text="webhook down")
    assert heard == [recorded]
    unsubscribe()
    log.record("alert")
    assert heard == [recorded]
    assert log.last == 2


async def test_joins_drains_and_a_lost_worker_are_on_the_timeline_and_the_lost_one_stays_listed(
    make_cluster: MakeCluster,
) -> None:
    cluster = await make_cluster(check_alive_interval=0.1, check_alive_count=3, lost_worker_retention=60.0)
    await cluster.join("conf-1", purpose="conference")
    await cluster.join("conf-2", purpose="conference")
    await cluster.call("drain", worker_id="conf-2")
    await cluster.call("undrain", worker_id="conf-2")

    async def conf_1_lost() -> bool:
        await cluster.call("keep_alive", worker_id="conf-2")
        return any(f["kind"] == "worker_lost" for f in (await cluster.call("faults", since=0))["faults"])

    await wait_until(conf_1_lost, what="conf-1 lost")
    page = await cluster.call("faults", since=0)
    kinds = [(f["kind"], f["worker_id"]) for f in page["faults"]]
    assert kinds[:5] == [("manager_active", None), ("worker_joined", "conf-1"), ("worker_joined", "conf-2"),
                         ("worker_drained", "conf-2"), ("worker_undrained", "conf-2")]
    assert ("worker_lost", "conf-1") in kinds
    assert [f["seq"] for f in page["faults"]] == list(range(1, len(page["faults"]) + 1))
    assert page["next"] == page["faults"][-1]["seq"]

    overview = await cluster.call("overview")
    statuses = {w["id"]: (w["status"], w["lost_reason"]) for w in overview["workers"]}
    assert statuses == {"conf-2": ("in_service", None), "conf-1": ("lost", "timeout")}
    assert overview["managers"][0]["role"] == "active"
    live = next(w for w in overview["workers"] if w["id"] == "conf-2")
    assert live["keepalive_age"] is not None and live["keepalive_age"] >= 0

    # Back again: no longer lost.
    await cluster.join("conf-1", purpose="conference")
    overview = await cluster.call("overview")
    assert {w["id"]: w["status"] for w in overview["workers"]} == {"conf-1": "in_service", "conf-2": "in_service"}


async def test_a_lost_worker_is_listed_for_the_retention_only(make_cluster: MakeCluster) -> None:
    clock = FakeClock()
    cluster = await make_cluster(clock=clock, lost_worker_retention=30.0)
    await cluster.join("portal-1", purpose="portal")
    await cluster.call("drain", worker_id="portal-1")
    cluster.manager._reaper.remove("portal-1", "connection_lost")  # what a departure does
    overview = await cluster.call("overview")
    assert [(w["id"], w["status"], w["drained"]) for w in overview["workers"]] == [("portal-1", "lost", True)]
    clock.advance(31.0)
    assert (await cluster.call("overview"))["workers"] == []


async def test_rooms_are_listed_with_their_controller(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.join("conf-1", purpose="conference")
    await cluster.call("schedule", purpose="conference", task="room-1", reserve_time=30.0)
    await cluster.call("pick_up_tasks", worker_id="conf-1", tasks=["room-1"])
    overview = await cluster.call("overview")
    assert overview["rooms"] == [{"room": "room-1", "worker": "conf-1", "purpose": "conference",
                                  "state": "executing"}]


async def test_faults_and_overview_need_the_admin_key_and_good_arguments(make_cluster: MakeCluster) -> None:
    cluster: Cluster = await make_cluster()
    for method in ("faults", "overview"):
        with pytest.raises(RpcRemoteError) as err:
            await cluster.client.call(cluster.name, method, {"admin_key": "wrong"})
        assert err.value.code == "unauthorized"
    with pytest.raises(RpcRemoteError) as err:
        await cluster.call("faults", since=-1)
    assert err.value.code == "bad_arguments"


async def test_the_hand_over_of_a_lost_controllers_rooms_is_on_the_timeline(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster(failover_interval=0.01, failover_attempts=2)
    survivor = FakeController({"room-1"})
    await cluster.client.serve("conf-live", survivor)
    await cluster.join("conf-live", purpose="conference")
    await cluster.join("conf-dead", purpose="conference")
    await cluster.client.cast(cluster.name, "pick_up_tasks", {"worker_id": "conf-dead", "tasks": ["room-1"]})
    assert len(await cluster.call("get_tasks", worker_id="conf-dead")) == 1
    survivor.failures = 2  # both attempts of the first loss fail
    cluster.manager._reaper.remove("conf-dead", "timeout")

    async def kinds() -> list[tuple[str, str | None, Any]]:
        page = await cluster.call("faults", since=0)
        return [(f["kind"], f["worker_id"], f["detail"].get("room")) for f in page["faults"]
                if f["kind"] in ("worker_lost", "failed_over", "failover_failed")]

    await wait_until(lambda: _has_kind(kinds, "failover_failed"), what="the failed hand-over")
    assert await kinds() == [("worker_lost", "conf-dead", None), ("failover_failed", "conf-dead", "room-1")]

    # Lost again with the room: this time the survivor takes it.
    await cluster.join("conf-dead", purpose="conference")
    await cluster.client.cast(cluster.name, "pick_up_tasks", {"worker_id": "conf-dead", "tasks": ["room-1"]})
    assert len(await cluster.call("get_tasks", worker_id="conf-dead")) == 1
    cluster.manager._reaper.remove("conf-dead", "connection_lost")
    await wait_until(lambda: _has_kind(kinds, "failed_over"), what="the hand-over")
    assert (await kinds())[-1] == ("failed_over", "conf-live", "room-1")


async def _has_kind(kinds: Callable[[], Awaitable[list[tuple[str, str | None, Any]]]], kind: str) -> bool:
    return any(k == kind for k, _, _ in await kinds())


def test_standbys_are_listed_while_they_announce_themselves() -> None:
    clock = FakeClock()
    board = StandbyBoard(expiry=5.0, limit=2, clock=clock)
    board.heard(StandbyNotice(node="a", synced=True, epoch=3))
    clock.advance(3.0)
    board.heard(StandbyNotice(node="b", synced=False, epoch=3))
    assert [(v.node, v.role, v.synced, v.seen_ago) for v in board.views(exclude="x")] == [
        ("a", "standby", True, 3.0), ("b", "standby", False, 0.0)]
    assert [v.node for v in board.views(exclude="a")] == ["b"]  # the active one is not its own standby
    clock.advance(3.0)
    assert [v.node for v in board.views(exclude="x")] == ["b"]  # a not heard from for 6 s
    board.heard(StandbyNotice(node="c", synced=True, epoch=3))
    board.heard(StandbyNotice(node="d", synced=True, epoch=3))
    assert [v.node for v in board.views(exclude="x")] == ["c", "d"]  # at most two
