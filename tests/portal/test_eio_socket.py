"""The portal's Engine.IO sockets, on a real server and real clients: messages to an idle websocket are
written in place (not through the queue), in order with what the queue carries, and pings still go
through the queue, so the websocket's writer keeps it open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio
from aiohttp import web
from engineio import packet as eio_packet

from portal.eio_socket import InPlaceSocket, in_place
from portal.packets import JsonPacket
from portal.sio_manager import InPlaceManager
from tests.support.waiting import wait_until

from .harness import Harness


class Server:
    def __init__(self, ping_interval: float = 25, ping_timeout: float = 20) -> None:
        self.sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=InPlaceManager(), serializer=JsonPacket,
                                        ping_interval=ping_interval, ping_timeout=ping_timeout)
        self.app = web.Application()
        self.sio.attach(self.app)
        self.runner = web.AppRunner(self.app)
        self.url = ""
        #: Packet types put on each socket's queue, in order.
        self.queued: list[int] = []
        eio = self.sio.eio
        connect = eio.handlers["connect"]

        async def connected(eio_sid: str, environ: dict[str, Any]) -> Any:
            socket = eio.sockets[eio_sid]
            in_place(socket)
            queue_put = socket.queue.put

            async def put(pkt: Any) -> None:
                if pkt is not None:
                    self.queued.append(pkt.packet_type)
                await queue_put(pkt)

            socket.queue.put = put
            return await connect(eio_sid, environ)

        eio.on("connect", connected)

        @self.sio.event  # type: ignore[untyped-decorator]  # python-socketio ships no types
        async def count(sid: str, n: int) -> str:
            for i in range(n):
                await self.sio.emit("note", i, to=sid)
            return "done"

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        await self.sio.shutdown()
        await self.runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    made = Server()
    await made.start()
    yield made
    await made.stop()


async def _client(server: Server, got: list[Any]) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    client.on("note", lambda data: got.append(data))
    await client.connect(server.url, transports=["websocket"])
    return client


async def test_messages_to_an_idle_websocket_skip_the_queue_in_order(server: Server) -> None:
    got: list[Any] = []
    client = await _client(server, got)
    [socket] = server.sio.eio.sockets.values()
    assert isinstance(socket, InPlaceSocket)
    assert await client.call("count", 200) == "done"  # the ack is a message too
    await wait_until(lambda: len(got) == 200)
    assert got == list(range(200))
    assert eio_packet.MESSAGE not in server.queued  # the open packet went through the queue, no message did
    await client.disconnect()


async def test_a_socket_upgraded_from_polling_gets_its_messages_in_order(server: Server) -> None:
    got: list[Any] = []
    client = socketio.AsyncClient(reconnection=False)
    client.on("note", lambda data: got.append(data))
    await client.connect(server.url, transports=["polling", "websocket"])
    await wait_until(lambda: client.transport() == "websocket", what="the upgrade")
    [socket] = server.sio.eio.sockets.values()
    await wait_until(lambda: socket.queue.idle, what="the websocket writer waiting")
    sent_before = server.queued.count(eio_packet.MESSAGE)
    assert await client.call("count", 100) == "done"
    await wait_until(lambda: len(got) == 100)
    assert got == list(range(100))
    assert server.queued.count(eio_packet.MESSAGE) == sent_before  # written in place once upgraded
    await client.disconnect()


async def test_messages_queued_behind_a_busy_writer_keep_their_order(server: Server) -> None:
    got: list[Any] = []
    client = await _client(server, got)
    [socket] = server.sio.eio.sockets.values()
    sid = server.sio.manager.sid_from_eio_sid(socket.sid, "/")
    await wait_until(lambda: socket.queue.idle)
    # A packet the queue carries (as python-engineio's own packets do) wakes the writer: until it is
    # written, messages go through the queue behind it.
    await socket.queue.put(eio_packet.Packet(eio_packet.NOOP))
    await asyncio.gather(*(server.sio.emit("note", i, to=sid) for i in range(50)))
    await wait_until(lambda: len(got) == 50)
    assert got == list(range(50))
    assert eio_packet.MESSAGE in server.queued
    await client.disconnect()


async def test_pings_keep_a_websocket_that_gets_only_messages_open() -> None:
    # python-engineio's writer closes the websocket when nothing reaches its queue for
    # ping_interval + ping_timeout: the pings still go through it.
    server = Server(ping_interval=0.2, ping_timeout=0.2)
    await server.start()
    try:
        got: list[Any] = []
        client = await _client(server, got)
        sent = 0
        while server.queued.count(eio_packet.PING) < 5:
            assert await client.call("count", 1) == "done"
            sent += 1
            await wait_until(lambda: len(got) == sent)
        assert client.connected
        assert len(server.sio.eio.sockets) == 1
        await client.disconnect()
    finally:
        await server.stop()


async def test_the_portals_sockets_write_in_place(harness: Harness) -> None:
    portal = await harness.portal()
    await harness.joined(portal)
    sockets = list(portal.server.sio.eio.sockets.values())
    assert sockets and all(isinstance(socket, InPlaceSocket) for socket in sockets)
