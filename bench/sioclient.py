"""A minimal Socket.IO v5 / Engine.IO 4 client over an aiohttp websocket, for load generation.

python-socketio's ``AsyncClient`` costs about as much CPU per message as the server it drives, and
the load generator shares the 2 cores with the server; this client speaks the text packets directly
(``0{…}`` open, ``40`` connect, ``42[…]`` event, ``42<id>[…]``/``43<id>[…]`` acks, ``2``/``3``
ping/pong, ``41`` disconnect) and costs a fraction of that.  Namespace ``/`` only, websocket
transport only, no binary packets.  The same client drives our server and the baselines.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import aiohttp
import msgspec

from bench.servers import SERVICE_KEY_ENV

__all__ = ["SioClient", "SioError", "mint_token"]

_encode = msgspec.json.encode
_decode = msgspec.json.decode


class SioError(Exception):
    pass


class SioClient:
    """One Socket.IO connection.  ``on(event, fn)`` registers a handler ``fn(*args)`` (plain function)."""

    __slots__ = ("_ws", "_acks", "_next_id", "_handlers", "_reader", "sid", "closed", "on_close")

    def __init__(self) -> None:
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._acks: dict[int, asyncio.Future[list[Any]]] = {}
        self._next_id = 0
        self._handlers: dict[str, Callable[..., None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self.sid = ""
        self.closed: asyncio.Future[None] | None = None
        self.on_close: Callable[[], None] | None = None

    def on(self, event: str, handler: Callable[..., None]) -> None:
        self._handlers[event] = handler

    async def connect(self, session: aiohttp.ClientSession, url: str, auth: Any = None, timeout: float = 10.0) -> None:
        """Open the websocket and connect to namespace ``/``; ``url`` is ``http://host:port``."""
        ws_url = url.rstrip("/").replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        ws = await session.ws_connect(ws_url, autoping=False, timeout=aiohttp.ClientWSTimeout(ws_close=1.0),
                                      max_msg_size=0, compress=0)
        self._ws = ws
        try:
            async with asyncio.timeout(timeout):
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT or not msg.data.startswith("0"):
                    raise SioError(f"unexpected open packet {msg.data!r}")
                await ws.send_str("40" if auth is None else "40" + _encode(auth).decode())
                while True:
                    msg = await ws.receive()
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        raise SioError(f"connection closed during connect ({msg.type.name})")
                    data = msg.data
                    if data == "2":
                        await ws.send_str("3")
                    elif data.startswith("40"):
                        self.sid = _decode(data[2:]).get("sid", "") if len(data) > 2 else ""
                        break
                    elif data.startswith("44"):
                        raise SioError(f"connect refused: {data[2:]}")
        except BaseException:
            await ws.close()
            raise
        self.closed = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        acks, handlers = self._acks, self._handlers
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data: str = msg.data
                kind = data[:2]
                if kind == "42":
                    args = _decode(_payload(data))
                    handler = handlers.get(args[0])
                    if handler is not None:
                        handler(*args[1:])
                elif kind == "43":
                    start = end = 2
                    while data[end].isdigit():
                        end += 1
                    future = acks.pop(int(data[start:end]), None)
                    if future is not None and not future.done():
                        future.set_result(_decode(data[end:]))
                elif data == "2":
                    await ws.send_str("3")
                elif kind == "41":
                    break
        except (aiohttp.ClientError, ConnectionError):
            pass
        finally:
            for future in acks.values():
                if not future.done():
                    future.set_exception(SioError("disconnected"))
            acks.clear()
            if self.closed is not None and not self.closed.done():
                self.closed.set_result(None)
            if self.on_close is not None:
                self.on_close()

    async def emit(self, event: str, *args: Any) -> None:
        assert self._ws is not None
        await self._ws.send_str("42" + _encode([event, *args]).decode())

    async def call(self, event: str, *args: Any, timeout: float = 10.0) -> list[Any]:
        assert self._ws is not None
        ack_id = self._next_id
        self._next_id += 1
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = future
        await self._ws.send_str(f"42{ack_id}" + _encode([event, *args]).decode())
        async with asyncio.timeout(timeout):
            return await future

    async def disconnect(self) -> None:
        """Socket.IO disconnect (``41``), then close the websocket."""
        if self._ws is not None and not self._ws.closed:
            try:
                await self._ws.send_str("41")
            except (aiohttp.ClientError, ConnectionError):
                pass
        await self.drop()

    async def drop(self) -> None:
        """Close the transport without a Socket.IO disconnect (what a network loss looks like)."""
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            try:
                await self._reader
            except asyncio.CancelledError:
                pass


def _payload(data: str) -> str:
    """The JSON part of a ``42…`` packet (after an optional ack id)."""
    i = 2
    while data[i].isdigit():
        i += 1
    return data[i:]


async def mint_token(session: aiohttp.ClientSession, api_url: str, room: str, user: str, role: str = "presenter") -> str:
    """``POST {api}/token`` → the join token text."""
    headers = {"X-Service-Key": os.environ[SERVICE_KEY_ENV]}
    async with session.post(f"{api_url}/token", json={"room": room, "user": user, "role": role},
                            headers=headers) as resp:
        text = await resp.text()
        if resp.status != 200:
            raise SioError(f"POST /token: {resp.status} {text[:200]}")
        return text
