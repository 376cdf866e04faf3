"""One RabbitMQ node of three lost under load (issue 16, "A RabbitMQ cluster"): every role in its own
process, all given the three nodes' addresses (``--broker a,b,c``), all connected to the first.

``kill -9`` of that node, then, once it is back, a graceful stop of the node they moved to, while a
library client relays numbered texts to a room of mixed clients: library clients with the switchboard
extension, library clients without it, and bare python-socketio clients speaking plain OWT.  Each time
every component reconnects to a surviving node by itself, the cluster manager's single-active queue
(quorum) and the controllers' journal streams go on from their replicas: no worker is removed, no
participant dropped, every text the server acknowledged reaches every client once and in order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from switchboard.client import Client
from switchboard.client.tokens import mint_token
from switchboard.devbroker_cluster import RabbitCluster
from tests.e2e.test_detection import _all_kept_alive, _watch_exits
from tests.support.chaos import Chaos
from tests.support.numbered_texts import send_numbered
from tests.support.processes import ProcessCluster
from tests.support.sockets import RecordingClient
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp, pytest.mark.slow]

ROOM = "broker-cluster"


async def _library(cluster: ProcessCluster, user: str, extension: bool) -> Client:
    return await Client.join(cluster.api_url, api_headers=cluster.service_headers, room=ROOM, user=user,
                             role="presenter", extension=extension)


async def _bare(cluster: ProcessCluster, user: str) -> RecordingClient:
    token = await mint_token(cluster.api_url, ROOM, user, "presenter", preference={"isp": "isp-1"},
                             headers=cluster.service_headers)
    client = await RecordingClient(cluster.portal_url(1)).connect()
    await client.login_ok(token)
    return client


async def _library_texts(client: Client, until: str) -> list[str]:
    got: list[str] = []
    while until not in got:
        got.append((await client.next_event("text", timeout=30)).data["message"])
    return got


def _node_of(rabbit: RabbitCluster, name: str) -> int | None:
    """Which broker node has a connection whose name contains ``name``, from the broker's own list."""
    for node in rabbit.nodes:
        if node.proc is not None and name in node.ctl("list_connections", "client_properties"):
            return rabbit.nodes.index(node)
    return None


