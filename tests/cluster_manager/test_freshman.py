"""The freshman window after a start with no state, with real cluster workers (rpc/worker.py)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from cluster_manager import ClusterManager, task_digest
from credentials import AdminKeys
from rpc import RpcRemoteError
from rpc.settings import WorkerSettings
from rpc.worker import ClusterWorker
from tests.support.fake_clock import FakeClock
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

from .conftest import ADMIN_KEY, Cluster, MakeCluster, unique_name

MakeWorker = Callable[..., Awaitable[ClusterWorker]]


@pytest_asyncio.fixture
async def make_worker(transports: TransportFactory) -> AsyncIterator[MakeWorker]:
    """Started cluster workers with fast settings; stopped (without quitting) after the test."""
    made: list[ClusterWorker] = []

    async def make(cluster_name: str, worker_id: str, purpose: str = "portal", **hooks: object) -> ClusterWorker:
        worker = ClusterWorker(
            await transports.make(worker_id),
            purpose=purpose,
            worker_id=worker_id,
            info={"hostname": worker_id, "port": 8080},
            settings=WorkerSettings(
                cluster_name=cluster_name, keepalive_interval=0.05, keepalive_timeout=0.3,
                join_interval=0.05, load_report_interval=0.05,
            ),
            **hooks,  # type: ignore[arg-type]
        )
        await worker.start()
        made.append(worker)
        return worker

    yield make
    for worker in made:
        await worker.stop(quit=False)


class _Losses(list[list[str]]):
    """An ``on_loss`` hook that keeps what it is told, in order."""

    async def __call__(self, tasks: list[str]) -> None:
        self.append(tasks)


async def _manager_with_a_portal(make_cluster: MakeCluster,
                                 make_worker: MakeWorker) -> tuple[str, Cluster, ClusterWorker, _Losses]:
    """A manager under a new name and a portal worker on it whose lost tasks are kept."""
    name = unique_name()
    manager = await make_cluster(name=name)
    lost = _Losses()
    portal = await make_worker(name, f"portal-{uuid.uuid4().hex[:4]}", on_loss=lost)
    return name, manager, portal, lost


async def test_a_fresh_manager_is_not_ready_for_new_tasks_until_its_window_ends(make_cluster: MakeCluster) -> None:
    clock = FakeClock()
    cluster = await make_cluster(clock=clock, fresh=True, initial_time=6.0)
    assert await cluster.join("portal-1") == "initializing"
    with pytest.raises(RpcRemoteError) as err:
        await cluster.call("schedule", purpose="portal", task="token-1")
    assert err.value.code == "not_ready"
    assert "not ready" in err.value.message
    status = await cluster.call("status")
    assert status["state"] == "initializing" and status["freshman"] is True and status["ready_in"] == 6.0

    clock.advance(6.0)
    assert (await cluster.call("schedule", purpose="portal", task="token-1"))["id"] == "portal-1"
    assert await cluster.join("portal-2") == "in-service"
    assert (await cluster.call("status"))["freshman"] is False


async def test_workers_rejoin_a_restarted_manager_and_keep_their_tasks(
    make_cluster: MakeCluster, make_worker: MakeWorker
) -> None:
    name, before, portal, lost = await _manager_with_a_portal(make_cluster, make_worker)
    conference = await make_worker(name, f"conf-{uuid.uuid4().hex[:4]}", purpose="conference", on_loss=lost)
    await before.call("schedule", purpose="portal", task="token-1", reserve_time=30.0)
    await before.call("claim", purpose="portal", task="token-1", worker_id=portal.worker_id)
    await portal.add_task("token-1")
    await conference.add_task("room-1")
    await wait_until(lambda: before.call("get_scheduled", purpose="conference", task="room-1"))

    await before.manager.stop()
    after = await make_cluster(name=name, fresh=True, initial_time=1.0)

    async def tasks_back() -> bool:
        a = await after.call("get_scheduled", purpose="portal", task="token-1")
        b = await after.call("get_scheduled", purpose="conference", task="room-1")
        return bool(a and b)

    await wait_until(tasks_back, what="re-reported tasks")
    assert portal.manager_state == "initializing"
    assert (await after.call("schedule", purpose="conference", task="room-1"))["id"] == conference.worker_id
    with pytest.raises(RpcRemoteError) as err:
        await after.call("schedule", purpose="conference", task="room-2")
    assert err.value.code == "not_ready"
    with pytest.raises(RpcRemoteError) as err:
        await after.call("claim", purpose="portal", task="token-unknown", worker_id=portal.worker_id)
    assert err.value.code == "not_ready"

    await wait_until(lambda: after.manager.state == "in-service", what="end of the window")
    with pytest.raises(RpcRemoteError) as err:
        await after.call("claim", purpose="portal", task="token-1", worker_id=portal.worker_id)
    assert err.value.code == "already_claimed"  # a used token stays used across the restart
    assert (await after.call("schedule", purpose="conference", task="room-2"))["id"] == conference.worker_id
    assert lost == []
    assert portal.tasks == {"token-1"}


async def test_a_worker_the_in_service_manager_forgot_loses_its_tasks(
    make_cluster: MakeCluster, make_worker: MakeWorker
) -> None:
    name, before, portal, lost = await _manager_with_a_portal(make_cluster, make_worker)
    await portal.add_task("token-1")
    await before.manager.stop()
    after = await make_cluster(name=name, fresh=False)

    await wait_until(lambda: lost, what="on_loss")
    assert lost == [["token-1"]]
    assert portal.manager_state == "in-service"
    assert await after.call("get_scheduled", purpose="portal", task="token-1") is None
    assert (await after.call("get_worker", worker_id=portal.worker_id))["executing"] == 0


async def test_a_snapshot_restores_workers_and_tasks_without_a_window(make_cluster: MakeCluster) -> None:
    clock = FakeClock()
    before = await make_cluster(clock=clock)
    await before.join("portal-1", max_load=0.9)
    await before.call("report_load", worker_id="portal-1", load=0.5)
    await before.call("schedule", purpose="portal", task="token-1", reserve_time=100.0)
    await before.call("pick_up_tasks", worker_id="portal-1", tasks=["token-2"])
    await before.call("drain", worker_id="portal-1")
    snapshot = before.manager.snapshot()
    await before.manager.stop()

    manager = ClusterManager(await before.transports.make(), before.manager.settings, clock=clock,
                             admin_keys=AdminKeys([ADMIN_KEY]))
    manager.restore(snapshot)
    await manager.start()
    try:
        assert manager.state == "in-service"
        worker = await before.call("get_worker", worker_id="portal-1")
        assert (worker["load"], worker["drained"], worker["max_load"]) == (0.5, True, 0.9)
        tasks = {t["task"]: t for t in await before.call("get_tasks", worker_id="portal-1")}
        reserved, executing = tasks[task_digest("token-1")], tasks[task_digest("token-2")]
        assert reserved["state"] == "reserved" and reserved["expires_in"] == 100.0
        assert executing["state"] == "executing"
        await before.call("claim", purpose="portal", task="token-1", worker_id="portal-1")
    finally:
        await manager.stop()
