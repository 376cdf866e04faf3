"""The stacks hostile input is sent to: the embedded server, and a cluster of role processes on a
real RabbitMQ node (one for the package: the attacks leave nothing behind), both with short deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from switchboard.devbroker import RabbitNode
from tests.conftest import MakeEmbedded
from tests.support.processes import ProcessCluster

#: Deadlines short enough for tests; logins still have room on a loaded machine.
FAST: dict[str, dict[str, Any]] = {
    "token_api": {"header_timeout": 0.5, "body_timeout": 0.5},
    "portal": {"header_timeout": 0.5, "body_timeout": 0.5, "login_timeout": 1.0},
}


@dataclass
class Stack:
    """Where to send an attack, whichever way the servers run."""

    kind: str
    api_url: str
    portal_url: str
    service_headers: dict[str, str]
    admin_headers: dict[str, str]

    async def room_ids(self) -> list[str]:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.api_url}/v1/rooms?per_page=1000", headers=self.service_headers) as resp:
                assert resp.status == 200, await resp.text()
                return [room["id"] for room in await resp.json()]


@pytest.fixture(scope="package")
def hostile_cluster(rabbit: RabbitNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessCluster]:
    """One token API, manager, controller and portal as processes, with :data:`FAST` deadlines."""
    env = {f"SWITCHBOARD_{section.upper()}__{key.upper()}": str(value)
           for section, values in FAST.items() for key, value in values.items()}
    cluster = ProcessCluster(rabbit.url, tmp_path_factory.mktemp("hostile"), portals=1, controllers=1,
                             env_overrides=env)
    try:
        # Started on a loop of its own (processes: nothing is tied to it), in a thread because the
        # fixture is first asked for from inside a test's running loop.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(lambda: asyncio.run(cluster.start())).result()
        yield cluster
    finally:
        cluster.stop()


@pytest_asyncio.fixture(params=["embedded", pytest.param("cluster", marks=pytest.mark.amqp)])
async def stack(request: pytest.FixtureRequest, make_embedded: MakeEmbedded) -> AsyncIterator[Stack]:
    if request.param == "embedded":
        server = await make_embedded(**FAST)
        yield Stack("embedded", server.api_url, server.portal_url, server.service_headers, server.admin_headers)
    else:
        cluster: ProcessCluster = request.getfixturevalue("hostile_cluster")
        yield Stack("cluster", cluster.api_url, cluster.portal_url(1), cluster.service_headers, cluster.admin_headers)