class _Acked(list[str]):
    """The texts the server acknowledged, with when (``time.monotonic``) each was."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, text: str) -> None:
        super().append(text)
        self.times.append(time.monotonic())

    def longest_silence(self, began: float, ended: float) -> float:
        """The longest time without an acknowledgement that overlaps ``[began, ended]``."""
        times = self.times
        return max((b - a for a, b in zip(times, times[1:]) if b > began and a < ended), default=0.0)


async def _fault(what: str, act: Callable[[], None], acked: _Acked, *, timeout: float = 30) -> tuple[float, float]:
    """Do ``act`` (in a thread: it waits for the node's process to end) while the relay goes on;
    ``(took, recovery)``: how long ``act`` took, and the longest time without a text acknowledged
    across it, from just before it to the relay serving again (the fault's own effect included)."""
    at = len(acked)
    began = time.monotonic()
    await asyncio.to_thread(act)
    gone = time.monotonic()
    await wait_until(lambda: len(acked) >= at + 2, timeout=timeout, interval=0.02, what=f"the relay after {what}")
    return gone - began, acked.longest_silence(began, time.monotonic())


async def test_one_broker_node_killed_then_another_stopped_drops_loses_and_duplicates_nothing(
    rabbit_cluster: RabbitCluster, tmp_path: Path, chaos: Chaos,
) -> None:
    cluster = ProcessCluster(rabbit_cluster.url, tmp_path, portals=2, controllers=2, managers=2, env_overrides={
        "SWITCHBOARD_RPC__RECONNECT_INTERVAL": "0.5"})
    watcher = None
    try:
        await cluster.start()
        watcher, exits = await _watch_exits(cluster, "broker-cluster-watch")
        before = sorted(w["id"] for w in await cluster.admin("get_workers"))
        assert await asyncio.to_thread(_node_of, rabbit_cluster, "portal-") == 0  # everyone starts on the first node
        sender = await _library(cluster, "sender", True)
        extension = [await _library(cluster, f"ext-{n}", True) for n in range(chaos.scale(2, 6))]
        plain = [await _library(cluster, f"plain-{n}", False) for n in range(chaos.scale(1, 3))]
        bare = [await _bare(cluster, f"bare-{n}") for n in range(chaos.scale(1, 3))]
        library = [sender, *extension, *plain]
        stop = asyncio.Event()
        acked = _Acked()
        unsure: set[str] = set()
        refused: list[str] = []
        relay = asyncio.create_task(send_numbered(sender, "t", stop, acked, unsure, refused))
        await wait_until(lambda: len(acked) >= chaos.scale(10, 40), timeout=30, what="texts before the faults")
        for client in library:
            client.drain_events("participant")
        bare_joins = {id(client): len(client.participant_events()) for client in bare}

        _, killed = await _fault("kill -9 of node 1", lambda: rabbit_cluster.kill(0), acked)
        assert await asyncio.to_thread(_node_of, rabbit_cluster, "portal-") == 1  # the next node
        await asyncio.to_thread(rabbit_cluster.start_node, 0)
        # A room's stream that takes no write through the next node (seen after this stop on RabbitMQ
        # 3.10) is left within journal.stream.stall_timeout.  The killed node is back with its member of
        # the stream coordinator (RabbitCluster makes sure it survives a kill -9; docs/operations.md).
        stopping, stopped = await _fault("graceful stop of node 2", lambda: rabbit_cluster.stop(1), acked,
                                         timeout=60)
        at = len(acked)
        await wait_until(lambda: len(acked) >= at + chaos.scale(10, 60), timeout=30, what="texts after the faults")
        stop.set()
        await relay
        await sender.send_text("all", "end")

        # Every participant is still there, served by the same processes, none dropped or logged in again.
        await wait_until(lambda: _all_kept_alive(cluster, before), timeout=30, what="every worker kept alive")
        assert [p for _, p in exits] == []
        received: dict[str, list[str]] = {}
        for n, lib in enumerate(library[1:]):
            received[f"library-{n}"] = await _library_texts(lib, "end")
        for n, sock in enumerate(bare):
            await wait_until(lambda sock=sock: "end" in sock.texts(), timeout=30,  # type: ignore[misc]
                             what="the end at a bare client")
            received[f"bare-{n}"] = sock.texts()
        kinds = {**{f"library-{n}": ("extension" if c in extension else "plain library")
                    for n, c in enumerate(library[1:])},
                 **{f"bare-{n}": "bare OWT" for n in range(len(bare))}}
        expected = [*acked, "end"]
        rows: dict[str, dict[str, Any]] = {}
        for who, texts in received.items():
            row = rows.setdefault(kinds[who], {"lost": 0, "duplicated": 0, "clients": 0})
            row["clients"] += 1
            row["lost"] += len(set(expected) - set(texts))
            row["duplicated"] += len(texts) - len(set(texts))
        dropped = sum(c.reconnections > 0 for c in library) + sum(c.disconnected.is_set() for c in bare)
        for kind, row in rows.items():
            chaos.record("one RabbitMQ node of three: kill -9, then a graceful stop of another", kind,
                         dropped=dropped, lost=row["lost"], duplicated=row["duplicated"], errors=len(refused),
                         recovery_s=max(killed, stopped),
                         notes=f"{row['clients']} clients; recovery: the longest time without a text acknowledged "
                               f"across a fault, the longer of kill -9 ({killed:.2f} s) and graceful stop ({stopped:.2f} s; the "
                               f"stop itself took {stopping:.1f} s); {len(acked)} texts relayed; errors: "
                               f"texts refused (in flight when a connection closed)")
        for who, texts in received.items():
            assert [t for t in texts if t not in unsure] == expected, who
        # A text whose call was in flight when the connection closed is refused (it may have been taken:
        # "unsure", never twice); one sent during the failover waits for it (rpc.outage_wait).
        assert len(refused) <= 4, refused
        assert dropped == 0
        for client in library:
            assert client.reconnections == 0 and client.duplicates == 0 and client.out_of_order == 0
            assert client.drain_events("participant") == [] and client.drain_events("drop") == []
        for sock in bare:
            assert len(sock.participant_events()) == bare_joins[id(sock)]
        workers = await cluster.admin("get_workers")
        assert sorted(w["id"] for w in workers) == before
        # None was removed or had to join again meanwhile (its tasks would have been reset).
        for name in ("cluster-manager", "cluster-manager-2"):
            log = cluster.roles[name].log.read_text()
            assert "worker_rejoined" not in log and "worker_removed" not in log, name
        print(f"\nkill -9: relay again after {killed:.2f} s; graceful stop: {stopped:.2f} s; "
              f"{len(acked)} texts, {len(unsure)} unsure")
        for lib in library:
            await lib.leave()
        for sock in bare:
            await sock.close()
    except BaseException:
        print(cluster.logs_tail(3000))
        raise
    finally:
        if watcher is not None:
            await watcher.close()
        cluster.stop()
