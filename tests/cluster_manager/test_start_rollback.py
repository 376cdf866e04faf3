"""A cluster manager (or manager node) whose start fails ends what it started and serves nothing;
one that failed or was stopped refuses to start again."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from cluster_manager import ClusterManager, ClusterManagerSettings
from cluster_manager.node import ACTIVE, STANDBY, ManagerNode
from credentials import AdminKeys
from rpc import RpcUnavailable, Subscription, Transport
from rpc.base import EventHandler
from tests.support.fake_clock import FakeClock
from tests.support.transports import TransportFactory

from .conftest import ADMIN_KEY


@pytest_asyncio.fixture
async def transports() -> AsyncIterator[TransportFactory]:
    factory = TransportFactory("local")
    yield factory
    await factory.close()


def _settings(**overrides: Any) -> ClusterManagerSettings:
    return ClusterManagerSettings(name=f"cluster-{uuid.uuid4().hex[:6]}", initial_time=0.0, failover_purposes=[],
                                  **overrides)


def _tasks_naming(*names: str) -> list[str]:
    return [task.get_name() for task in asyncio.all_tasks() if any(name in task.get_name() for name in names)]


async def _served(caller: Transport, name: str) -> bool:
    try:
        await caller.call(name, "no_such_method", {})
    except RpcUnavailable:
        return False
    except Exception:
        return True
    return True


async def test_a_manager_that_cannot_serve_ends_its_sweep_and_change_feed(transports: TransportFactory) -> None:
    transport = await transports.make("manager")
    await transport.close()  # serving on it fails
    manager = ClusterManager(transport, _settings(replication=True))
    with pytest.raises(RpcUnavailable):
        await manager.start()
    assert _tasks_naming(manager.name) == []
    with pytest.raises(RuntimeError, match="was stopped; make a new one"):
        await manager.start()


async def test_a_stopped_manager_cannot_be_started_again(transports: TransportFactory) -> None:
    manager = ClusterManager(await transports.make("manager"), _settings())
    await manager.start()
    await manager.stop()
    with pytest.raises(RuntimeError, match="was stopped; make a new one"):
        await manager.start()


async def test_a_node_whose_replica_cannot_subscribe_serves_nothing(
    transports: TransportFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    caller = await transports.make("caller")
    transport = await transports.make("node")

    async def refused(pattern: str, handler: EventHandler) -> Subscription:
        raise RpcUnavailable("the test's broker refuses the subscription")

    monkeypatch.setattr(transport, "subscribe_events", refused)
    node = ManagerNode(transport, _settings(), clock=FakeClock())
    with pytest.raises(RpcUnavailable, match="refuses the subscription"):
        await node.start()
    assert not await _served(caller, node.name)
    assert _tasks_naming(node.name, transport.node_id) == []
    with pytest.raises(RuntimeError, match="was stopped; make a new one"):
        await node.start()


async def test_a_stopped_standby_leaves_no_task_and_cannot_be_started_again(transports: TransportFactory) -> None:
    settings = _settings()
    keys = AdminKeys([ADMIN_KEY])
    active = ManagerNode(await transports.make("active"), settings, clock=FakeClock(), admin_keys=keys)
    standby = ManagerNode(await transports.make("standby"), settings, clock=FakeClock(), admin_keys=keys)
    await active.start()
    await standby.start()
    assert (active.role, standby.role) == (ACTIVE, STANDBY)
    await standby.stop()
    assert _tasks_naming(standby.transport.node_id) == []
    with pytest.raises(RuntimeError, match="was stopped; make a new one"):
        await standby.start()
    await active.stop()
