"""The cluster manager's contracts: each served method has a typed client method of the same shape,
and each client method reaches its served method over a transport."""

from __future__ import annotations

import pytest

from alerts.service import DEAD_LETTER_METHODS, AlertService
from cluster_manager.admin_service import AdminService
from cluster_manager.service import ClusterService
from contracts.admin import AdminClient, DeadLettersClient, WorkerView
from contracts.cluster import IN_SERVICE, KEEPALIVE_OK, KEEPALIVE_WHOAREYOU, ClusterClient, PortalAddress, Scheduled
from rpc import RpcRemoteError
from tests.support.contract_check import client_mismatches

from .conftest import ADMIN_KEY, MakeCluster


def test_every_cluster_method_has_a_client_method_of_the_same_shape() -> None:
    assert client_mismatches(ClusterService, ClusterClient) == []


def test_every_admin_method_has_a_client_method_of_the_same_shape() -> None:
    assert client_mismatches(AdminService, AdminClient, carried={"admin_key"}) == []


def test_every_dead_letter_method_has_a_client_method_of_the_same_shape() -> None:
    assert client_mismatches(AlertService, DeadLettersClient, carried={"admin_key"}, methods=DEAD_LETTER_METHODS) == []


async def test_the_cluster_client_reaches_every_worker_facing_method(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster(replication=False)
    client = ClusterClient(cluster.client, cluster.name)
    info = {"hostname": "portal-a.example", "port": 8080, "max_load": 10.0}
    assert await client.join(purpose="portal", worker_id="portal-1", info=info) == IN_SERVICE
    assert await client.keep_alive(worker_id="portal-1") == KEEPALIVE_OK
    assert await client.keep_alive(worker_id="ghost") == KEEPALIVE_WHOAREYOU
    await client.report_load(worker_id="portal-1", load=0.25)
    await client.report_state(worker_id="portal-1", state="available")
    placed = await client.schedule(purpose="portal", task="t-1", preference={}, reserve_time=30.0)
    assert placed == Scheduled(id="portal-1", info=info)
    assert await client.get_scheduled(purpose="portal", task="t-1") == placed
    assert await client.get_scheduled(purpose="portal", task="nobody") is None
    await client.claim(purpose="portal", task="t-1", worker_id="portal-1")
    await client.pick_up_tasks(worker_id="portal-1", tasks=["t-2"])
    await client.lay_down_task(worker_id="portal-1", task="t-2")
    await client.unschedule(worker_id="portal-1", task="t-2", purpose="portal")
    assert await client.portals(preference={}, exclude=[], limit=2) == [
        PortalAddress(id="portal-1", host="portal-a.example:8080", secure=False)]
    readiness = await client.readiness(purpose="portal")
    assert (readiness.state, readiness.schedulable) == (IN_SERVICE, 1)
    with pytest.raises(RpcRemoteError) as err:
        await client.replica_snapshot(admin_key=ADMIN_KEY)
    assert err.value.code == "not_replicating"  # it reached the method, which checked the key first
    await client.quit(worker_id="portal-1")
    assert await client.keep_alive(worker_id="portal-1") == KEEPALIVE_WHOAREYOU


async def test_the_admin_client_reaches_every_admin_method(make_cluster: MakeCluster) -> None:
    cluster = await make_cluster()
    await cluster.join("conference-1", purpose="conference")
    admin = AdminClient(cluster.client, cluster.name, admin_key=ADMIN_KEY)
    workers = await admin.get_workers(purpose="conference")
    assert [w.id for w in workers] == ["conference-1"]
    assert (await admin.get_worker(worker_id="conference-1")).purpose == "conference"
    assert await admin.get_tasks(worker_id="conference-1") == []
    drained: WorkerView = await admin.drain(worker_id="conference-1")
    assert drained.drained
    assert not (await admin.undrain(worker_id="conference-1")).drained
    assert (await admin.status()).workers == {"conference": 1}
    page = await admin.faults(since=0, limit=10)
    assert [fault.kind for fault in page.faults][-2:] == ["worker_drained", "worker_undrained"]
    assert [w.id for w in (await admin.overview()).workers] == ["conference-1"]
    with pytest.raises(RpcRemoteError) as err:
        await AdminClient(cluster.client, cluster.name, admin_key="wrong").status()
    assert err.value.code == "unauthorized"
