"""Alerts and dead letters of an embedded server, through its entry points: a fault cast to the alert
service (as every source sends one), a Slack-format webhook receiver, and the real
``switchboard admin dead-letters`` CLI over the server's ``/admin/rpc``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio

from alerts import Fault, FaultReporter
from tests.conftest import MakeEmbedded
from tests.support.waiting import wait_until
from tests.support.webhook import WebhookReceiver

_ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    await hook.start()
    yield hook
    await hook.stop()


async def cli(*args: str, url: str, key: str) -> tuple[int, str]:
    """``switchboard admin dead-letters ARGS`` in a process of its own; its exit code and output."""
    env = {**os.environ, "PYTHONPATH": str(_ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard", "admin", "dead-letters", *args, "--url", url, "--key", key,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=_ROOT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


def _alerts_settings(url: str) -> dict[str, Any]:
    return {"sinks": [{"name": "ops", "kind": "slack", "url": url}], "group_window": 0.3, "attempts": 3,
            "backoff_initial": 0.01, "backoff_max": 0.05, "backoff_jitter": 0.0}


async def test_repeated_faults_go_out_as_one_slack_alert_with_their_count(
    make_embedded: MakeEmbedded, receiver: WebhookReceiver,
) -> None:
    server = await make_embedded(alerts=_alerts_settings(receiver.url))
    reporter = FaultReporter(server.broker.transport("test-source"), server.settings.cluster_manager.name)
    for i in range(20):
        reporter.report(Fault(kind="handler_failed", severity="error", subject="svc.method",
                              summary=f"svc.method failed: KeyError ({i})"))
    await wait_until(lambda: receiver.accepted, what="an alert")
    await wait_until(lambda: server.alerts.tallies.faults["handler_failed"] == 20, what="every fault received")
    [body] = receiver.accepted
    assert set(body) == {"text", "blocks"}
    assert "svc.method failed: KeyError (0) (+19 related)" in body["text"]
    assert "20 faults" in body["text"]
    assert server.alerts.tallies.sent["ops"] == 1
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.api_url}/metrics") as response:
            metrics = await response.text()
    assert 'switchboard_alerts_sent_total{sink="ops"} 1.0' in metrics
    assert 'switchboard_faults_received_total{kind="handler_failed"} 20.0' in metrics
    # The status page's timeline shows the alert that went out.
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{server.api_url}/admin/rpc", json={"method": "faults", "args": {"since": 0}},
                             headers=server.admin_headers) as response:
            timeline = (await response.json())["result"]["faults"]
    [entry] = [f for f in timeline if f["kind"] == "alert"]
    assert (entry["severity"], entry["detail"]["count"]) == ("error", 20)
    assert entry["detail"]["summary"] == "svc.method failed: KeyError (0) (+19 related)"


async def test_an_undeliverable_alert_becomes_a_dead_letter_the_cli_lists_retries_and_purges(
    make_embedded: MakeEmbedded, receiver: WebhookReceiver,
) -> None:
    receiver.status = 500
    server = await make_embedded(alerts=_alerts_settings(receiver.url))
    url, key = server.api_url, server.admin_key
    reporter = FaultReporter(server.broker.transport("test-source"), server.settings.cluster_manager.name)
    reporter.report(Fault(kind="worker_lost", severity="error", subject="portal-9", summary="portal-9 lost"))

    # 3 attempts for the alert, then 3 for the alert telling of its dead letter (which is not told again).
    await wait_until(lambda: len(server.alerts.tallies.stored) and server.alerts.tallies.stored["alert"] == 2,
                     what="two dead letters")
    assert receiver.answers == [500] * 6 and receiver.accepted == []
    tallies = server.alerts.tallies
    assert (tallies.failed["ops"], tallies.dead_lettered["ops"], tallies.sent["ops"]) == (6, 2, 0)

    code, out = await cli("list", "--json", url=url, key=key)
    assert code == 0, out
    letters = json.loads(out)
    lost = next(d for d in letters if d["description"].startswith("alert: portal-9 lost"))
    assert (lost["origin"], lost["to"], lost["attempts"], lost["reason"]) == ("alert", "ops", 3, "HTTP 500")
    code, out = await cli("list", url=url, key=key)
    assert code == 0 and lost["id"] in out and "HTTP 500" in out
    assert receiver.url not in out and "secret-token-part" not in out

    code, out = await cli("show", lost["id"], url=url, key=key)
    assert code == 0 and json.loads(out)["alert"]["faults"][0]["subject"] == "portal-9"

    code, out = await cli("retry", lost["id"], url=url, key=key)  # still 500: kept
    assert code == 1 and "retry_failed" in out
    receiver.status = 200
    code, out = await cli("retry", lost["id"], url=url, key=key)
    assert code == 0, out
    [body] = receiver.accepted
    assert "portal-9 lost" in body["text"]
    code, out = await cli("list", "--json", url=url, key=key)
    assert [d["id"] for d in json.loads(out)] == [d["id"] for d in letters if d["id"] != lost["id"]]

    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.api_url}/metrics") as response:
            metrics = await response.text()
    for line in ('switchboard_alerts_failed_total{sink="ops"} 7.0', 'switchboard_alerts_dead_lettered_total{sink="ops"} 2.0',
                 'switchboard_dead_letters_stored_total{origin="alert"} 2.0', 'switchboard_alerts_sent_total{sink="ops"} 1.0'):
        assert line in metrics, metrics
    code, out = await cli("purge", url=url, key=key)
    assert code == 0 and "1 dead letter(s) purged" in out
    code, out = await cli("list", url=url, key=key)
    assert code == 0 and out.strip() == "no dead letters"
    code, out = await cli("list", url=url, key="not-the-admin-key-" + "x" * 20)
    assert code == 1 and "unauthorized" in out
