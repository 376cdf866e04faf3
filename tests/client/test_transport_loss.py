"""Client transport loss for every kind of client (issue: portal death and broker faults).

Real processes on RabbitMQ: a cluster manager, a token API, one controller and two portals, each
behind its own TCP forwarder (its ``via_host``, so tokens name the forwarder, as they would name a
load balancer).  In one room, behind ``portal-1``'s forwarder: Python library clients with the
switchboard extension, library clients speaking plain OWT, bare python-socketio clients doing what
the OWT SDK does on a lost socket (a new socket to the same URL, ``relogin`` with the ticket), and
the npm socket.io-client speaking the OWT SDK's protocol (tests/js/owt_flow.mjs, its own
reconnection).  A sender behind ``portal-2`` sends numbered texts every 20 ms.  Then the network
in front of ``portal-1`` is cut: every connection through its forwarder reset, new ones refused for
``OUTAGE`` seconds; the portal itself lives on.

Every client relogs in by itself (the bare ones as their SDK would) and keeps its place: nobody is
dropped or seen to leave, nothing the server acknowledged is lost; extension clients get each text
exactly once and in order; plain clients may get again what reached them just before the cut
(``docs/protocol.md`` §5.3) and nothing else twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from switchboard.client import Client, ClientError, ClientSettings, Event
from switchboard.client.tokens import mint_token
from tests.client.conftest import MakeHarness
from tests.client.node_harness import NodeHarness
from tests.support.chaos import Chaos
from tests.support.processes import ProcessCluster, free_port
from tests.support.sockets import RecordingClient
from tests.support.tcp_cut import CutProxy
from tests.support.waiting import wait_until

ROOM = "transport-loss"
VICTIMS = {"isp": "isp-a"}  # portal-1, behind the forwarder that is cut
SENDER = {"isp": "isp-b"}  # portal-2
#: Seconds the network in front of portal-1 stays down after the cut.
OUTAGE = 1.0
SETTINGS = ClientSettings(request_timeout=15.0)
SCENARIO = f"client transport loss ({OUTAGE:g} s network cut in front of a portal)"


@dataclass
class Bare:
    """A plain OWT client doing what the SDK does: its sockets in turn, and its ticket."""

    url: str
    sockets: list[RecordingClient]
    ticket: str
    relogged_at: float | None = None

    def texts(self) -> list[str]:
        return [text for socket in self.sockets for text in socket.texts()]

    def events(self, name: str) -> list[Any]:
        return [data for socket in self.sockets for event, data in socket.received if event == name]


@dataclass
class Texts:
    acked: list[str] = field(default_factory=list)
    #: Sends that failed (the server may still have taken them).
    unsure: set[str] = field(default_factory=set)


async def _join(cluster: ProcessCluster, user: str, preference: dict[str, str], *, extension: bool = True) -> Client:
    return await Client.join(cluster.api_url, api_headers=cluster.service_headers, room=ROOM, user=user,
                             role="presenter", preference=preference, extension=extension, settings=SETTINGS)


async def _token(cluster: ProcessCluster, user: str) -> str:
    return await mint_token(cluster.api_url, ROOM, user, "presenter", preference=VICTIMS,
                            headers=cluster.service_headers)


async def _bare(cluster: ProcessCluster, url: str, user: str) -> Bare:
    socket = await RecordingClient(url).connect()
    result = await socket.login_ok(await _token(cluster, user))
    return Bare(url, [socket], result["reconnectionTicket"])


async def _relog_bare(bare: Bare) -> None:
    """The SDK on a lost socket: new sockets to the same URL until one connects, then ``relogin``
    with the ticket (which answers a fresh one)."""
    await bare.sockets[-1].disconnected.wait()
    async with asyncio.timeout(30):
        while True:
            socket = RecordingClient(bare.url)
            try:
                await socket.connect()
                break
            except Exception:  # refused while the network is down: the SDK retries
                await asyncio.sleep(0.2)
        bare.sockets.append(socket)
        status, ticket = await socket.call("relogin", bare.ticket)
    assert status == "ok" and isinstance(ticket, str), ticket
    bare.ticket, bare.relogged_at = ticket, time.monotonic()


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


def _plain_outcome(got: list[str], expected: list[str], unsure: set[str]) -> tuple[int, int]:
    """``(duplicated, lost)`` of a plain client, checking ``docs/protocol.md`` §5.3: nothing acked
    is lost; texts it got twice came again in one run right after its relogin (what was in flight at
    the cut), in the order sent."""
    lost = [text for text in expected if text not in got]
    assert not lost, lost
    first_time = [text for i, text in enumerate(got) if text not in got[:i]]
    assert [t for t in first_time if t not in unsure] == expected
    return len(got) - len(first_time), 0


async def test_every_kind_of_client_keeps_its_place_across_a_network_cut_in_front_of_its_portal(
    process_cluster: Callable[..., ProcessCluster], make_harness: MakeHarness, chaos: Chaos,
) -> None:
    fronts = [free_port(), free_port()]
    cluster = process_cluster(portals=2, controllers=1, portal_isps=["isp-a", "isp-b"],
                              portal_via_hosts=[f"127.0.0.1:{port}" for port in fronts])
    proxies = [CutProxy(front, cluster.roles[f"portal-{n + 1}"].port or 0) for n, front in enumerate(fronts)]
    for proxy in proxies:
        await proxy.start()
    await cluster.start()
    url = f"http://127.0.0.1:{fronts[0]}"
    clients: list[Client] = []
    bares: list[Bare] = []
    stop = asyncio.Event()
    sending: asyncio.Task[None] | None = None
    try:
        extension = [await _join(cluster, f"ext-{n}", VICTIMS) for n in range(chaos.scale(3, 8))]
        plain = [await _join(cluster, f"plain-{n}", VICTIMS, extension=False) for n in range(chaos.scale(2, 4))]
        bares = [await _bare(cluster, url, f"bare-{n}") for n in range(chaos.scale(2, 4))]
        nodes: list[NodeHarness] = []
        for n in range(chaos.scale(1, 3)):
            node = await make_harness()
            joined = await node.command("join", token=await _token(cluster, f"npm-{n}"))
            assert joined["ok"], joined
            nodes.append(node)
        sender = await _join(cluster, "sender", SENDER)
        clients = [*extension, *plain, sender]
        assert {c.url for c in [*extension, *plain]} == {url}
        await asyncio.sleep(0.5)  # the joins have reached everyone: from here on, only texts
        for client in clients:
            client.drain_events()
        for bare in bares:
            bare.sockets[0].received.clear()
        for node in nodes:
            node.drain_events("participant")

        relogged: dict[str, float] = {}

        def stamp(client: Client) -> Callable[[Event], None]:
            def at(_: Event) -> None:
                relogged.setdefault(client.id or "", time.monotonic())

            return at

        for client in [*extension, *plain]:
            client.on("reconnected", stamp(client))
        texts = Texts()
        sending = asyncio.create_task(_send_all_along(sender, texts, stop))
        await wait_until(lambda: len(texts.acked) >= chaos.scale(40, 150), timeout=30, what="texts flowing")
        relogs = [asyncio.create_task(_relog_bare(bare)) for bare in bares]
        cut_at = time.monotonic()
        assert proxies[0].cut() >= len(extension) + len(plain) + len(bares) + len(nodes)
        await asyncio.sleep(OUTAGE)
        proxies[0].restore()

        node_relogged: list[float] = []
        for node in nodes:
            relogin = await node.next_event("relogin", timeout=30)
            assert relogin["ok"], relogin
            node_relogged.append(time.monotonic())
        await wait_until(lambda: len(relogged) == len(extension) + len(plain), timeout=30,
                         what="every library client relogged")
        await asyncio.gather(*relogs)
        mark = len(texts.acked)
        await wait_until(lambda: len(texts.acked) >= mark + 20, timeout=20, what="texts after the cut")
        stop.set()
        await sending
        await sender.send_text("all", "end")
        expected = [*texts.acked, "end"]

        counts = {kind: {"dropped": 0, "lost": 0, "duplicated": 0}
                  for kind in ("extension", "plain library", "bare OWT", "npm socket.io-client")}
        for client in [*extension, *plain]:
            kind = "extension" if client in extension else "plain library"
            got: list[str] = []
            while "end" not in got:
                got.append((await client.next_event("text", timeout=30)).data["message"])
            assert client.state == "ready" and client.reconnections == 1, (client.id, client.state)
            assert client.drain_events("drop") == [] and client.drain_events("participant") == []
            counts[kind]["dropped"] += int(client.state != "ready")
            if kind == "extension":
                assert [t for t in got if t not in texts.unsure] == expected, client.id
                assert client.duplicates == 0 and client.out_of_order == 0
            else:  # the library drops repeats itself and counts them
                assert [t for t in got if t not in texts.unsure] == expected, client.id
            counts[kind]["duplicated"] += client.duplicates
            counts[kind]["lost"] += len(set(expected) - set(got))
        assert sender.reconnections == 0

        for bare in bares:
            await wait_until(lambda b=bare: "end" in b.texts(), timeout=30, what="the end at a bare client")  # type: ignore[misc]
            assert bare.events("drop") == [] and bare.events("participant") == []
            duplicated, lost = _plain_outcome(bare.texts(), expected, texts.unsure)
            counts["bare OWT"]["duplicated"] += duplicated
            counts["bare OWT"]["lost"] += lost
        for node in nodes:
            got = [(await node.next_event("text", timeout=30))["data"]["message"]]
            while got[-1] != "end":
                got.append((await node.next_event("text", timeout=30))["data"]["message"])
            assert node.drain_events("drop") == [] and node.drain_events("serverdisconnected") == []
            assert node.drain_events("participant") == [] and node.drain_events("relogin") == []
            duplicated, lost = _plain_outcome(got, expected, texts.unsure)
            counts["npm socket.io-client"]["duplicated"] += duplicated
            counts["npm socket.io-client"]["lost"] += lost
        assert sum(c["lost"] + c["dropped"] for c in counts.values()) == 0, counts
        assert counts["extension"]["duplicated"] == 0, counts

        library_back = max(relogged.values()) - cut_at
        bare_back = max(b.relogged_at or 0.0 for b in bares) - cut_at
        node_back = max(node_relogged) - cut_at
        print(f"\nnetwork cut for {OUTAGE} s: relogged (library) {library_back:.2f} s, (bare) {bare_back:.2f} s, "
              f"(npm) {node_back:.2f} s after the cut; {len(expected)} texts; {counts}")
        notes = f"{len(expected)} texts; recovery: cut to the last relogin ({OUTAGE:g} s of it the network was down)"
        chaos.record(SCENARIO, "extension", **counts["extension"], recovery_s=library_back,
                     notes=f"{len(extension)} clients; " + notes)
        chaos.record(SCENARIO, "plain library", **counts["plain library"], recovery_s=library_back,
                     notes=f"{len(plain)} clients (repeats dropped by the library); " + notes)
        chaos.record(SCENARIO, "bare OWT", **counts["bare OWT"], recovery_s=bare_back,
                     notes=f"{len(bares)} clients; repeats allowed within the batched-ack window; " + notes)
        chaos.record(SCENARIO, "npm socket.io-client (OWT SDK protocol)", **counts["npm socket.io-client"],
                     recovery_s=node_back, notes=f"{len(nodes)} clients, socket.io-client's own reconnection; " + notes)
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
            for socket in bare.sockets:
                await socket.close()
        for proxy in proxies:
            await proxy.stop()
