"""Every role of a process cluster observed as an operator's tools see it (docs/operations.md): its
``/healthz``, ``/readyz`` and ``/metrics`` (what the Grafana dashboard in ``docs/grafana`` queries is
exported), and its ``--log-json`` lines: one JSON object per line, fields as fields, one line for a
token request that failed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from switchboard.client import Client
from tests.support.processes import ProcessCluster
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp, pytest.mark.slow]

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "switchboard.json"
_METRIC = re.compile(r"\b(?:switchboard|process|python)_[a-z0-9_]+\b")
_EVENT = re.compile(r"[a-z][a-z0-9_]*")

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def dashboard_metrics() -> set[str]:
    """The metric names the dashboard's panels query."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    exprs = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    assert exprs, "the dashboard queries nothing"
    return {name for expr in exprs for name in _METRIC.findall(expr)}


def _bases(cluster: ProcessCluster) -> dict[str, str]:
    """Where each role serves ``/healthz``, ``/readyz`` and ``/metrics``."""
    return {
        "cluster-manager": cluster.observe_url("cluster-manager"),
        "controller-1": cluster.observe_url("controller-1"),
        "token-api": cluster.api_url,
        "portal-1": cluster.portal_url(1),
    }


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def _metrics(base: str) -> Samples:
    status, text = await _get(f"{base}/metrics")
    assert status == 200, text
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def _lines(cluster: ProcessCluster, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in cluster.roles[name].log.read_text().splitlines()]


async def test_every_role_answers_health_and_metrics_and_logs_json_one_line_per_event(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = process_cluster(portals=1, controllers=1, managers=1, env_overrides={"SWITCHBOARD_LOG__JSON": "true"})
    await cluster.start()
    bases = _bases(cluster)
    for name, base in bases.items():
        status, _ = await _get(f"{base}/healthz")
        assert status == 200, name

        async def ready(base: str = base) -> bool:
            return (await _get(f"{base}/readyz"))[0] == 200

        await wait_until(ready, timeout=15, what=f"{name} ready")

    # Traffic every panel has series for: a login (RPC handlers, a minted token, a portal login).
    alice = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="watched", user="alice",
                              role="presenter")
    await alice.leave()

    # The only portal drained: a token request is refused after its retries, and logged once.
    await cluster.admin("drain", worker_id=await cluster.worker_id("portal-1"))
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{cluster.api_url}/token", headers=cluster.service_headers,
                             json={"room": "watched", "user": "bob", "role": "presenter"}) as response:
            assert response.status == 503, await response.text()
    (refused,) = cluster.log_events("no_portal")
    assert (refused["role"], refused["level"], refused["method"], refused["path"]) == (
        "token-api", "warning", "POST", "/token")
    assert refused["attempts"] > 1  # retried within its budget, and still one line
    request = [line for line in _lines(cluster, "token-api") if line.get("request") == refused["request"]]
    assert [line["event"] for line in request] == ["no_portal"]
    assert cluster.log_events("schedule_failed") == []  # the manager's answer to each attempt: debug

    exported: set[str] = set()
    for name, base in bases.items():
        samples = await _metrics(base)
        exported |= {sample for sample, _ in samples}
        assert samples[("switchboard_broker_connected", ())] == 1, name
        assert ("process_resident_memory_bytes", ()) in samples, name
        assert ("python_gc_collections_total", (("generation", "0"),)) in samples, name
        unhandled = {labels: value for (sample, labels), value in samples.items()
                     if sample == "switchboard_unhandled_exceptions_total"}
        assert unhandled and set(unhandled.values()) == {0}, (name, unhandled)
    token_api = await _metrics(bases["token-api"])
    assert token_api[("switchboard_token_scheduling_failures_total", (("reason", "no_worker_available"),))] == 1
    missing = dashboard_metrics() - exported
    assert not missing, f"the dashboard queries metrics no role exports: {sorted(missing)}"

    # Each role announced itself once, without the broker's password.
    ups = cluster.log_events("role_up")
    assert sorted(e["role"] for e in ups) == sorted(bases) and all(":***@" in e["broker"] for e in ups), ups

    # Every line of every role is one JSON object; our events are names, their fields are fields.
    for name in bases:
        for line in _lines(cluster, name):
            assert {"ts", "level", "logger", "event"} <= line.keys(), (name, line)
            if line["logger"].startswith("switchboard"):
                assert _EVENT.fullmatch(line["event"]), (name, line)
