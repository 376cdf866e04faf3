"""A portal whose start fails releases what it took (port, RPC service, fault subscription, ack
loop), and a portal that failed or was stopped refuses to start again."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from credentials import Keyring
from portal import Portal, PortalSettings
from rpc import RpcUnavailable, Transport
from rpc.settings import WorkerSettings
from tests.support.fake_cluster_manager import FakeClusterManager
from tests.support.processes import bindable
from tests.support.transports import TransportFactory

WORKER = WorkerSettings(join_retries=1, join_interval=0.0)
KEY = "portal-rollback-test-key"


@pytest_asyncio.fixture
async def transports() -> AsyncIterator[TransportFactory]:
    factory = TransportFactory("local")
    yield factory
    await factory.close()


def _portal(transport: Transport, port: int = 0) -> Portal:
    return Portal(transport, PortalSettings(host="127.0.0.1", port=port), Keyring([KEY]), WORKER,
                  worker_id="portal-under-test")


def _tasks_of(portal: Portal) -> list[str]:
    return [task.get_name() for task in asyncio.all_tasks() if portal.worker_id in task.get_name()]



async def _served(caller: Transport, portal: Portal) -> bool:
    try:
        await caller.call(portal.worker_id, "no_such_method", {})
    except RpcUnavailable:
        return False
    except Exception:
        return True
    return True


async def test_a_portal_that_cannot_join_the_cluster_releases_its_port_service_and_ack_loop(
    transports: TransportFactory,
) -> None:
    caller = await transports.make("caller")
    portal = _portal(await transports.make("portal"))  # no cluster manager: the join fails
    with pytest.raises(RpcUnavailable, match="could not join"):
        await portal.start()
    assert portal.port != 0
    assert bindable(portal.port)
    assert not await _served(caller, portal)
    assert _tasks_of(portal) == []
    assert not transports.local._subscriptions
    with pytest.raises(RuntimeError, match="was stopped; make a new one"):
        await portal.start()


async def test_a_portal_whose_port_is_taken_cleans_its_web_app_up(transports: TransportFactory) -> None:
    cleaned: list[bool] = []

    async def cleanup(app: web.Application) -> None:
        cleaned.append(True)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        portal = _portal(await transports.make("portal"), port=taken.getsockname()[1])
        portal.server.app.on_cleanup.append(cleanup)
        with pytest.raises(OSError):
            await portal.start()
    assert cleaned == [True]
    with pytest.raises(RuntimeError, match="was stopped; make a new one"):
        await portal.start()


async def test_a_stopped_portal_cannot_be_started_again(transports: TransportFactory) -> None:
    manager = await transports.make("cluster")
    await manager.serve("cluster", FakeClusterManager())
    portal = _portal(await transports.make("portal"))
    await portal.start()
    await portal.start()  # idempotent while running
    await portal.stop()
    assert _tasks_of(portal) == []
    with pytest.raises(RuntimeError, match="was stopped; make a new one"):
        await portal.start()
