"""Alerts and dead letters of a cluster of role processes on RabbitMQ (issue 17), with two cluster
managers (the active one tells, its standby does not): a controller killed with rooms sends exactly
one grouped Slack-format alert naming it and its failover's result; a portal killed while the
receiver answers 500 gets the bounded retries, then a dead letter on the broker's dead-letter queue
that the real ``switchboard admin dead-letters`` CLI lists (also after the manager that wrote it was
killed), retries and purges."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from switchboard.client import Client
from tests.support.processes import ProcessCluster
from tests.support.waiting import wait_until
from tests.support.webhook import WebhookReceiver

pytestmark = [pytest.mark.amqp, pytest.mark.slow]

WINDOW = 6.0  # a loaded machine may take seconds from the loss to the failover result


async def _cli(cluster: ProcessCluster, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard", "admin", "dead-letters", *args, "--broker", cluster.broker_url,
        "--key", cluster.admin_key, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=cluster.env)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def _counter(cluster: ProcessCluster, line: str) -> float:
    """The sum of a counter's sample over both cluster managers' ``/metrics``."""
    total = 0.0
    async with aiohttp.ClientSession() as http:
        for name in ("cluster-manager", "cluster-manager-2"):
            if cluster.roles[name].proc is None or cluster.roles[name].proc.poll() is not None:  # type: ignore[union-attr]
                continue
            async with http.get(f"{cluster.observe_url(name)}/metrics") as response:
                for sample in (await response.text()).splitlines():
                    if sample.startswith(line + " "):
                        total += float(sample.split()[-1])
    return total


async def test_a_killed_controller_is_one_alert_and_an_unreachable_receiver_leaves_a_dead_letter(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    receiver = WebhookReceiver()
    await receiver.start()
    cluster = process_cluster(portals=2, controllers=2, managers=2, env_overrides={
        "SWITCHBOARD_ALERTS__SINKS": json.dumps([{"name": "slack", "kind": "slack", "url": receiver.url}]),
        "SWITCHBOARD_ALERTS__GROUP_WINDOW": str(WINDOW),
        "SWITCHBOARD_ALERTS__ATTEMPTS": "3",
        "SWITCHBOARD_ALERTS__BACKOFF_INITIAL": "0.05",
        "SWITCHBOARD_ALERTS__BACKOFF_MAX": "0.1",
        "SWITCHBOARD_ALERTS__BACKOFF_JITTER": "0",
    })
    clients: list[Client] = []
    try:
        await cluster.start()
        for who, isp in (("alice", "isp-1"), ("bob", "isp-2")):
            clients.append(await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="alerted",
                                             user=who, role="presenter", preference={"isp": isp}))
        name, lost = await cluster.holder_of("alerted")
        assert receiver.answers == []
        cluster.kill(name)  # SIGKILL: no quit
        await wait_until(lambda: receiver.accepted, timeout=20, what="an alert")
        # The room moved (its clients carry on); then one more window for any alert that would follow.
        await clients[0].send_text("all", "after the failover")
        assert (await clients[1].next_event("text", timeout=20)).data["message"] == "after the failover"
        await asyncio.sleep(WINDOW + 1.0)
        assert len(receiver.accepted) == 1, [b["text"] for b in receiver.accepted]
        [body] = receiver.accepted
        assert set(body) == {"text", "blocks"}
        text: str = body["text"]
        assert f"conference worker {lost} lost (connection lost)" in text, text
        assert f"failover of {lost}: 1 room(s) moved, 0 failed" in text, text
        assert "2 faults" in text, text
        assert await _counter(cluster, 'switchboard_alerts_sent_total{sink="slack"}') == 1
        for client in clients:
            await client.leave()
        clients.clear()

        receiver.status = 500
        portal = await cluster.worker_id("portal-2")
        cluster.kill("portal-2")
        await wait_until(lambda: receiver.answers.count(500) >= 3, timeout=20, what="three attempts")

        async def listed() -> list[dict[str, Any]]:
            code, out = await _cli(cluster, "list", "--json")
            assert code == 0, out
            # The alert of the portal's loss (not the one telling of its dead letter, which names it too).
            return [d for d in json.loads(out) if d["description"].startswith(f"alert: portal worker {portal} lost")]

        [letter] = await wait_until(listed, timeout=20, what="the dead letter")
        assert (letter["origin"], letter["to"], letter["attempts"], letter["reason"]) == ("alert", "slack", 3,
                                                                                          "HTTP 500")
        assert await _counter(cluster, 'switchboard_alerts_dead_lettered_total{sink="slack"}') >= 1
        # On the broker, not in a process: the other manager's alert service finds it.
        cluster.kill("cluster-manager")
        assert await wait_until(listed, timeout=20, what="the dead letter after the kill") == [letter]
        receiver.status = 200
        code, out = await _cli(cluster, "retry", letter["id"])
        assert code == 0, out
        assert any(portal in b["text"] for b in receiver.accepted[1:])
        assert await listed() == []
        code, out = await _cli(cluster, "purge")
        assert code == 0, out
        code, out = await _cli(cluster, "list")
        assert (code, out.strip()) == (0, "no dead letters")
    except BaseException:
        print(cluster.logs_tail(3000))
        raise
    finally:
        for client in clients:
            await client.close()
        await receiver.stop()
