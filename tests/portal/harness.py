"""A portal under test: fake cluster manager and controller, tokens, python-socketio clients."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from credentials import JoinToken, Keyring, decode_ticket, encode_token, new_id, now_ms
from portal import Portal, PortalSettings
from rpc import Transport
from rpc.settings import WorkerSettings
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

from .fakes import FakeCluster, FakeController

__all__ = ["Harness", "Client", "CONTROLLER_ID"]

CONTROLLER_ID = "conference-000000000001@test"
KEY = "portal-test-key"


class Client:
    """A bare python-socketio client that records every event the portal emits."""

    EVENTS = ("participant", "text", "stream", "progress", "drop")

    def __init__(self, port: int) -> None:
        self.port = port
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: list[tuple[str, Any]] = []
        self.disconnected = asyncio.Event()
        for event in self.EVENTS:
            self.sio.on(event, self._recorder(event))
        self.sio.on("disconnect", self._on_disconnect)

    def _recorder(self, event: str) -> Callable[..., Awaitable[None]]:
        async def record(*args: Any) -> None:
            self.received.append((event, args[0] if args else None))

        return record

    async def _on_disconnect(self, *args: Any) -> None:
        self.disconnected.set()

    async def connect(self) -> Client:
        await self.sio.connect(f"http://127.0.0.1:{self.port}", transports=["websocket"])
        return self

    async def call(self, event: str, *payload: Any, timeout: float = 10.0) -> Any:
        return await self.sio.call(event, *payload, timeout=timeout)

    async def login(self, token: str, *, extension: bool = False, protocol: str = "1.2") -> Any:
        agent: dict[str, Any] = {"sdk": {"type": "JavaScript", "version": "5.1"}}
        if extension:
            agent["switchboard"] = {"seq": True}
        return await self.call("login", {"token": token, "userAgent": agent, "protocol": protocol})

    def texts(self) -> list[Any]:
        return [data["message"] for event, data in self.received if event == "text"]

    async def lose_network(self) -> None:
        """Close the websocket under the client (what a network loss looks like to the server)."""
        await self.sio.eio.ws.close()
        await asyncio.wait_for(self.disconnected.wait(), 5)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


class Harness:
    def __init__(self, factory: TransportFactory) -> None:
        self.factory = factory
        self.keyring = Keyring([KEY])
        self.portals: list[Portal] = []
        self.clients: list[Client] = []
        self.transport: Transport
        self.cluster = FakeCluster(CONTROLLER_ID)
        self.controller: FakeController

    async def start(self, **controller_options: Any) -> Harness:
        self.transport = await self.factory.make("fakes")
        self.controller = FakeController(self.transport, **controller_options)
        await self.transport.serve("cluster", self.cluster)
        await self.transport.serve(CONTROLLER_ID, self.controller)
        return self

    async def portal(self, **settings: Any) -> Portal:
        options: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "ack_interval": 0.02}
        options.update(settings)
        transport = await self.factory.make()
        portal = Portal(
            transport,
            PortalSettings(**options),
            self.keyring,
            WorkerSettings(keepalive_interval=0.2, load_report_interval=0.2),
        )
        await portal.start()
        self.portals.append(portal)
        return portal

    async def client(self, portal: Portal) -> Client:
        client = Client(portal.port)
        self.clients.append(client)
        return await client.connect()

    def token(self, *, room: str = "room-1", user: str = "alice", role: str = "presenter",
              lifetime_ms: int = 60_000, reserve: bool = True) -> str:
        code = new_id()
        if reserve:
            self.cluster.reserve(code)
        token = JoinToken(
            token_id=new_id(), host="127.0.0.1", secure=False, room=room, user=user, role=role, code=code,
            not_after=now_ms() + lifetime_ms, origin={"isp": "isp", "region": "region"},
        )
        return encode_token(token, self.keyring)

    async def joined(self, portal: Portal, *, extension: bool = False, **token: Any) -> tuple[Client, dict[str, Any]]:
        client = await self.client(portal)
        status, result = await client.login(self.token(**token), extension=extension)
        assert status == "ok", result
        return client, result

    def ticket_id(self, ticket: str) -> str:
        return decode_ticket(ticket, self.keyring).ticket_id

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        for portal in self.portals:
            await portal.stop()


async def settle(check: Callable[[], Any], what: str = "", timeout: float = 5.0) -> Any:
    return await wait_until(check, timeout=timeout, what=what)
