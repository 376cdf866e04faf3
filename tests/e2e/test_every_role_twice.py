"""Every role at least twice (issue 15): two token APIs on one PostgreSQL room store, two cluster
managers, two controllers and two portals, each its own process on RabbitMQ.  Under a steady load of
logins (token mint + login + leave, spread over both token APIs) and of texts relayed in rooms
whose participants are all on the portal that stays, one process of each role is killed (`kill -9`)
in turn: a token API, the active cluster manager, the controller holding the relaying rooms, and
the other portal.

Counted: no login failed (a login may mint again when its token names the killed portal, or ask
the other token API: the client's bounded retries, ``ClientSettings.login_attempts``); no relaying
participant was dropped or had to relog; every text the server acknowledged reached both ends of
its room exactly once and in order; no worker rejoined.  Printed: login latency p50/p99 in each
fault's window and the time each fault took to be detected (docs/architecture.md, *Every role twice*).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from switchboard.client import Client, ClientError
from tests.support.chaos import Chaos
from tests.support.numbered_texts import send_numbered
from tests.support.processes import ProcessCluster
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.slow]

#: Logins per second, at least, over all the login loops.
_RATE = 20
_LOOPS = 4
#: Seconds between two kills (each fault's window).
_PAUSE = 4.0
_RELAY_ROOMS = ("relay-a", "relay-b")
#: The relaying clients' portal: the one that is not killed (portal-N serves ISP isp-N).
_STAYS = {"isp": "isp-2"}


@dataclass
class Login:
    started: float
    latency: float = 0.0
    attempts: int = 0
    error: str = ""


@dataclass
class Relay:
    room: str
    sender: Client
    receiver: Client
    acked: list[str] = field(default_factory=list)
    #: Texts whose send failed: the server may still have taken them.
    unsure: set[str] = field(default_factory=set)


async def _logins(cluster: ProcessCluster, loop: int, stop: asyncio.Event, logins: list[Login]) -> None:
    """Mint + login + leave, paced to ``_RATE / _LOOPS`` per second; odd loops ask token-api-2 first."""
    apis = cluster.api_urls[loop % 2:] + cluster.api_urls[:loop % 2]
    n = 0
    while not stop.is_set():
        n += 1
        login = Login(time.monotonic())
        logins.append(login)
        try:
            client = await Client.join(apis, api_headers=cluster.service_headers, room=f"load-{n % 5}",
                                       user=f"u{loop}-{n}", role="presenter")
        except Exception as exc:  # noqa: BLE001 - every failure is counted and shown
            login.error = f"{type(exc).__name__}: {exc}"
        else:
            login.latency, login.attempts = time.monotonic() - login.started, client.login_attempts
            await client.leave()
        await asyncio.sleep(max(0.0, _LOOPS / _RATE - (time.monotonic() - login.started)))


async def _relay(cluster: ProcessCluster, room: str) -> Relay:
    pair = [await Client.join(cluster.api_urls, api_headers=cluster.service_headers, room=room, user=f"{room}-{who}",
                              role="presenter", preference=_STAYS) for who in ("sender", "receiver")]
    assert all(client.url == cluster.portal_url(2) for client in pair)
    return Relay(room, pair[0], pair[1])


async def _tasks(cluster: ProcessCluster, worker_id: str) -> set[str]:
    return {t["task"] for t in await cluster.admin("get_tasks", worker_id=worker_id) if t["state"] == "executing"}


def _event_ts(cluster: ProcessCluster, event: str, **match: str) -> float | None:
    for found in cluster.log_events(event):
        if all(found.get(k) == v for k, v in match.items()):
            return float(found["ts"])
    return None


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _report(logins: list[Login], windows: list[tuple[str, float, float]], detected: dict[str, float]) -> None:
    print()
    for name, start, end in windows:
        done = [x for x in logins if start <= x.started < end and not x.error]
        latencies = [x.latency * 1000 for x in done]
        retried = sum(1 for x in done if x.attempts > 1)
        line = (f"{name:<26} {len(done) / (end - start):5.1f} logins/s  p50 {statistics.median(latencies):6.0f} ms"
                f"  p99 {_quantile(latencies, 0.99):6.0f} ms  max {max(latencies):6.0f} ms  retried {retried}")
        if name in detected:
            line += f"  detected after {detected[name] * 1000:.0f} ms"
        print(line)


async def test_killing_one_process_of_each_role_fails_no_login_and_drops_no_relaying_participant(
    process_cluster: Callable[..., ProcessCluster], postgres_dsn: str, chaos: Chaos,
) -> None:
    pause = chaos.scale(_PAUSE, 2 * _PAUSE)  # each fault's window
    cluster = process_cluster(portals=2, controllers=2, managers=2, token_apis=2, postgres_dsn=postgres_dsn,
                              env_overrides={"SWITCHBOARD_LOG__JSON": "true"})
    await cluster.start()
    relays: list[Relay] = []
    stop_load, stop_texts = asyncio.Event(), asyncio.Event()
    logins: list[Login] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        relays = [await _relay(cluster, room) for room in _RELAY_ROOMS]
        for relay in relays:
            await relay.sender.next_event("participant", timeout=15)  # the receiver's join
        controllers = {await cluster.worker_id(f"controller-{n}"): f"controller-{n}" for n in (1, 2)}
        hosting = {wid: await _tasks(cluster, wid) for wid in controllers}
        relaying = max(hosting, key=lambda wid: len(hosting[wid] & set(_RELAY_ROOMS)))
        portal = await cluster.worker_id("portal-1")
        (manager,) = (e["role"] for e in cluster.log_events("manager_active"))

        tasks = [asyncio.create_task(_logins(cluster, n, stop_load, logins)) for n in range(_LOOPS)]
        tasks += [asyncio.create_task(send_numbered(relay.sender, relay.room, stop_texts, relay.acked, relay.unsure)) for relay in relays]
        await asyncio.sleep(pause)
        faults = [("token-api", "token API killed"), (manager, "active manager killed"),
                  (controllers[relaying], "relaying controller killed"), ("portal-1", "portal killed")]
        windows = [("steady", logins[0].started, time.monotonic())]
        killed_at: dict[str, float] = {}
        for role, name in faults:
            killed_at[name] = time.time()
            start = time.monotonic()
            cluster.kill(role)
            await asyncio.sleep(pause)
            windows.append((name, start, time.monotonic()))
        stop_load.set()
        await asyncio.gather(*tasks[:_LOOPS])

        # When each fault was detected: the other token API served the next login at once; the
        # standby became active; the cluster manager removed the dead controller and portal.
        api_start = windows[1][1]
        first = min(x.started + x.latency for x in logins if x.started >= api_start and not x.error)
        detected = {"token API killed": first - api_start}
        active = [e for e in cluster.log_events("manager_active") if e["role"] != manager]
        assert active, "the standby manager never became active"
        detected["active manager killed"] = float(active[0]["ts"]) - killed_at["active manager killed"]
        for wid, name in ((relaying, "relaying controller killed"), (portal, "portal killed")):
            removed = _event_ts(cluster, "worker_removed", worker_id=wid)
            assert removed is not None, f"{name}: never removed"
            detected[name] = removed - killed_at[name]
        _report(logins, windows, detected)

        failed = [(name, round(x.started - start, 2), x.error) for x in logins if x.error
                  for name, start, end in windows if start <= x.started < end]
        scenario = "one process of each role killed in turn (kill -9) under logins and relays"
        for name, start, end in windows:
            window = [x for x in logins if start <= x.started < end]
            chaos.record(scenario, f"logins (library): {name}", failed_logins=sum(1 for x in window if x.error),
                         errors=sum(1 for x in window if x.error), detected_s=detected.get(name),
                         notes=f"{len(window)} logins, {sum(1 for x in window if x.attempts > 1)} retried")
        assert failed == [], failed
        for name, start, end in windows:
            assert sum(1 for x in logins if start <= x.started < end) >= _RATE * pause / 4, f"too few logins: {name}"

        # Texts went on after the last kill, then every acked one reached both ends once, in order.
        counts = [len(relay.acked) for relay in relays]
        await wait_until(lambda: all(len(r.acked) >= c + 10 for r, c in zip(relays, counts)), timeout=30,
                         what="texts after the last kill")
        stop_texts.set()
        await asyncio.gather(*tasks[_LOOPS:])
        relayed = {"lost": 0, "duplicated": 0, "dropped": 0}
        for relay in relays:
            marker = f"{relay.room}-end"
            await relay.sender.send_text("all", marker)
            expected = [*relay.acked, marker]
            for client in (relay.sender, relay.receiver):
                got: list[str] = []
                while marker not in got:
                    got.append((await client.next_event("text", timeout=30)).data["message"])
                relayed["lost"] += len(set(expected) - set(got))
                relayed["duplicated"] += len(got) - len(set(got)) + client.duplicates
                relayed["dropped"] += int(client.reconnections > 0 or client.state != "ready")
                assert [t for t in got if t not in relay.unsure] == expected, relay.room
                assert len(got) == len(set(got)) and set(got) - set(expected) <= relay.unsure, relay.room
                assert (client.duplicates, client.out_of_order, client.reconnections) == (0, 0, 0), relay.room
                assert client.state == "ready" and client.drain_events("drop") == [], relay.room
                assert client.drain_events("participant") == [], relay.room  # no leave, no second join
            print(f"{relay.room}: {len(relay.acked)} texts acked, {len(relay.unsure)} refused during a move")
        assert cluster.log_events("worker_rejoined") == []
        chaos.record(scenario, "extension (relaying)", **relayed,
                     notes=f"{sum(len(r.acked) for r in relays)} texts acked, {sum(len(r.unsure) for r in relays)} "
                           "refused during a move")
    except BaseException:
        print(cluster.logs_tail(3000))
        raise
    finally:
        stop_load.set()
        stop_texts.set()
        for task in tasks:
            task.cancel()
        for relay in relays:
            for client in (relay.sender, relay.receiver):
                with contextlib.suppress(Exception):
                    await client.close()
