"""Two cluster-manager processes, one active and one hot standby, on RabbitMQ: killing or freezing the
active one under a stream of token mints and logins (docs/cluster-manager.md §Standbys)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from switchboard.client import Client, mint_token
from tests.client.node_harness import NodeHarness
from tests.support.chaos import Chaos
from tests.support.numbered_texts import send_numbered
from tests.support.processes import ProcessCluster
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp, pytest.mark.slow]

_MANAGERS = ("cluster-manager", "cluster-manager-2")
#: Logins (each a token mint, a schedule at the manager, and a claim at login) per second, at least.
_RATE = 20


def _active(cluster: ProcessCluster) -> list[str]:
    """The manager processes that became active, in order."""
    return [e["role"] for e in cluster.log_events("manager_active")]


async def _logins(cluster: ProcessCluster, stop: asyncio.Event, done: list[float], failed: list[str]) -> None:
    """Token mint + login + leave in a loop, paced to ``_RATE`` per second over all loops."""
    n = 0
    while not stop.is_set():
        started = time.monotonic()
        n += 1
        try:
            client = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room=f"load-{n % 5}",
                                       user=f"u{n}-{id(done) % 1000}", role="presenter")
            await client.leave()
            done.append(time.monotonic())
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            failed.append(f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(max(0.0, 4 / _RATE - (time.monotonic() - started)))


async def _under_load(cluster: ProcessCluster, fault: Callable[[], None], after: Callable[[], Awaitable[None]],
                     settle: float = 3.0) -> tuple[list[float], list[str], float]:
    stop = asyncio.Event()
    done: list[float] = []
    failed: list[str] = []
    loops = [asyncio.create_task(_logins(cluster, stop, done, failed)) for _ in range(4)]
    await asyncio.sleep(2.0)
    at = time.monotonic()
    fault()
    await after()
    await asyncio.sleep(settle)
    stop.set()
    await asyncio.gather(*loops)
    return done, failed, at


def _longest_gap(times: list[float], since: float) -> float:
    """The longest time from ``since`` on with no login completed."""
    marks = [since, *sorted(t for t in times if t > since)]
    return max((b - a for a, b in zip(marks, marks[1:])), default=0.0)


async def test_killing_the_active_manager_under_logins_fails_none_and_no_worker_rejoins(
    process_cluster: Callable[..., ProcessCluster], chaos: Chaos,
) -> None:
    cluster = process_cluster(portals=1, controllers=1, managers=2, env_overrides={"SWITCHBOARD_LOG__JSON": "true"})
    await cluster.start()
    node = NodeHarness()  # the npm socket.io-client speaking the OWT SDK's protocol, in the relay's room
    try:
        await node.start()
        joined = await node.command("join", token=await mint_token(cluster.api_url, "steady", "nina", "presenter",
                                                                   headers=cluster.service_headers))
        assert joined["ok"], joined
        alice = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="steady", user="alice",
                                  role="presenter")
        bob = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="steady", user="bob",
                                role="presenter")
        (first,) = _active(cluster)
        (standby,) = (name for name in _MANAGERS if name != first)

        async def taken_over() -> None:
            await wait_until(lambda: len(_active(cluster)) == 2, timeout=10, what="the standby active")

        stop_relay = asyncio.Event()
        acked: list[str] = []
        refused: list[str] = []
        relay = asyncio.create_task(send_numbered(alice, "relay", stop_relay, acked, set(), refused, pause=0.02))
        killed_wall: list[float] = []

        def kill() -> None:
            killed_wall.append(time.time())
            cluster.kill(first)

        done, failed, killed_at = await _under_load(cluster, kill, taken_over, settle=chaos.scale(3.0, 10.0))
        stop_relay.set()
        await relay
        detected = float(cluster.log_events("manager_active")[-1]["ts"]) - killed_wall[0]
        chaos.record("cluster manager kill -9 under logins and relays", "logins (library)", failed_logins=len(failed),
                     errors=len(failed), detected_s=detected, recovery_s=_longest_gap(done, killed_at),
                     notes=f"{len(done)} logins; detected: the standby active; recovery: the longest time "
                           "from the kill with no login completed")
        assert failed == []
        assert _active(cluster) == [first, standby]
        after = [t for t in done if t > killed_at]
        assert len(after) >= _RATE * 2, len(after)  # logins went on through the failover
        # Relays went on all along (they never ask the manager): every acked text reached bob once,
        # in order; nobody was dropped and no worker rejoined: the standby served from its copy.
        await alice.send_text("all", "after the failover")
        got: list[str] = []
        while "after the failover" not in got:
            got.append((await bob.next_event("text", timeout=10)).data["message"])
        chaos.record("cluster manager kill -9 under logins and relays", "extension", errors=len(refused),
                     lost=len(set(acked) - set(got)), duplicated=len(got) - len(set(got)) + bob.duplicates,
                     dropped=sum(c.reconnections for c in (alice, bob)), notes=f"{len(acked)} texts relayed")
        assert refused == [] and len(acked) > 50, (len(acked), refused[:3])
        assert got == [*acked, "after the failover"]
        assert alice.reconnections == bob.reconnections == 0
        node_texts = await node.texts_until("after the failover")  # it kept its place, nothing lost
        assert node.lost_its_place() == [] and node.drain_events("relogin") == []
        assert [t for i, t in enumerate(node_texts) if t not in node_texts[:i]] == [*acked, "after the failover"]
        chaos.record("cluster manager kill -9 under logins and relays", "npm socket.io-client (OWT SDK protocol)",
                     duplicated=len(node_texts) - len(set(node_texts)), notes="one client in the relay's room")
        assert cluster.log_events("worker_rejoined") == []
        assert [e["role"] for e in cluster.log_events("worker_joined")] == [first, first]
        assert cluster.log_events("worker_removed") == []
        # The admin status names the active process and its epoch.
        status = await cluster.admin("status")
        assert (status["node"], status["epoch"]) == (cluster.log_events("manager_active")[-1]["node"], 2)
    finally:
        await node.close()
        cluster.stop()


async def test_a_frozen_active_manager_is_replaced_and_does_not_act_when_it_resumes(
    process_cluster: Callable[..., ProcessCluster], chaos: Chaos,
) -> None:
    cluster = process_cluster(portals=1, controllers=1, managers=2, env_overrides={
        "SWITCHBOARD_LOG__JSON": "true", "SWITCHBOARD_RPC__HEARTBEAT": "2"})
    await cluster.start()
    try:
        (first,) = _active(cluster)
        (standby,) = (name for name in _MANAGERS if name != first)
        paused_at = time.time()
        cluster.roles[first].pause()
        await wait_until(lambda: len(_active(cluster)) == 2, timeout=20, what="the standby active")
        detected = float(cluster.log_events("manager_active")[-1]["ts"]) - paused_at
        cluster.roles[first].cont()
        await wait_until(lambda: cluster.log_events("manager_deposed"), timeout=10, what="the old leader deposed")
        # Logins work against the new leader; the resumed one removed nobody and published nothing.
        client = await Client.join(cluster.api_url, api_headers=cluster.service_headers, room="after", user="carol",
                                   role="presenter")
        await client.leave()
        chaos.record("cluster manager SIGSTOP, then SIGCONT", "logins (library)", detected_s=detected,
                     notes="one login after the standby took over; no clients during the freeze")
        assert _active(cluster) == [first, standby]
        assert [e["role"] for e in cluster.log_events("manager_deposed")] == [first]
        assert cluster.log_events("worker_removed") == []
        # Workers whose keepalives failed for the whole freeze (longer than their recovery) rejoin:
        # at the new leader, never at the resumed one.
        assert {e["role"] for e in cluster.log_events("worker_rejoined")} <= {standby}
    finally:
        cluster.stop()
