"""What a cluster-manager node's ``/readyz`` and ``/metrics`` say (:mod:`cluster_manager.observe`)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from prometheus_client import CollectorRegistry

from cluster_manager import ClusterManagerSettings
from cluster_manager.node import ManagerNode
from cluster_manager.observe import manager_readiness, manager_registry
from credentials import AdminKeys
from rpc import LocalBroker
from tests.support.fake_clock import FakeClock
from tests.support.transports import TransportFactory

from .conftest import ADMIN_KEY


@pytest_asyncio.fixture
async def local() -> AsyncIterator[TransportFactory]:
    factory = TransportFactory("local")
    factory.local = LocalBroker(roundtrip=True)
    yield factory
    await factory.close()


def _node(transport: object, name: str) -> ManagerNode:
    return ManagerNode(transport,  # type: ignore[arg-type]
                       ClusterManagerSettings(name=name, initial_time=0.0, failover_purposes=[]),
                       clock=FakeClock(), admin_keys=AdminKeys([ADMIN_KEY]))


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_active_and_standby_are_both_ready_and_say_which_they_are(local: TransportFactory) -> None:
    name = f"cluster-{uuid.uuid4().hex[:6]}"
    first = _node(await local.make("cm-1"), name)
    assert manager_readiness(first).as_json() == {
        "ready": False, "status": "not_ready", "reason": "not started, or stopped", "node": "cm-1", "role": "standby"}
    await first.start()
    second = _node(await local.make("cm-2"), name)
    await second.start()
    try:
        assert manager_readiness(first).as_json() == {"ready": True, "status": "ready", "node": "cm-1", "role": "active", "epoch": 1}
        assert manager_readiness(second).as_json() == {"ready": True, "status": "ready", "node": "cm-2", "role": "standby"}
        registries = manager_registry(first), manager_registry(second)
        assert [_value(r, "switchboard_cluster_manager_active") for r in registries] == [1, 0]
        assert [_value(r, "switchboard_cluster_manager_epoch") for r in registries] == [1, 1]  # the standby synced
        client = await local.make("client")
        for worker in ("portal-1", "portal-2"):
            await client.call(name, "join", {"purpose": "portal", "worker_id": worker, "info": {}})
        await client.call(name, "report_state", {"worker_id": "portal-2", "state": "unavailable"})
        await client.call(name, "quit", {"worker_id": "portal-1"})
        active = registries[0]
        assert _value(active, "switchboard_cluster_manager_workers", purpose="portal", state="unavailable") == 1
        assert _value(active, "switchboard_cluster_manager_workers", purpose="portal", state="available") is None
        assert _value(active, "switchboard_cluster_manager_workers_removed_total", reason="quit") == 1
        assert _value(active, "switchboard_cluster_manager_failovers_total", outcome="handed_over") == 0
        assert _value(registries[1], "switchboard_cluster_manager_workers", purpose="portal",
                      state="unavailable") is None
    finally:
        await second.stop()
        await first.stop()
    assert manager_readiness(first).reason == "not started, or stopped"
