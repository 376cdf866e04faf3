"""``kill -9`` of a portal: what each kind of client gets (issue: portal death and broker faults).

Real processes on RabbitMQ: a cluster manager, a token API, one controller and two portals —
``portal-1`` (ISP ``isp-1``, region ``r1``) and ``portal-2`` (ISPs ``isp-1`` and ``isp-2``, region
``r2``).  In one room: six Python library clients with the switchboard extension and three bare
python-socketio clients speaking plain OWT on ``portal-1``; on ``portal-2`` a library client sending
numbered texts every 20 ms and a library client that only listens.  ``portal-1`` is killed while
the texts flow.

- The library clients were told ``portal-2`` as an alternative at login (same ISP, the only other
  portal); nothing else tells them where to go: each relogs in there by itself, once, and gets every
  text the server acknowledged exactly once and in order (``docs/protocol.md`` §3.9).
- The bare clients reconnect to ``portal-2`` because the test sends them there (what a load balancer
  in front of the portals does) and relog in with the OWT form; they get what ``docs/protocol.md`` §5.3
  promises: nothing lost, and possibly again, right after the relogin and before anything new, the
  texts they received last before the kill, within the portal's batched-ack window.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable, Awaitable
from dataclasses import dataclass, field
from typing import Any

from switchboard.client import Client, ClientError, ClientSettings, Event
from switchboard.client.tokens import mint_token, portal_url
from tests.support.chaos import Chaos
from tests.support.processes import ProcessCluster
from tests.support.sockets import RecordingClient
from tests.support.waiting import wait_until

ROOM = "portal-death"
HOME = {"isp": "isp-1", "region": "r1"}  # portal-1, and portal-2 as the alternative
SURVIVOR = {"isp": "isp-2"}  # portal-2 only
#: The portal's batched acks for plain clients (``portal.ack_interval``, the default).
ACK_INTERVAL = 0.05
#: What a loaded 2-core machine adds to that window: the ack cast's way to the controller and the
#: event loops' lag.
LAG = 0.5
SETTINGS = ClientSettings(request_timeout=15.0)


class TimedClient(RecordingClient):
    """A bare OWT client that also records when each event arrived (``time.monotonic``)."""

    def __init__(self, url: str) -> None:
        self.times: list[float] = []
        super().__init__(url)

    def _recorder(self, event: str) -> Callable[..., Awaitable[None]]:
        inner = super()._recorder(event)

        async def record(*args: Any) -> None:
            self.times.append(time.monotonic())
            await inner(*args)

        return record

    def timed_texts(self) -> list[tuple[str, float]]:
        return [(data["message"], t) for (event, data), t in zip(self.received, self.times) if event == "text"]


@dataclass
class Bare:
    """A plain OWT client across the kill: its socket at ``portal-1``, then the one at ``portal-2``."""

    before: TimedClient
    ticket: str
    after: TimedClient | None = None


@dataclass
class Texts:
    acked: list[str] = field(default_factory=list)
    #: Sends that failed (the server may still have taken them).
    unsure: set[str] = field(default_factory=set)


async def _join(cluster: ProcessCluster, user: str, preference: dict[str, str]) -> Client:
    return await Client.join(cluster.api_url, api_headers=cluster.service_headers, room=ROOM, user=user,
                             role="presenter", preference=preference, settings=SETTINGS)


async def _bare(cluster: ProcessCluster, user: str) -> Bare:
    token = await mint_token(cluster.api_url, ROOM, user, "presenter", preference=HOME,
                             headers=cluster.service_headers)
    client = await TimedClient(cluster.portal_url(1)).connect()
    result = await client.login_ok(token)
    return Bare(client, result["reconnectionTicket"])


async def _send_all_along(sender: Client, texts: Texts, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        text = f"t{n}"
        n += 1
        try:
            await sender.send_text("all", text)
        except ClientError:
            texts.unsure.add(text)
            continue
        texts.acked.append(text)
        await asyncio.sleep(0.02)


async def _relog_bare(cluster: ProcessCluster, bare: Bare) -> None:
    """What the OWT SDK does behind a load balancer: a new socket (at the survivor), ``relogin`` with
    the bare ticket first."""
    await asyncio.wait_for(bare.before.disconnected.wait(), 10)
    again = await TimedClient(cluster.portal_url(2)).connect()
    status, ticket = await again.call("relogin", bare.ticket)
    assert status == "ok" and isinstance(ticket, str), ticket
    bare.after = again


def _check_plain(bare: Bare, expected: list[str], unsure: set[str], killed: float) -> tuple[int, int]:
    """``docs/protocol.md`` §5.3 for one plain client; ``(duplicates, lost)``."""
    assert bare.after is not None
    before = bare.before.timed_texts()
    after = [text for text, _ in bare.after.timed_texts()]
    got_before = [text for text, _ in before]
    seen = set(got_before)
    replayed = 0
    while replayed < len(after) and after[replayed] in seen:
        replayed += 1
    again, rest = after[:replayed], after[replayed:]
    # The repeats are the last texts it had, in the same order, right after the relogin ack…
    assert again == got_before[len(got_before) - len(again):], (again, got_before[-10:])
    # …within the window of the batched acks that died with the portal…
    first_seen = dict(reversed(before))
    assert all(first_seen[text] >= killed - ACK_INTERVAL - LAG for text in again), (again, killed)
    # …and nothing else twice, nothing lost, everything in the order sent.
    assert not seen & set(rest)
    whole = got_before + rest
    assert len(whole) == len(set(whole))
    lost = [text for text in expected if text not in seen and text not in rest]
    assert [t for t in whole if t not in unsure] == [t for t in expected if t not in lost]
    return len(again), len(lost)


def _stamp(times: dict[str, float], key: str) -> Callable[[Event], None]:
    def stamp(_: Event) -> None:
        times.setdefault(key, time.monotonic())

    return stamp


def _has_text(client: RecordingClient, text: str) -> Callable[[], bool]:
    return lambda: text in client.texts()


async def test_a_portal_killed_under_load_its_library_clients_relog_at_the_sibling_by_themselves(
    process_cluster: Callable[..., ProcessCluster], chaos: Chaos,
) -> None:
    cluster = process_cluster(portals=2, controllers=1, env_overrides={"SWITCHBOARD_LOG__JSON": "true"})
    cluster.roles["portal-1"].argv += ["--region", "r1"]
    cluster.roles["portal-2"].argv += ["--isp", "isp-1", "--region", "r2"]
    await cluster.start()
    clients: list[Client] = []
    bares: list[Bare] = []
    stop = asyncio.Event()
    sending: asyncio.Task[None] | None = None
    try:
        victims = [await _join(cluster, f"ext-{n}", HOME) for n in range(chaos.scale(6, 12))]
        sender = await _join(cluster, "sender", SURVIVOR)
        listener = await _join(cluster, "listener", SURVIVOR)
        clients = [*victims, sender, listener]
        bares = [await _bare(cluster, f"bare-{n}") for n in range(chaos.scale(3, 6))]
        assert {c.url for c in victims} == {cluster.portal_url(1)}
        assert {c.url for c in (sender, listener)} == {cluster.portal_url(2)}
        assert all(c.alternatives == [cluster.portal_url(2)] for c in victims)
        await asyncio.sleep(0.5)  # the joins have reached everyone: from here on, only texts
        for client in clients:
            client.drain_events()
        for bare in bares:
            bare.before.received.clear()
            bare.before.times.clear()

        relogged: dict[str, float] = {}
        for client in victims:
            client.on("reconnected", _stamp(relogged, client.id or ""))
        texts = Texts()
        sending = asyncio.create_task(_send_all_along(sender, texts, stop))
        # a few seconds of texts: repeats beyond the window would show
        await wait_until(lambda: len(texts.acked) >= chaos.scale(60, 150), timeout=30, what="texts flowing")
        relogs = [asyncio.create_task(_relog_bare(cluster, bare)) for bare in bares]
        killed = time.monotonic()
        cluster.kill("portal-1")  # SIGKILL: no quit, no goodbye, no last acks
        await wait_until(lambda: len(relogged) == len(victims), timeout=30, what="every library client relogged")
        await asyncio.gather(*relogs)
        bares_back = time.monotonic() - killed
        mark = len(texts.acked)
        await wait_until(lambda: len(texts.acked) >= mark + 20, timeout=20, what="texts after the kill")
        stop.set()
        await sending
        await sender.send_text("all", "end")
        expected = [*texts.acked, "end"]

        library = {"lost": 0, "duplicated": 0, "dropped": 0}
        for client in [*victims, listener]:
            got: list[str] = []
            while "end" not in got:
                got.append((await client.next_event("text", timeout=30)).data["message"])
            library["lost"] += len(set(expected) - set(got))
            library["duplicated"] += len(got) - len(set(got)) + client.duplicates
            library["dropped"] += int(client.state != "ready")
            # Every acked text exactly once, in the order sent (besides them only sends whose answer
            # was lost: the server may have taken them, once).
            assert [t for t in got if t not in texts.unsure] == expected, client.id
            assert len(got) == len(set(got)) and client.duplicates == 0 and client.out_of_order == 0
            assert client.state == "ready" and client.drain_events("drop") == []
        assert all(c.reconnections == 1 and c.url == cluster.portal_url(2) for c in victims)
        assert sender.reconnections == listener.reconnections == 0

        outcomes = []
        for bare in bares:
            assert bare.after is not None
            await wait_until(_has_text(bare.after, "end"), timeout=30)
            assert not any(e == "drop" for e, _ in [*bare.before.received, *bare.after.received])
            outcomes.append(_check_plain(bare, expected, texts.unsure, killed))
        assert all(lost == 0 for _, lost in outcomes), outcomes

        waits = sorted(relogged[c.id or ""] - killed for c in victims)
        print(f"kill -9 to relogged (library clients): median {statistics.median(waits):.2f} s, "
              f"max {waits[-1]:.2f} s; texts {len(expected)}; plain clients (duplicates, lost): {outcomes}")
        scenario = "portal kill -9 under load"
        chaos.record(scenario, "extension", **library, recovery_s=waits[-1],
                     notes=f"{len(victims)} relogged at the sibling by themselves; {len(expected)} texts; "
                           "recovery: kill to the last relogin (detection included)")
        chaos.record(scenario, "bare OWT", duplicated=sum(d for d, _ in outcomes), lost=sum(lost for _, lost in outcomes),
                     recovery_s=bares_back, notes=f"{len(bares)} relogged at the sibling (sent there, as a load "
                     "balancer does); repeats allowed within the batched-ack window")
    except BaseException:
        print(cluster.logs_tail(4000))
        raise
    finally:
        stop.set()
        if sending is not None:
            sending.cancel()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
        for bare in bares:
            await bare.before.close()
            if bare.after is not None:
                await bare.after.close()


async def test_tokens_minted_for_a_killed_portal_log_in_at_its_sibling_before_and_after_it_is_noticed(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    """A load balancer sends the client of a dead portal's unused token to a sibling (same ISPs):
    the token works there, once — whether the cluster has noticed the death yet or not."""
    cluster = process_cluster(portals=2, controllers=1)
    for n in (1, 2):
        cluster.roles[f"portal-{n}"].argv += ["--isp", "isp-1", "--region", f"r{n}"]
    await cluster.start()
    home = {"isp": "isp-1", "region": "r1"}
    sockets: list[RecordingClient] = []
    try:
        tokens = [await mint_token(cluster.api_url, ROOM, f"late-{n}", "presenter", preference=home,
                                   headers=cluster.service_headers) for n in range(3)]
        assert {portal_url(t) for t in tokens} == {cluster.portal_url(1)}
        dead = await cluster.worker_id("portal-1")
        cluster.kill("portal-1")

        async def log_in(token: str) -> tuple[str, Any]:
            client = await RecordingClient(cluster.portal_url(2)).connect()
            sockets.append(client)
            status, result = await client.login(token)
            return str(status), result

        status, result = await log_in(tokens[0])  # the cluster has not noticed yet
        assert status == "ok", result
        assert dead in {w["id"] for w in await cluster.admin("get_workers", purpose="portal")}

        async def noticed() -> bool:
            return dead not in {w["id"] for w in await cluster.admin("get_workers", purpose="portal")}

        await wait_until(noticed, timeout=30, what="the killed portal removed")
        status, result = await log_in(tokens[1])  # noticed: its reservations outlived it
        assert status == "ok", result
        assert {p["user"] for p in result["room"]["participants"]} >= {"late-0", "late-1"}
        status, result = await log_in(tokens[0])  # still single-use
        assert status == "error", result
    except BaseException:
        print(cluster.logs_tail(4000))
        raise
    finally:
        for client in sockets:
            await client.close()
