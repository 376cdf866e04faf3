"""The portal with the real cluster manager and conference controller, on both transports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from cluster_manager import ClusterManager
from cluster_manager.settings import ClusterManagerSettings
from conference_controller import Controller, ControllerSettings
from credentials import JoinToken, Keyring, encode_token, new_id, now_ms
from portal import Portal, PortalSettings
from rpc import rpc_method
from rpc.settings import WorkerSettings
from tests.support.transports import TransportFactory
from token_api import rooms_service_name
from tests.support.waiting import wait_until

from .harness import Client

WORKER = WorkerSettings(keepalive_interval=0.2, load_report_interval=0.2, join_interval=0.1)


class Rooms:
    """Service ``rooms``: every room exists, two roles."""

    @rpc_method
    async def get_room(self, room: str) -> dict[str, Any]:
        media = {"audio": True, "video": True}
        return {"id": room, "name": room, "participantLimit": -1, "views": ["common"],
                "roles": [{"role": "presenter", "publish": media, "subscribe": media}]}


class Cluster:
    def __init__(self, factory: TransportFactory) -> None:
        self.factory = factory
        self.keyring = Keyring(["integration-key"])
        self.portals: list[Portal] = []
        self.clients: list[Client] = []
        self.stoppable: list[Any] = []

    async def start(self, portals: int) -> Cluster:
        manager = ClusterManager(await self.factory.make("manager"), ClusterManagerSettings(initial_time=0.0))
        await manager.start()
        self.stoppable.append(manager)
        transport = await self.factory.make("rooms")
        await transport.serve(rooms_service_name("cluster"), Rooms())
        self.admin = transport
        controller = Controller(await self.factory.make("controller"), ControllerSettings(), WORKER)
        await controller.start()
        self.stoppable.append(controller)
        for _ in range(portals):
            portal = Portal(await self.factory.make(), PortalSettings(host="127.0.0.1", port=0), self.keyring, WORKER)
            await portal.start()
            self.portals.append(portal)
        return self

    async def token(self, room: str = "room-1", user: str = "alice") -> tuple[str, Portal]:
        """A token whose portal task is reserved at the manager, and the portal it was scheduled on."""
        code = new_id()
        origin = {"isp": "isp", "region": "region"}
        scheduled = await self.admin.call("cluster", "schedule", {"purpose": "portal", "task": code, "preference": origin, "reserve_time": 60})
        token = JoinToken(token_id=new_id(), host="127.0.0.1", secure=False, room=room, user=user, role="presenter",
                          code=code, not_after=now_ms() + 60_000, origin=origin)
        portal = next(p for p in self.portals if p.worker_id == scheduled["id"])
        return encode_token(token, self.keyring), portal

    async def client(self, portal: Portal) -> Client:
        client = Client(portal.port)
        self.clients.append(client)
        return await client.connect()

    async def stop(self) -> None:
        for client in self.clients:
            await client.close()
        for portal in self.portals:
            await portal.stop()
        for component in reversed(self.stoppable):
            await component.stop()


@pytest_asyncio.fixture
async def cluster(transports: TransportFactory) -> AsyncIterator[Any]:
    made: list[Cluster] = []

    async def make(portals: int = 1) -> Cluster:
        made.append(await Cluster(transports).start(portals))
        return made[-1]

    yield make
    for c in made:
        await c.stop()


async def test_concurrent_logins_with_one_token_exactly_one_wins(cluster: Any) -> None:
    c = await cluster()
    token, portal = await c.token()
    clients = [await c.client(portal) for _ in range(5)]
    answers = await asyncio.gather(*(client.login(token) for client in clients))
    assert sorted(a[0] for a in answers) == ["error"] * 4 + ["ok"]
    assert sorted(a[1] for a in answers if a[0] == "error") == ["Token already used"] * 4


async def test_relogin_on_another_portal_replays_exactly_the_missed_messages(cluster: Any) -> None:
    c = await cluster(portals=2)
    token, home = await c.token(user="alice")
    alice = await c.client(home)
    status, joined = await alice.login(token, extension=True)
    assert status == "ok", joined
    assert [p["user"] for p in joined["room"]["participants"]] == ["alice"]
    token, bob_portal = await c.token(user="bob")
    bob = await c.client(bob_portal)
    assert (await bob.login(token))[0] == "ok"
    await wait_until(lambda: [e for e, _ in alice.received] == ["participant"], what="alice sees bob join")
    seen = alice.received[-1][1]["seq"]
    await alice.sio.emit("ack", {"seq": seen})

    await alice.lose_network()
    for text in ("one", "two"):
        assert await bob.call("text", {"to": "all", "message": text}) == "ok"
    other = next(p for p in c.portals if p is not home)
    again = await c.client(other)
    status, body = await again.call("relogin", {"ticket": joined["reconnectionTicket"], "lastSeq": seen})
    assert status == "ok", body
    assert [(m["event"], m["data"]["message"]) for m in body["messages"]] == [("text", "one"), ("text", "two")]
    assert [m["seq"] for m in body["messages"]] == [seen + 1, seen + 2]
    assert await bob.call("text", {"to": "all", "message": "three"}) == "ok"
    await wait_until(lambda: again.texts() == ["three"], what="live text after relogin")
    assert again.received[-1][1]["seq"] == seen + 3
    assert await again.call("text", {"to": "all", "message": "back"}) == "ok"
    await wait_until(lambda: "back" in bob.texts(), what="bob hears alice again")


async def test_plain_client_relogin_gets_missed_messages_after_the_ack(cluster: Any) -> None:
    c = await cluster()
    token, portal = await c.token(user="alice")
    alice = await c.client(portal)
    status, joined = await alice.login(token)
    assert status == "ok"
    token, _ = await c.token(user="bob")
    bob = await c.client(portal)
    assert (await bob.login(token))[0] == "ok"
    await alice.lose_network()
    assert await bob.call("text", {"to": "all", "message": "missed"}) == "ok"
    again = await c.client(portal)
    status, ticket = await again.call("relogin", joined["reconnectionTicket"])
    assert status == "ok" and isinstance(ticket, str)
    await wait_until(lambda: again.texts() == ["missed"], what="missed text replayed")
    assert await again.call("logout") == "ok"
    late = await c.client(portal)
    status, _ = await late.call("relogin", ticket)
    assert status == "error"


async def test_a_relogin_whose_ack_was_lost_can_be_retried_with_the_same_ticket(cluster: Any) -> None:
    c = await cluster()
    token, portal = await c.token()
    alice = await c.client(portal)
    status, joined = await alice.login(token)
    assert status == "ok"
    await alice.lose_network()
    first = await c.client(portal)
    status, unseen = await first.call("relogin", joined["reconnectionTicket"])
    assert status == "ok"
    await first.lose_network()  # as if the ack never arrived: the client still has the old ticket
    retry = await c.client(portal)
    status, ticket = await retry.call("relogin", joined["reconnectionTicket"])
    assert status == "ok", ticket
    assert (await retry.call("refreshReconnectionTicket"))[0] == "ok"
    stale = await c.client(portal)
    assert await stale.call("relogin", joined["reconnectionTicket"]) == ("error", "Ticket was revoked")
