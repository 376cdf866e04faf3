"""The portal's Socket.IO server on a real aiohttp server and a real python-socketio client: an event
with a coroutine handler of its own is answered without python-socketio's ``_trigger_event`` and
its ack reaches the client as before; every other kind of handler keeps the library's path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import socketio

from portal.packets import JsonPacket
from portal.sio_manager import InPlaceManager
from portal.sio_server import PortalSocketServer

from .sio_test_server import SioTestServer


class Server(SioTestServer):
    def __init__(self) -> None:
        super().__init__(PortalSocketServer(async_mode="aiohttp", client_manager=InPlaceManager(), serializer=JsonPacket))
        #: Client events that went through python-socketio's ``_trigger_event`` (not connect/disconnect).
        self.triggered: list[str] = []
        trigger = self.sio._trigger_event

        async def counting(event: str, namespace: str, *args: Any) -> Any:
            if event not in ("connect", "disconnect"):
                self.triggered.append(event)
            return await trigger(event, namespace, *args)

        self.sio._trigger_event = counting

        @self.sio.event  # type: ignore[untyped-decorator]  # python-socketio ships no types
        async def pair(sid: str, a: Any, b: Any) -> tuple[Any, Any]:
            return "ok", [a, b]

        @self.sio.event  # type: ignore[untyped-decorator]
        async def nothing(sid: str) -> None:
            return None

        @self.sio.event  # type: ignore[untyped-decorator]
        async def one(sid: str, value: Any) -> Any:
            return {"got": value}

        @self.sio.event  # type: ignore[untyped-decorator]
        async def cancelled(sid: str) -> Any:
            raise asyncio.CancelledError

        @self.sio.event  # type: ignore[untyped-decorator]
        def plain(sid: str, value: Any) -> Any:
            return value

        @self.sio.on("*")  # type: ignore[untyped-decorator]
        async def other(event: str, sid: str, *args: Any) -> Any:
            return ["caught", event]


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    made = Server()
    await made.start()
    yield made
    await made.stop()


@pytest.fixture
async def client(server: Server) -> AsyncIterator[socketio.AsyncClient]:
    made = socketio.AsyncClient(reconnection=False)
    await made.connect(server.url, transports=["websocket"])
    yield made
    await made.disconnect()


async def test_an_event_with_a_coroutine_handler_of_its_own_skips_trigger_event(
        server: Server, client: socketio.AsyncClient) -> None:
    assert await client.call("pair", (1, "b")) == ("ok", [1, "b"])
    assert await client.call("one", {"x": 1}) == {"got": {"x": 1}}
    assert await client.call("nothing") is None
    assert server.triggered == []


async def test_a_cancelled_handler_is_answered_with_an_empty_ack(server: Server, client: socketio.AsyncClient) -> None:
    assert await client.call("cancelled") is None


async def test_other_handlers_keep_the_library_path(server: Server, client: socketio.AsyncClient) -> None:
    assert await client.call("plain", 5) == 5  # a sync handler
    assert await client.call("unheard", 1) == ["caught", "unheard"]  # the catch-all
    assert server.triggered == ["plain", "unheard"]


async def test_an_event_without_an_ack_id_sends_nothing_back(server: Server, client: socketio.AsyncClient) -> None:
    got: list[Any] = []
    client.on("*", lambda event, *args: got.append(event))
    await client.emit("one", 1)
    assert await client.call("one", 2) == {"got": 2}  # answered after the first, which sent nothing
    assert got == []
