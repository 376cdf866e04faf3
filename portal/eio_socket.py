"""The portal's Engine.IO sockets: python-engineio's, with websocket frames written in place.

python-engineio sends every packet through the socket's queue: on a websocket, a writer task waits
on the queue (``asyncio.wait_for`` around ``Queue.get``: a task, a future and a timer per wait),
wakes up for the packet and writes it; a packet costs that task and two to three loop turns.  A
relayed text makes two packets (the sender's ack, the delivery to its partner).

:class:`InPlaceSocket` writes the frame in the sending task instead when the websocket is idle: the
writer waits with nothing in hand and nothing is queued.  Anything queued or taken by the writer is
ahead of the packet, which then goes through the queue as before, so frames leave in the order they
were sent.  Polling connections, a websocket being upgraded to, and a socket closing keep the queue.
Only messages skip it: pings still go through the queue, so the writer, which closes the websocket
when nothing reaches it for ``ping_interval + ping_timeout``, keeps getting one per ping interval.  A
write that fails puts the packet on the queue, where the writer meets the same failure and closes
the websocket, as it would have.

:func:`in_place` turns a socket python-engineio just made into one (from the portal's Engine.IO
``connect`` handler, before its transport starts).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from engineio import packet
from engineio.async_socket import AsyncSocket

__all__ = ["InPlaceSocket", "in_place"]

_Write = Callable[[str | bytes], Awaitable[None]]


class _WriterQueue(asyncio.Queue):  # type: ignore[type-arg]
    """A socket's packet queue that knows whether its websocket writer is idle."""

    def __init__(self) -> None:
        super().__init__()
        #: The writer waits in :meth:`InPlaceSocket.poll` with nothing in hand: set when it polls an
        #: empty queue, cleared by any packet queued (whoever queues it), until it polls again.
        self.idle = False

    def _put(self, item: Any) -> None:
        self.idle = False
        super()._put(item)


class InPlaceSocket(AsyncSocket):  # type: ignore[misc]  # python-engineio ships no types
    """An Engine.IO socket whose messages skip the queue while its websocket writer is idle."""

    queue: _WriterQueue
    #: Writes one encoded packet to the websocket, while its handler runs (None: no websocket).
    _write: _Write | None = None

    async def send(self, pkt: Any) -> None:
        write = self._write
        if (write is None or pkt.packet_type != packet.MESSAGE or not self.queue.idle or not self.upgraded
                or self.upgrading or self.closing or self.closed):
            await super().send(pkt)
            return
        if not await self.check_ping_timeout():
            return
        try:
            await write(pkt.encode())
        except Exception:  # noqa: BLE001 - the writer meets the same failure and closes the websocket
            await self.queue.put(pkt)

    async def poll(self) -> Any:
        self.queue.idle = self.queue.empty()
        try:
            return await super().poll()
        finally:
            self.queue.idle = False

    async def _websocket_handler(self, ws: Any) -> Any:
        sock = getattr(ws, "_sock", None)  # python-engineio's aiohttp wrapper: write to aiohttp directly
        self._write = _writer(sock) if isinstance(sock, web.WebSocketResponse) else ws.send
        try:
            return await super()._websocket_handler(ws)
        finally:
            self._write = None


def _writer(sock: web.WebSocketResponse) -> _Write:
    async def write(data: str | bytes) -> None:
        if isinstance(data, bytes):
            await sock.send_bytes(data)
        else:
            await sock.send_str(data)

    return write


def in_place(socket: Any) -> None:
    """Make ``socket`` (python-engineio's, not yet transporting) an :class:`InPlaceSocket`, its queue
    (and what it holds) a :class:`_WriterQueue`."""
    if type(socket) is not AsyncSocket:
        return
    old, queue = socket.queue, _WriterQueue()
    while not old.empty():
        queue.put_nowait(old.get_nowait())
        old.task_done()
    socket.queue = queue
    socket.__class__ = InPlaceSocket
