"""``/healthz``, ``/readyz`` and ``/metrics`` of the cluster managers and the controller, each a
process of its own on RabbitMQ (docs/operations.md, "Health and metrics")."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from switchboard.client import Client
from tests.support.processes import ProcessCluster
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp, pytest.mark.slow]

_MANAGERS = ("cluster-manager", "cluster-manager-2")


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def _ready(cluster: ProcessCluster, name: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{cluster.observe_url(name)}/readyz") as response:
        return response.status, await response.json()


async def _metrics(cluster: ProcessCluster, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    status, text = await _get(f"{cluster.observe_url(name)}/metrics")
    assert status == 200
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


async def test_every_manager_and_controller_answers_health_and_metrics_and_a_standby_says_when_it_is_active(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = process_cluster(portals=1, controllers=1, managers=2)
    await cluster.start()
    for name in (*_MANAGERS, "controller-1"):
        assert await _get(f"{cluster.observe_url(name)}/healthz") == (200, '{"status": "ok"}')
        await wait_until(functools.partial(_ready_status, cluster, name), what=f"{name} ready")

    roles = {name: (await _ready(cluster, name))[1]["role"] for name in _MANAGERS}
    assert sorted(roles.values()) == ["active", "standby"], roles
    (active,) = (name for name, role in roles.items() if role == "active")
    (standby,) = (name for name in _MANAGERS if name != active)
    metrics = await _metrics(cluster, active)
    assert metrics[("switchboard_cluster_manager_active", ())] == 1
    assert metrics[("switchboard_cluster_manager_workers", (("purpose", "conference"), ("state", "available")))] == 1
    assert metrics[("switchboard_cluster_manager_workers", (("purpose", "portal"), ("state", "available")))] == 1
    assert ("process_resident_memory_bytes", ()) in metrics
    assert (await _metrics(cluster, standby))[("switchboard_cluster_manager_active", ())] == 0

    # A client in a room: the controller's gauges count it.
    before = await _metrics(cluster, "controller-1")
    assert before[("switchboard_controller_rooms", ())] == 0
    assert before[("switchboard_controller_broker_connected", ())] == 1
    alice = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="observed", user="alice",
                              role="presenter")
    after = await _metrics(cluster, "controller-1")
    assert after[("switchboard_controller_rooms", ())] == 1
    assert after[("switchboard_controller_participants", ())] == 1
    assert after[("switchboard_controller_journal_appends_total", ())] > before[
        ("switchboard_controller_journal_appends_total", ())]
    assert ("python_gc_collections_total", (("generation", "0"),)) in after
    assert after[("switchboard_rpc_handler_seconds_count", (("method", "join"),))] == 1
    status, body = await _ready(cluster, "controller-1")
    assert status == 200 and body["status"] == "ready", body
    await alice.leave()

    # The active manager dies: the standby's /readyz says it is the active one now.
    cluster.kill(active)

    async def standby_active() -> bool:
        return (await _ready(cluster, standby))[1].get("role") == "active"

    await wait_until(standby_active, timeout=15, what=f"{standby} active")
    status, body = await _ready(cluster, standby)
    assert (status, body["status"], body["epoch"]) == (200, "ready", 2), body
    assert (await _metrics(cluster, standby))[("switchboard_cluster_manager_promotions_total", ())] == 1


async def _ready_status(cluster: ProcessCluster, name: str) -> bool:
    try:
        return (await _ready(cluster, name))[0] == 200
    except aiohttp.ClientError:
        return False
