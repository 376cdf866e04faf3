"""Process faults of the cluster (docs/architecture.md §Faults), with every role in its own process
on RabbitMQ: a controller killed, the cluster manager killed and started again, a portal frozen
long enough to be declared lost (a partition) and then back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from switchboard.client import Client, ClientError, mint_token
from tests.client.node_harness import NodeHarness
from tests.support.chaos import Chaos
from tests.support.processes import ProcessCluster
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.amqp, pytest.mark.slow]


async def _texts(client: Client, count: int, timeout: float = 15.0) -> list[str]:
    return [(await client.next_event("text", timeout=timeout)).data["message"] for _ in range(count)]


async def _join(cluster: ProcessCluster, room: str, user: str, isp: str | None = None) -> Client:
    return await Client.join(cluster.api_url, api_headers=cluster.service_headers, room=room, user=user,
                             role="presenter", preference={"isp": isp} if isp else None)


async def _admin_or_none(cluster: ProcessCluster, method: str, **args: Any) -> Any:
    """The admin answer, or ``None`` while the cluster manager cannot answer (down, restarting)."""
    try:
        return await cluster.admin(method, **args)
    except (RuntimeError, aiohttp.ClientError):
        return None


async def _tasks(cluster: ProcessCluster, worker_id: str) -> list[str]:
    return sorted(t["task"] for t in await cluster.admin("get_tasks", worker_id=worker_id))


async def _worker_ids(cluster: ProcessCluster, purpose: str) -> list[str]:
    return sorted(w["id"] for w in await cluster.admin("get_workers", purpose=purpose))


async def test_when_a_controller_process_dies_its_rooms_move_and_nobody_notices(
    process_cluster: Callable[..., ProcessCluster], chaos: Chaos,
) -> None:
    cluster = process_cluster(portals=1, controllers=2)
    await cluster.start()
    node = NodeHarness()  # the npm socket.io-client speaking the OWT SDK's protocol
    try:
        await node.start()
        joined = await node.command("join", token=await mint_token(cluster.api_url, "doomed", "nina", "presenter",
                                                                   headers=cluster.service_headers))
        assert joined["ok"], joined
        alice = await _join(cluster, "doomed", "alice")
        bob = await _join(cluster, "doomed", "bob")
        assert (await alice.next_event("participant", timeout=10)).data["action"] == "join"
        controllers = {name: await cluster.worker_id(name) for name in ("controller-1", "controller-2")}
        hosting = [name for name, wid in controllers.items() if await _tasks(cluster, wid) == ["doomed"]]
        assert len(hosting) == 1, hosting
        dead = hosting[0]
        (survivor,) = (wid for name, wid in controllers.items() if name != dead)
        await alice.send_text("all", "before")
        for client in (alice, bob):
            assert await _texts(client, 1) == ["before"]
        assert await node.texts_until("before") == ["before"]

        killed_at = time.monotonic()
        cluster.kill(dead)  # SIGKILL: no quit, no goodbye

        # The manager misses its keepalives, hands the room to the survivor, which rebuilds it from
        # the journal; the portal moves both sessions there.  The clients see nothing.
        for _ in range(60):
            if await _worker_ids(cluster, "conference") == [survivor] and await _tasks(cluster, survivor) == ["doomed"]:
                break
            await asyncio.sleep(0.5)
        assert await _tasks(cluster, survivor) == ["doomed"]
        moved = time.monotonic()
        await _send_when_served(alice, "after")
        served = time.monotonic()
        for client in (alice, bob):
            assert await _texts(client, 1) == ["after"]
        for client in (alice, bob):
            assert client.reconnections == 0 and client.state == "ready"
            assert client.duplicates == 0 and client.out_of_order == 0
            assert client.drain_events("drop") == [] and client.drain_events("participant") == []
        assert alice.id is not None
        await bob.send_text(alice.id, "still here")
        assert await _texts(alice, 1) == ["still here"]
        # The plain OWT client kept its socket and its place; it may get "before" again (it cannot
        # acknowledge), nothing else twice.
        node_texts = await node.texts_until("after")
        assert node_texts in (["after"], ["before", "after"]), node_texts
        assert node.lost_its_place() == [] and node.drain_events("relogin") == []
        assert [e["data"]["action"] for e in node.drain_events("participant")] == ["join", "join"]  # alice, bob
        chaos.record("controller kill -9 (one room)", "extension", recovery_s=served - moved,
                     detected_s=moved - killed_at, notes="two clients; detected: the room moved (polled every "
                     "0.5 s); recovery: moved to the next text served")
        chaos.record("controller kill -9 (one room)", "npm socket.io-client (OWT SDK protocol)",
                     duplicated=node_texts.count("before"), recovery_s=served - moved, detected_s=moved - killed_at,
                     notes="one client; repeats allowed for plain clients")
        for client in (alice, bob):
            await client.leave()
    except BaseException:
        print(cluster.logs_tail())
        raise
    finally:
        await node.close()


async def _send_when_served(client: Client, text: str, timeout: float = 30.0) -> None:
    """Send once the room is served again: a request in the moment of the move may be refused
    (the client sees an error for it, not a drop), so it is sent again until it is taken."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            await client.send_text("all", text)
            return
        except ClientError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_a_restarted_cluster_manager_gets_its_workers_and_tasks_back_and_serves_again(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = process_cluster(portals=1, controllers=1, env_overrides={
        "SWITCHBOARD_TOKEN_API__SCHEDULE_BUDGET": "0.5"})
    await cluster.start()
    try:
        alice = await _join(cluster, "steady", "alice")
        bob = await _join(cluster, "steady", "bob")
        (portal,) = await _worker_ids(cluster, "portal")
        (controller,) = await _worker_ids(cluster, "conference")
        assert await _tasks(cluster, controller) == ["steady"]
        portal_tasks = await _tasks(cluster, portal)  # the two claimed tokens, as digests
        assert len(portal_tasks) == 2

        cluster.kill("cluster-manager")
        # Started again with no state, and a freshman window long enough to look at.
        cluster.roles["cluster-manager"].start({**cluster.env, "SWITCHBOARD_CLUSTER_MANAGER__INITIAL_TIME": "6"})

        # Existing participants keep talking meanwhile (controller → portal needs no manager).
        await alice.send_text("all", "during the restart")
        for client in (alice, bob):
            assert await _texts(client, 1) == ["during the restart"]

        status = await wait_until(lambda: _admin_or_none(cluster, "status"), timeout=20, what="the new manager")
        assert (status["state"], status["freshman"]) == ("initializing", True)
        assert status["ready_in"] > 1.0, status  # time enough for the refusal below (budget 0.5 s)
        # A token for a new room is not_ready at the manager: after the token API's budget, 503.
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{cluster.api_url}/token", headers=cluster.service_headers,
                                 json={"room": "fresh", "user": "erin", "role": "presenter"}) as resp:
                body = await resp.json()
                assert resp.status == 503, body
                assert resp.headers["Retry-After"] == "2"
                assert (body["error"]["code"], body["error"]["reason"]) == (1301, "cluster_not_ready")
        # The workers answer its whoareyou: they rejoin under their ids and re-report their tasks.
        await wait_until(lambda: _admin_or_none(cluster, "get_workers"), timeout=10, what="the workers back")
        await wait_until(lambda: _rejoined(cluster, portal, controller), timeout=10, what="the tasks re-reported")
        assert await _tasks(cluster, controller) == ["steady"]
        assert await _tasks(cluster, portal) == portal_tasks
        # A running room is found again (sticky), so a relogin works even inside the window.
        assert alice.id is not None
        await alice.drop_transport()
        await bob.send_text(alice.id, "while alice was away")
        assert await _texts(alice, 1) == ["while alice was away"]
        await wait_until(lambda: alice.reconnections == 1, timeout=15, what="alice's relogin")

        # Once in service, new logins work again: to the running room and to a new one.
        await wait_until(lambda: _in_service(cluster), timeout=15, what="the end of the freshman window")
        carol = await _join(cluster, "steady", "carol")
        assert sorted(p["user"] for p in carol.room["participants"]) == ["alice", "bob", "carol"]
        erin = await _join(cluster, "fresh", "erin")
        assert await _tasks(cluster, controller) == ["fresh", "steady"]
        await carol.send_text("all", "marker")
        for client in (alice, bob, carol):
            assert await _texts(client, 1) == ["marker"]
            assert client.drain_events("text") == [] and client.duplicates == 0 and client.out_of_order == 0
            await client.leave()
        await erin.leave()
    except BaseException:
        print(cluster.logs_tail())
        raise


