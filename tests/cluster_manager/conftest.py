"""Fixtures of the cluster-manager tests: a manager served on a transport, and a caller."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pytest_asyncio

from cluster_manager import ADMIN_METHODS, ClusterManager, ClusterManagerSettings
from credentials import AdminKeys
from rpc import Transport
from tests.support.transports import TransportFactory


@dataclass
class Cluster:
    """A started manager and a transport to call it with."""

    manager: ClusterManager
    client: Transport
    transports: TransportFactory
    events: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.manager.name

    async def call(self, method: str, **args: Any) -> Any:
        """Call the manager; admin calls carry the admin key (:data:`ADMIN_KEY`)."""
        if method in ADMIN_METHODS:
            args.setdefault("admin_key", ADMIN_KEY)
        return await self.client.call(self.name, method, args)

    async def join(self, worker_id: str, purpose: str = "portal", **info: Any) -> str:
        return str(await self.call("join", purpose=purpose, worker_id=worker_id, info=info))

    async def watch_exits(self) -> list[tuple[str, Any]]:
        """Collect every ``exit.#`` event from now on into ``self.events``."""

        async def record(topic: str, payload: Any) -> None:
            self.events.append((topic, payload))

        await self.client.subscribe_events("exit.#", record)
        return self.events


class MakeCluster(Protocol):
    def __call__(
        self, *, clock: Callable[[], float] | None = ..., fresh: bool = ..., **settings: Any
    ) -> Awaitable[Cluster]: ...


#: The admin key every manager of these tests accepts.
ADMIN_KEY = "admin-key-of-the-cluster-manager-tests"


def unique_name() -> str:
    return f"cluster-{uuid.uuid4().hex[:6]}"


@pytest_asyncio.fixture
async def make_cluster(transports: TransportFactory) -> AsyncIterator[MakeCluster]:
    """``await make_cluster(clock=..., fresh=False, **settings)``; every manager is stopped after the test."""
    made: list[ClusterManager] = []

    async def make(
        *, clock: Callable[[], float] | None = None, fresh: bool = False, **settings: Any
    ) -> Cluster:
        settings.setdefault("name", unique_name())
        manager = ClusterManager(
            await transports.make(f"cm-{settings['name']}"),
            ClusterManagerSettings(**settings),
            admin_keys=AdminKeys([ADMIN_KEY]),
            clock=clock or time.monotonic,
            fresh=fresh,
            rng=random.Random(7),
        )
        await manager.start()
        made.append(manager)
        return Cluster(manager, await transports.make(), transports)

    yield make
    for manager in made:
        await manager.stop()
