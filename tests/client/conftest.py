"""The real embedded stack (token API, cluster manager, controller, portal on port 0) and client factories."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from switchboard.client import Client, ClientSettings
from switchboard.config import load_settings
from tests.client.fake_portal import FakePortal
from tests.client.node_harness import NodeHarness, node_available

if TYPE_CHECKING:
    from switchboard.wiring import EmbeddedCluster

MakeClient = Callable[..., Awaitable[Client]]
MakeHarness = Callable[[], Awaitable[NodeHarness]]

#: The clients of a scripted portal (``portal`` fixture): quick reconnection and acks.
FAKE_PORTAL_TIMINGS = ClientSettings(request_timeout=5.0, reconnection_delay=0.05, reconnection_delay_max=0.2,
                                     ack_interval=0.02)

#: Quick reconnection so that the outage tests stay short.
FAST = ClientSettings(request_timeout=8.0, reconnection_delay=0.05, reconnection_delay_max=0.5)


@pytest_asyncio.fixture
async def portal() -> AsyncIterator[FakePortal]:
    """A scripted portal (``tests/client/fake_portal.py``) for faults the real one cannot produce."""
    fake = FakePortal()
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def stack(tmp_path: Path) -> AsyncIterator[EmbeddedCluster]:
    """One embedded Switchboard on free ports, stopped at the end."""
    from switchboard.wiring import EmbeddedCluster  # imported here: the unit tests need none of it

    settings = load_settings(
        env={},
        overrides={
            "rpc": {"local_roundtrip": True},
            "token_api": {"host": "127.0.0.1", "port": 0, "rooms_db": str(tmp_path / "rooms.sqlite3")},
            "portal": {"host": "127.0.0.1", "port": 0, "hostname": "127.0.0.1"},
        },
    )
    cluster = EmbeddedCluster(settings)
    await cluster.start()
    yield cluster
    await cluster.stop()


@pytest_asyncio.fixture
async def make_client(stack: EmbeddedCluster) -> AsyncIterator[MakeClient]:
    """``await make_client(user, room=..., **join_kwargs)``: a logged-in client; all closed at the end."""
    made: list[Client] = []

    async def make(user: str, *, room: str = "lobby", role: str = "presenter", **kwargs: Any) -> Client:
        kwargs.setdefault("settings", FAST)
        client = await Client.join(stack.api_url, api_headers=stack.service_headers, room=room, user=user, role=role, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


_NO_NODE = (
    "node is not installed: these tests speak what the OWT JavaScript SDK speaks and must run; "
    "`make test` (target node-deps) installs Debian's nodejs and npm"
)


@pytest_asyncio.fixture
async def make_harness() -> AsyncIterator[MakeHarness]:
    """``await make_harness()``: a started Node OWT-style client; all stopped at the end."""
    if not node_available():
        pytest.fail(_NO_NODE)
    made: list[NodeHarness] = []

    async def make() -> NodeHarness:
        harness = NodeHarness()
        made.append(harness)
        await harness.start()
        return harness

    yield make
    for harness in made:
        await harness.close()