async def _rejoined(cluster: ProcessCluster, portal: str, controller: str) -> bool:
    workers = await _admin_or_none(cluster, "get_workers")
    if workers is None or sorted(w["id"] for w in workers) != sorted([portal, controller]):
        return False
    return all(w["executing"] > 0 for w in workers)


async def _in_service(cluster: ProcessCluster) -> bool:
    status = await _admin_or_none(cluster, "status")
    return status is not None and status["state"] == "in-service"


async def test_a_portal_declared_lost_while_it_still_has_the_sockets_reattaches_them(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = process_cluster(portals=2, controllers=1, env_overrides={
        "SWITCHBOARD_CONTROLLER__RECONNECTION_TIMEOUT": "60"})
    await cluster.start()
    try:
        alice = await _join(cluster, "split", "alice", "isp-1")
        bob = await _join(cluster, "split", "bob", "isp-2")
        assert (alice.url, bob.url) == (cluster.portal_url(1), cluster.portal_url(2))
        assert alice.id is not None
        await bob.send_text("all", "before")
        for client in (alice, bob):
            assert await _texts(client, 1) == ["before"]
        frozen = await cluster.worker_id("portal-1")

        # portal-1 stops answering (frozen; its sockets stay open): the manager declares it lost
        # (exit.quit) and the controller holds alice.
        cluster.roles["portal-1"].pause()
        await wait_until(lambda: _gone(cluster, frozen), timeout=15, what="portal-1 declared lost")
        await bob.send_text("all", "during 1")
        await bob.send_text(alice.id, "during 2")
        assert await _texts(bob, 1) == ["during 1"]

        # It comes back: it rejoins, and re-attaches alice's socket with a resume of its own.
        cluster.roles["portal-1"].cont()
        assert await _texts(alice, 2, timeout=20) == ["during 1", "during 2"]
        await bob.send_text("all", "after")
        assert await _texts(alice, 1) == ["after"]
        assert await _texts(bob, 1) == ["after"]
        # alice never noticed: same socket, no relogin, and she can act (also with her ticket).
        assert alice.state == "ready" and alice.reconnections == 0
        await alice.send_text("all", "alice is here")
        for client in (alice, bob):
            assert await _texts(client, 1) == ["alice is here"]
        assert await cluster.worker_id("portal-1") == frozen
        # Nobody left and nobody joined again, and nothing came twice or out of order.
        await bob.send_text("all", "marker")
        for client in (alice, bob):
            assert await _texts(client, 1) == ["marker"]
            assert client.drain_events("text") == [] and client.duplicates == 0 and client.out_of_order == 0
        assert bob.drain_events("participant") == []
        # The kept ticket still works for a relogin (here at the other portal).
        alice.url = cluster.portal_url(2)
        await alice.drop_transport()
        await bob.send_text(alice.id, "after the relogin")
        assert await _texts(alice, 1) == ["after the relogin"]
        await wait_until(lambda: alice.reconnections == 1, timeout=15, what="alice's relogin")
        for client in (alice, bob):
            await client.leave()
    except BaseException:
        print(cluster.logs_tail())
        raise


async def _gone(cluster: ProcessCluster, worker_id: str, purpose: str = "portal") -> bool:
    return worker_id not in await _worker_ids(cluster, purpose)


async def test_a_frozen_controller_loses_its_room_and_serves_nothing_stale_when_it_resumes(
    process_cluster: Callable[..., ProcessCluster], chaos: Chaos,
) -> None:
    cluster = process_cluster(portals=1, controllers=2)
    await cluster.start()
    try:
        alice = await _join(cluster, "frozen", "alice")
        bob = await _join(cluster, "frozen", "bob")
        assert (await alice.next_event("participant", timeout=10)).data["action"] == "join"
        names = {await cluster.worker_id(name): name for name in ("controller-1", "controller-2")}
        (holder,) = [wid for wid in names if await _tasks(cluster, wid) == ["frozen"]]
        (survivor,) = [wid for wid in names if wid != holder]
        await alice.send_text("all", "before")
        for client in (alice, bob):
            assert await _texts(client, 1) == ["before"]

        # SIGSTOP: the holder stops answering; the manager declares it lost and moves the room.
        paused_at = time.monotonic()
        cluster.roles[names[holder]].pause()
        await wait_until(lambda: _gone(cluster, holder, "conference"), timeout=20,
                         what="the frozen controller declared lost")
        declared = time.monotonic()
        await _send_when_served(alice, "during")
        served = time.monotonic()
        for client in (alice, bob):
            assert await _texts(client, 1) == ["during"]
        assert await _tasks(cluster, survivor) == ["frozen"]

        # SIGCONT: it comes back with the room in memory; it rejoins, finds the room fenced and lets it go.
        cluster.roles[names[holder]].cont()
        for _ in range(60):
            workers = await _admin_or_none(cluster, "get_workers", purpose="conference")
            if workers is not None and sorted(w["id"] for w in workers) == sorted(names):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)  # time for anything stale to happen (a hold timer, a queued call)
        assert await _tasks(cluster, holder) == [] and await _tasks(cluster, survivor) == ["frozen"]
        await bob.send_text("all", "after")
        for client in (alice, bob):
            assert await _texts(client, 1) == ["after"]
            assert client.reconnections == 0 and client.duplicates == 0 and client.out_of_order == 0
            assert client.drain_events("text") == [] and client.drain_events("drop") == []
            assert client.drain_events("participant") == []
        chaos.record("controller SIGSTOP, then SIGCONT (one room)", "extension", recovery_s=served - declared,
                     detected_s=declared - paused_at, notes="two clients; detected: declared lost; recovery: "
                     "declared lost to the next text served; nothing stale after SIGCONT")
        for client in (alice, bob):
            await client.leave()
    except BaseException:
        print(cluster.logs_tail())
        raise


