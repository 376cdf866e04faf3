"""The cluster-worker client against a fake cluster manager, on both transports."""

from __future__ import annotations

import asyncio
import uuid
from typing import TypedDict

import msgspec

from rpc import ServiceError, Transport, rpc_method
from rpc.settings import WorkerSettings
from rpc.worker import ClusterWorker
from tests.support.fake_cluster_manager import FakeClusterManager
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until


class _FastTimings(TypedDict):
    """The ``WorkerSettings`` fields :data:`FAST` overrides, typed so ``**FAST`` checks."""

    keepalive_interval: float
    keepalive_timeout: float
    keepalive_max_failures: int
    join_retries: int
    join_interval: float
    load_report_interval: float


FAST = _FastTimings(keepalive_interval=0.05, keepalive_timeout=1.0, keepalive_max_failures=3,
                    join_retries=100, join_interval=0.05, load_report_interval=0.05)


async def _setup(transports: TransportFactory, manager: FakeClusterManager | None = None) -> tuple[Transport, str]:
    name = f"cluster-{uuid.uuid4().hex[:6]}"
    if manager is not None:
        await (await transports.make()).serve(name, manager)
    return await transports.make(), name


async def test_a_worker_joins_keeps_alive_and_reports_load(transports: TransportFactory) -> None:
    manager = FakeClusterManager()
    transport, name = await _setup(transports, manager)
    load = {"value": 0.25}
    worker = ClusterWorker(transport, purpose="portal", worker_id="portal-1", info={"max_load": 0.85},
                           settings=WorkerSettings(cluster_name=name, **FAST), load=lambda: load["value"])
    await worker.start()
    assert manager.joins == [("portal", "portal-1", {"max_load": 0.85})]
    await wait_until(lambda: manager.keepalives >= 3 and 0.25 in manager.loads)
    load["value"] = 0.5
    await wait_until(lambda: 0.5 in manager.loads)
    await worker.stop()
    await wait_until(lambda: manager.quits == ["portal-1"])


async def test_tasks_are_picked_up_laid_down_and_rejected_at_the_manager(transports: TransportFactory) -> None:
    manager = FakeClusterManager()
    transport, name = await _setup(transports, manager)
    worker = ClusterWorker(transport, purpose="portal", worker_id="w", info={},
                           settings=WorkerSettings(cluster_name=name, **FAST))
    await worker.start()
    await worker.add_task("t1")
    await worker.add_task("t2")
    await worker.remove_task("t1")
    await worker.reject_task("t3")
    await wait_until(lambda: manager.picked == ["t1", "t2"] and manager.laid_down == ["t1"]
                     and manager.unscheduled == ["t3"])
    assert worker.tasks == {"t2"}
    await worker.stop()


async def test_join_is_retried_until_the_manager_appears(transports: TransportFactory) -> None:
    transport, name = await _setup(transports)
    worker = ClusterWorker(transport, purpose="conference", worker_id="c1", info={},
                           settings=WorkerSettings(cluster_name=name, **FAST))
    starting = asyncio.create_task(worker.start())
    await asyncio.sleep(0.3)
    assert not starting.done()
    manager = FakeClusterManager()
    await (await transports.make()).serve(name, manager)
    await asyncio.wait_for(starting, 5)
    assert [j[1] for j in manager.joins] == ["c1"]
    await worker.stop()


async def test_whoareyou_from_a_fresh_manager_re_reports_every_task(transports: TransportFactory) -> None:
    manager = FakeClusterManager()
    transport, name = await _setup(transports, manager)
    recovered = asyncio.Event()

    async def on_recovery() -> None:
        recovered.set()

    lost: list[list[str]] = []

    async def on_loss(tasks: list[str]) -> None:
        lost.append(tasks)

    worker = ClusterWorker(transport, purpose="portal", worker_id="w", info={},
                           settings=WorkerSettings(cluster_name=name, **FAST),
                           on_loss=on_loss, on_recovery=on_recovery)
    await worker.start()
    await worker.add_task("a")
    await worker.add_task("b")
    await wait_until(lambda: sorted(manager.picked) == ["a", "b"])
    # the manager restarts: it forgets the worker and says it is initializing
    manager.workers.clear()
    manager.state = "initializing"
    manager.picked.clear()
    await asyncio.wait_for(recovered.wait(), 5)
    assert sorted(manager.picked) == ["a", "b"]
    assert lost == [] and worker.tasks == {"a", "b"}
    await worker.stop()


async def test_whoareyou_from_a_manager_in_service_tells_the_owner_its_tasks_are_lost(
    transports: TransportFactory,
) -> None:
    manager = FakeClusterManager()
    transport, name = await _setup(transports, manager)
    lost: list[list[str]] = []

    async def on_loss(tasks: list[str]) -> None:
        lost.append(tasks)

    worker = ClusterWorker(transport, purpose="portal", worker_id="w", info={},
                           settings=WorkerSettings(cluster_name=name, **FAST), on_loss=on_loss)
    await worker.start()
    await worker.add_task("a")
    manager.workers.clear()
    await wait_until(lambda: lost == [["a"]])
    assert worker.tasks == set() and worker.recoveries == 1
    assert len(manager.joins) == 2
    await worker.stop()


class _FailingKeepalives(FakeClusterManager):
    """A manager whose keep-alives fail (it never answers ``whoareyou``) while ``failing`` is set."""

    failing = False

    @rpc_method
    async def keep_alive(self, worker_id: str) -> str:
        if self.failing:
            self.keepalives += 1
            raise ServiceError("unavailable", "the manager is busy")
        return await super().keep_alive(worker_id)


async def test_more_than_three_failed_keepalives_start_a_rejoin(transports: TransportFactory) -> None:
    # Only the failed keep-alives can start this rejoin: the manager never says whoareyou.
    manager = _FailingKeepalives()
    transport, name = await _setup(transports, manager)
    worker = ClusterWorker(transport, purpose="portal", worker_id="w", info={},
                           settings=WorkerSettings(cluster_name=name, **FAST))
    await worker.start()
    assert len(manager.joins) == 1
    manager.failing = True
    await wait_until(lambda: len(manager.joins) == 2 and worker.recoveries == 1, what="a rejoin")
    assert manager.keepalives > FAST["keepalive_max_failures"]
    await worker.stop()


async def test_failed_keepalives_within_the_bound_do_not_rejoin(transports: TransportFactory) -> None:
    manager = _FailingKeepalives()
    transport, name = await _setup(transports, manager)
    worker = ClusterWorker(transport, purpose="portal", worker_id="w", info={},
                           settings=msgspec.structs.replace(WorkerSettings(cluster_name=name, **FAST), keepalive_max_failures=1000))
    await worker.start()
    manager.failing = True
    await wait_until(lambda: manager.keepalives >= 5, what="failed keep-alives")
    assert len(manager.joins) == 1 and worker.recoveries == 0
    await worker.stop()
