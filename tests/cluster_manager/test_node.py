"""Manager processes with standbys: one active through a single-active service, the others follow
its changes and one of them serves from its copy when the active one goes."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio

from cluster_manager import ClusterManagerSettings
from cluster_manager.node import ACTIVE, STANDBY, ManagerNode
from credentials import AdminKeys
from rpc import Declined, RpcRemoteError, Transport
from tests.support.fake_clock import FakeClock
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

from .conftest import ADMIN_KEY

MakeNode = Callable[..., Awaitable[ManagerNode]]


@pytest_asyncio.fixture
async def make_node(transports: TransportFactory) -> AsyncIterator[MakeNode]:
    made: list[ManagerNode] = []

    async def make(name: str, clock: Callable[[], float] | None = None, **settings: object) -> ManagerNode:
        node = ManagerNode(
            await transports.make(f"cm-{uuid.uuid4().hex[:6]}"),
            ClusterManagerSettings(name=name, initial_time=0.0, failover_purposes=[], **settings),  # type: ignore[arg-type]
            clock=clock or FakeClock(),
            admin_keys=AdminKeys([ADMIN_KEY]),
        )
        await node.start()
        made.append(node)
        return node

    yield make
    for node in made:
        await node.stop()


async def _with_a_token(client: Transport, name: str) -> tuple[str, str]:
    """A portal joined, one token minted and used, one minted only; returns the two tokens."""
    await client.call(name, "join", {"purpose": "portal", "worker_id": "portal-1", "info": {}})
    for token in ("used", "minted"):
        await client.call(name, "schedule", {"purpose": "portal", "task": token, "reserve_time": 30.0})
    await client.call(name, "claim", {"purpose": "portal", "task": "used", "worker_id": "portal-1"})
    return "used", "minted"


async def test_the_standby_serves_from_its_copy_when_the_active_goes(
    make_node: MakeNode, transports: TransportFactory
) -> None:
    name = f"cluster-{uuid.uuid4().hex[:6]}"
    first = await make_node(name)
    second = await make_node(name)
    assert (first.role, second.role) == (ACTIVE, STANDBY)
    client = await transports.make()
    used, minted = await _with_a_token(client, name)
    feed = first.manager._feed  # type: ignore[union-attr]
    assert feed is not None
    # Each answer came only once its changes were published to the standbys.
    feed_seq = feed.seq
    assert feed._done_seq == feed_seq
    await wait_until(lambda: second.replica.seq == feed_seq, what="standby caught up")

    await first.stop()
    # The standby answers at once from its copy: the worker is known (no rejoin), the used token
    # stays used, the minted one can be used once.
    assert await client.call(name, "keep_alive", {"worker_id": "portal-1"}) == "ok"
    assert second.role == ACTIVE and second.manager is not None and second.manager.epoch == 2
    with pytest.raises(RpcRemoteError) as refused:
        await client.call(name, "claim", {"purpose": "portal", "task": used, "worker_id": "portal-1"})
    assert refused.value.code == "already_claimed"
    await client.call(name, "claim", {"purpose": "portal", "task": minted, "worker_id": "portal-1"})
    assert (await client.call(name, "node_role", {}))["epoch"] == 2


async def test_a_leader_whose_lease_ran_out_declines_and_removes_nobody(
    make_node: MakeNode, transports: TransportFactory
) -> None:
    name = f"cluster-{uuid.uuid4().hex[:6]}"
    frozen_clock = FakeClock()
    first = await make_node(name, clock=frozen_clock)
    second = await make_node(name)
    client = await transports.make()
    await _with_a_token(client, name)
    manager = first.manager
    assert manager is not None
    # As after SIGSTOP/SIGCONT: its clock moved on past the lease with no tick handled meanwhile.
    frozen_clock.advance(first.settings.leader_lease + 1.0)
    assert not first.leads()
    for _ in range(first.settings.check_alive_count + 1):
        await manager._reaper.sweep()  # every worker missed these sweeps: it must not remove them
    assert "portal-1" in manager.registry.members
    with pytest.raises(Declined):
        first._leader("claim")  # a request left in its socket buffer
    assert second.role == STANDBY  # nothing made it active yet
    # (It steps down when a tick it sends does not come back: tests/e2e/test_manager_standby.py.)


async def test_a_standby_that_cannot_sync_is_listed_by_the_active_one_as_not_synced(
    transports: TransportFactory,
) -> None:
    """A standby whose snapshot requests are refused (here: an admin key the active manager does not
    know) never finishes starting; operators still see it on the status page, as not synced."""
    name = f"cluster-{uuid.uuid4().hex[:6]}"
    settings = ClusterManagerSettings(name=name, initial_time=0.0, failover_purposes=[],
                                      standby_announce_interval=0.05)
    active = ManagerNode(await transports.make("cm-active"), settings, admin_keys=AdminKeys([ADMIN_KEY]))
    await active.start()
    stranger = ManagerNode(await transports.make("cm-stranger"), settings,
                           admin_keys=AdminKeys(["a-key-the-active-manager-does-not-know-at-all"]))
    starting = asyncio.create_task(stranger.start())
    client = await transports.make()
    try:
        async def standbys() -> list[dict[str, object]]:
            overview = await client.call(name, "overview", {"admin_key": ADMIN_KEY})
            return [m for m in overview["managers"] if m["role"] == "standby"]

        listed = await wait_until(standbys, what="the standby listed")
        assert [(m["node"], m["synced"]) for m in listed] == [("cm-stranger", False)]
        assert not starting.done() and active.role == ACTIVE
    finally:
        await stranger.stop()
        await asyncio.wait([starting])
        await active.stop()