async def test_a_text_in_flight_when_its_controller_is_lost_is_answered_by_the_next_one(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    # The portal would wait longer for the frozen controller than the client waits for its answer:
    # only a text made again at the next controller once the loss is announced can be answered.
    cluster = process_cluster(portals=1, controllers=2, env_overrides={"SWITCHBOARD_PORTAL__TEXT_TIMEOUT": "60"})
    await cluster.start()
    names: dict[str, str] = {}
    try:
        alice = await _join(cluster, "caught", "alice")
        bob = await _join(cluster, "caught", "bob")
        assert (await alice.next_event("participant", timeout=10)).data["action"] == "join"
        names = {await cluster.worker_id(name): name for name in ("controller-1", "controller-2")}
        (holder,) = [wid for wid in names if await _tasks(cluster, wid) == ["caught"]]

        cluster.roles[names[holder]].pause()
        sending = asyncio.create_task(alice.send_text("all", "in flight"))
        await wait_until(lambda: _gone(cluster, holder, "conference"), timeout=20,
                         what="the frozen controller declared lost")
        await sending  # answered, not timed out
        for client in (alice, bob):
            assert await _texts(client, 1) == ["in flight"]
            assert client.reconnections == 0 and client.duplicates == 0
            assert client.drain_events("drop") == [] and client.drain_events("participant") == []
        for client in (alice, bob):
            await client.leave()
    except BaseException:
        print(cluster.logs_tail())
        raise
    finally:
        for wid, name in names.items():
            cluster.roles[name].cont()


async def test_draining_a_controller_moves_its_rooms_one_by_one_and_it_exits(
    process_cluster: Callable[..., ProcessCluster],
) -> None:
    cluster = process_cluster(portals=1, controllers=2)
    await cluster.start()
    try:
        clients = {room: [await _join(cluster, room, f"{room}-{n}") for n in range(2)] for room in ("r1", "r2")}
        for first, _ in clients.values():
            assert (await first.next_event("participant", timeout=10)).data["action"] == "join"
        names = {await cluster.worker_id(name): name for name in ("controller-1", "controller-2")}
        (drained,) = [wid for wid in names if "r1" in await _tasks(cluster, wid)]
        (other,) = [wid for wid in names if wid != drained]

        await cluster.admin("drain", worker_id=drained)
        process = cluster.roles[names[drained]].proc
        assert process is not None
        for _ in range(60):
            if process.poll() is not None:
                break
            await asyncio.sleep(0.5)
        assert process.poll() == 0, "the drained controller exits once it holds no room"
        assert sorted(await _tasks(cluster, other)) == ["r1", "r2"]
        for room, (a, b) in clients.items():
            await _send_when_served(a, f"in {room} after the drain")
            for client in (a, b):
                assert await _texts(client, 1) == [f"in {room} after the drain"]
                assert client.reconnections == 0 and client.state == "ready"
                assert client.duplicates == 0 and client.out_of_order == 0
                assert client.drain_events("drop") == [] and client.drain_events("participant") == []
        for pair in clients.values():
            for client in pair:
                await client.leave()
    except BaseException:
        print(cluster.logs_tail())
        raise
