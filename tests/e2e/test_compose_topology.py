"""The reference cluster of ``deploy/compose.yaml`` run from processes (no containers here): as many
of each role as the compose file runs, with its settings, on RabbitMQ and a PostgreSQL room store.
A client logs in through every token API and every portal, and texts cross between the portals."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml  # type: ignore[import-untyped]  # no stubs installed; PyYAML itself is a test dependency

from switchboard.client import Client
from tests.support.processes import ProcessCluster

pytestmark = [pytest.mark.amqp, pytest.mark.postgres]

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "compose.yaml"
#: What the process cluster sets its own way (its broker, database, keys and unique names).
_OWN = ("SWITCHBOARD_RPC__", "SWITCHBOARD_KEYS__", "SWITCHBOARD_TOKEN_API__SERVICE_KEYS", "SWITCHBOARD_TOKEN_API__STORE__")


def _topology() -> tuple[dict[str, int], dict[str, str]]:
    """How many processes of each role the compose file runs, and the settings they share."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    ours = [s for s in services.values() if s.get("image", "").startswith("switchboard")]
    counts: dict[str, int] = {}
    for service in ours:
        counts[service["command"][0]] = counts.get(service["command"][0], 0) + 1
    shared = {key: str(value) for key, value in ours[0]["environment"].items() if not key.startswith(_OWN)}
    return counts, shared


async def test_the_compose_topology_serves_logins_through_every_token_api_and_portal(
    process_cluster: Callable[..., ProcessCluster], postgres_dsn: str,
) -> None:
    counts, shared = _topology()
    assert min(counts.values()) >= 2 and set(counts) == {"cluster-manager", "token-api", "controller", "portal"}
    shared.pop("SWITCHBOARD_LOG__JSON", None)  # the cluster's log helpers read its text lines
    cluster = process_cluster(portals=counts["portal"], controllers=counts["controller"],
                              managers=counts["cluster-manager"], token_apis=counts["token-api"],
                              postgres_dsn=postgres_dsn, env_overrides=shared)
    await cluster.start()
    clients: list[Client] = []
    try:
        workers = await cluster.admin("get_workers")
        purposes = sorted(w["purpose"] for w in workers)
        assert purposes == sorted(["portal"] * counts["portal"] + ["conference"] * counts["controller"])
        for n, api in enumerate(cluster.api_urls):
            for portal in range(counts["portal"]):
                clients.append(await Client.join(api, api_headers=cluster.service_headers, room="tour",
                                                 user=f"u{n}-{portal}", role="presenter",
                                                 preference={"isp": f"isp-{portal + 1}"}))
        assert {c.url for c in clients} == {cluster.portal_url(p + 1) for p in range(counts["portal"])}
        sender, *others = clients
        await sender.send_text("all", "hello everyone")
        for other in others:
            event = await other.next_event("text", timeout=15)
            assert event.data["message"] == "hello everyone"
    except BaseException:
        print(cluster.logs_tail(4000))
        raise
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
