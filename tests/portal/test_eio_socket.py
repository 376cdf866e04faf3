"""The portal's Engine.IO sockets, on a real server and real clients: messages to an idle websocket are
written in place (not through the queue), in order with what the queue carries, and pings still go
through the queue, so the websocket's writer keeps it open."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import socketio
from engineio import packet as eio_packet

from portal.eio_socket import InPlaceSocket
from portal.packets import JsonPacket
from portal.sio_manager import InPlaceManager
from tests.support.waiting import wait_until

from .harness import Harness
from .sio_test_server import SioTestServer


class Server(SioTestServer):
    def __init__(self, ping_interval: float = 25, ping_timeout: float = 20, monitor_clients: bool = True,
                 max_http_buffer_size: int = 1_000_000) -> None:
        super().__init__(socketio.AsyncServer(async_mode="aiohttp", client_manager=InPlaceManager(),
                                              serializer=JsonPacket, ping_interval=ping_interval,
                                              ping_timeout=ping_timeout, monitor_clients=monitor_clients,
                                              max_http_buffer_size=max_http_buffer_size),
                         on_socket=self._count_queued)
        #: Packet types put on each socket's queue, in order.
        self.queued: list[int] = []
        #: What ``tick`` events brought, in order, and the sids that disconnected.
        self.ticks: list[Any] = []
        self.gone: list[str] = []

        @self.sio.event  # type: ignore[untyped-decorator]  # python-socketio ships no types
        def tick(sid: str, n: int) -> None:
            self.ticks.append(n)

        @self.sio.event  # type: ignore[untyped-decorator]  # python-socketio ships no types
        def disconnect(sid: str, reason: Any = None) -> None:
            self.gone.append(sid)

        @self.sio.event  # type: ignore[untyped-decorator]  # python-socketio ships no types
        async def count(sid: str, n: int) -> str:
            for i in range(n):
                await self.sio.emit("note", i, to=sid)
            return "done"

    def _count_queued(self, socket: Any) -> None:
        queue_put = socket.queue.put

        async def put(pkt: Any) -> None:
            if pkt is not None:
                self.queued.append(pkt.packet_type)
            await queue_put(pkt)

        socket.queue.put = put


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


class _RawClient:
    """A websocket speaking Engine.IO 4 / Socket.IO 5 frames by hand: it never answers a ping unless
    told to, and sends no frame the test did not write."""

    def __init__(self, session: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.session = session
        self.ws = ws

    @classmethod
    async def connect(cls, server: Server) -> _RawClient:
        session = aiohttp.ClientSession()
        url = server.url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        ws = await session.ws_connect(url, autoping=False)
        client = cls(session, ws)
        assert (await ws.receive_str()).startswith("0")  # Engine.IO open
        await ws.send_str("40")  # Socket.IO connect to "/"
        assert (await client.next_message()).startswith("0")  # Socket.IO connected
        return client

    async def next_message(self) -> str:
        """The next Engine.IO message packet's data (pings are skipped, not answered)."""
        while True:
            frame = await self.ws.receive_str()
            if frame.startswith("4"):
                return frame[1:]

    async def closed(self) -> bool:
        while True:
            msg = await self.ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return True

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()


async def test_incoming_frames_are_read_without_a_task_each(server: Server) -> None:
    # python-engineio read each frame in a task of its own; the portal's sockets read in place, so an
    # event costs only python-socketio's handler task.
    client = await _RawClient.connect(server)
    loop = asyncio.get_running_loop()
    created = 0
    factory = loop.get_task_factory()

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        nonlocal created
        created += 1
        return factory(loop, coro, **kwargs) if factory is not None else asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting)
    try:
        for i in range(200):
            await client.ws.send_str(f'42["tick",{i}]')
        await wait_until(lambda: len(server.ticks) == 200)
    finally:
        loop.set_task_factory(factory)
    assert server.ticks == list(range(200))
    assert created <= 200 + 10, created  # one handler task per event (plus the odd ping), not two
    await client.close()


async def test_a_websocket_silent_past_the_ping_bound_is_closed() -> None:
    # With python-engineio's client monitor off, only the reader's bound (ping_interval +
    # ping_timeout of silence while a frame is awaited) ends a client that never answers a ping.
    server = Server(ping_interval=0.2, ping_timeout=0.2, monitor_clients=False)
    await server.start()
    try:
        client = await _RawClient.connect(server)
        started = time.monotonic()
        assert await asyncio.wait_for(client.closed(), 5)
        assert time.monotonic() - started >= 0.3
        await wait_until(lambda: len(server.gone) == 1 and not server.sio.eio.sockets, what="the socket closed")
        await client.close()
    finally:
        await server.stop()


async def test_a_websocket_that_keeps_talking_stays_open_past_the_ping_bound() -> None:
    server = Server(ping_interval=0.2, ping_timeout=0.2, monitor_clients=False)
    await server.start()
    try:
        client = await _RawClient.connect(server)

        async def pong() -> None:  # python-engineio closes a socket whose pings go unanswered
            while True:
                if await client.ws.receive_str() == "2":
                    await client.ws.send_str("3")

        ponging = asyncio.ensure_future(pong())
        for i in range(12):  # 1.2 s: three times the bound, a frame every 0.1 s
            await client.ws.send_str(f'42["tick",{i}]')
            await asyncio.sleep(0.1)
        await wait_until(lambda: len(server.ticks) == 12)
        assert not server.gone and len(server.sio.eio.sockets) == 1
        ponging.cancel()
        await client.close()
        await wait_until(lambda: len(server.gone) == 1, what="the client's close seen")
    finally:
        await server.stop()


async def test_a_frame_over_the_size_bound_ends_the_transport() -> None:
    server = Server(max_http_buffer_size=1000)
    await server.start()
    try:
        client = await _RawClient.connect(server)
        await client.ws.send_str('42["tick",1]')
        await client.ws.send_str('42["tick","' + "x" * 2000 + '"]')
        assert await asyncio.wait_for(client.closed(), 5)
        await wait_until(lambda: len(server.gone) == 1)
        assert server.ticks == [1]
        await client.close()
    finally:
        await server.stop()
