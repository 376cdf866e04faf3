"""The portal's Socket.IO manager, on a real server and real clients: emits reach every recipient
in order, and one recipient that cannot be sent to does not stop the others."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio
from aiohttp import web

from portal.packets import JsonPacket
from portal.sio_manager import InPlaceManager
from tests.support.waiting import wait_until


class Server:
    def __init__(self) -> None:
        self.sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=InPlaceManager(), serializer=JsonPacket)
        self.app = web.Application()
        self.sio.attach(self.app)
        self.runner = web.AppRunner(self.app)
        self.url = ""

        @self.sio.event  # type: ignore[untyped-decorator]  # python-socketio ships no types
        async def join(sid: str, room: str) -> str:
            await self.sio.enter_room(sid, room)
            return "ok"

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    made = Server()
    await made.start()
    yield made
    await made.sio.shutdown()
    await made.runner.cleanup()


async def _client(server: Server, room: str, got: list[Any]) -> socketio.AsyncClient:
    client = socketio.AsyncClient()
    client.on("note", lambda data: got.append(data))
    await client.connect(server.url, transports=["websocket"])
    assert await client.call("join", room) == "ok"
    return client


async def test_room_emits_reach_everyone_in_order_and_skip_who_is_skipped(server: Server) -> None:
    inboxes: list[list[Any]] = [[], [], []]
    clients = [await _client(server, "r", inbox) for inbox in inboxes]
    for n in range(5):
        await server.sio.emit("note", n, to="r", skip_sid=clients[2].get_sid())
    await server.sio.emit("note", "just one", to=clients[2].get_sid())
    await wait_until(lambda: len(inboxes[0]) == 5 and len(inboxes[1]) == 5 and inboxes[2])
    assert inboxes[0] == inboxes[1] == [0, 1, 2, 3, 4]
    assert inboxes[2] == ["just one"]
    for client in clients:
        await client.disconnect()


async def test_a_recipient_that_fails_does_not_stop_the_others(server: Server,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    inboxes: list[list[Any]] = [[], [], []]
    clients = [await _client(server, "r", inbox) for inbox in inboxes]
    broken = server.sio.manager.eio_sid_from_sid(clients[0].get_sid(), "/")
    real_send = server.sio.eio.send_packet

    async def send(eio_sid: str, pkt: Any) -> None:
        if eio_sid == broken:
            raise ConnectionResetError("gone")
        await real_send(eio_sid, pkt)

    monkeypatch.setattr(server.sio.eio, "send_packet", send)
    await server.sio.emit("note", "still sent", to="r")
    await server.sio.emit("note", "marker", to="r")
    await wait_until(lambda: len(inboxes[1]) == 2 and len(inboxes[2]) == 2)
    assert inboxes == [[], ["still sent", "marker"], ["still sent", "marker"]]
    for client in clients:
        await client.disconnect()
