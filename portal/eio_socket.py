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

It also reads its websocket in place: python-engineio reads each frame in a task of its own, awaited
under ``asyncio.wait_for`` (a task, a future and a timer per frame in).  The socket's websocket
handler here awaits aiohttp's ``receive`` itself, and one timer per websocket (:class:`_ReadDeadline`)
enforces the same bound, ``ping_interval + ping_timeout`` of silence while a frame is awaited: it
only looks at the time the current wait began when it fires, and cancels the wait if that bound has
passed.  The rest is python-engineio's websocket transport as it was: the upgrade's probe and
``UPGRADE`` packet, the writer task for what the queue carries, a too large or non-data frame ending
the transport, the socket closed as a transport close once the reading stops.

:func:`in_place` turns a socket python-engineio just made into one (from the portal's Engine.IO
``connect`` handler, before its transport starts).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from engineio import exceptions, packet
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
    connected: bool
    upgraded: bool
    upgrading: bool
    #: Writes one encoded packet to the websocket, while its handler runs (None: no websocket).
    _write: _Write | None = None

    async def send(self, pkt: Any) -> None:
        write = self._write
        if (write is None or pkt.packet_type != packet.MESSAGE or not self.queue.idle or not self.upgraded
                or self.upgrading or self.closing or self.closed):
            await super().send(pkt)
            return
        last_ping = self.last_ping  # python-engineio's check, its coroutine only when the ping is overdue
        if last_ping and time.time() - last_ping > self.server.ping_timeout and not await self.check_ping_timeout():
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
        sock = getattr(ws, "_sock", None)  # python-engineio's aiohttp wrapper: read and write aiohttp directly
        if not isinstance(sock, web.WebSocketResponse):
            self._write = ws.send
            try:
                return await super()._websocket_handler(ws)
            finally:
                self._write = None
        self._write = _writer(sock)
        try:
            await self._serve_websocket(ws, sock)
        finally:
            self._write = None

    async def _serve_websocket(self, ws: Any, sock: web.WebSocketResponse) -> None:
        if self.connected and not await self._upgrade(ws, sock):
            return
        if not self.connected:
            self.connected = True
            self.upgraded = True
        writer = asyncio.ensure_future(self._write_queued(ws))
        try:
            await self._read_frames(sock)
        finally:
            await self.queue.put(None)  # the writer ends with what was queued before it
            await writer
            await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)

    async def _upgrade(self, ws: Any, sock: web.WebSocketResponse) -> bool:
        """The polling connection's upgrade to this websocket: the client's ``PING probe`` gets
        ``PONG probe``, the poll in progress ends (a ``NOOP``), then the ``UPGRADE`` packet switches."""
        self.upgrading = True  # sends are held (queued) meanwhile
        probe = await self._frame(sock)
        if probe is None or probe.packet_type != packet.PING or probe.data != "probe":
            self.upgrading = False
            return False
        await ws.send(packet.Packet(packet.PONG, data="probe").encode())
        await self.queue.put(packet.Packet(packet.NOOP))
        switch = await self._frame(sock)
        if switch is None or switch.packet_type != packet.UPGRADE:
            self.upgraded = False
            self.upgrading = False
            return False
        self.upgraded = True
        self.upgrading = False
        return True

    async def _frame(self, sock: web.WebSocketResponse) -> Any:
        """The next frame as a packet; None when the websocket ends or sends what is not one."""
        msg = await sock.receive()
        data = msg.data
        if not isinstance(data, (str, bytes)) or len(data) > self.server.max_http_buffer_size:
            return None
        try:
            return packet.Packet(encoded_packet=data)
        except Exception:  # noqa: BLE001 - undecodable: the transport ends, as python-engineio's does
            return None

    async def _read_frames(self, sock: web.WebSocketResponse) -> None:
        """Receive packets until the websocket ends, sends what is not a packet, or is silent for
        ``ping_interval + ping_timeout`` while a frame is awaited."""
        deadline = _ReadDeadline(self.server.ping_interval + self.server.ping_timeout)
        message = self._message_handler()
        try:
            while True:
                deadline.waiting()
                try:
                    pkt = await self._frame(sock)
                except asyncio.CancelledError:
                    # The deadline's (taken back), or the handler's own: the reading ends either
                    # way and the socket closes, as python-engineio's reader does.
                    deadline.settle()
                    return
                finally:
                    deadline.done()
                if pkt is None:
                    return
                if message is not None and pkt.packet_type == packet.MESSAGE:
                    try:
                        await message(self.sid, pkt.data)
                    except Exception:  # noqa: BLE001 - as python-engineio: logged, the connection goes on
                        self.server.logger.exception("message async handler error")
                    continue
                try:
                    await self.receive(pkt)
                except exceptions.UnknownPacketError:
                    pass
                except exceptions.SocketIsClosedError:
                    return
                except Exception:  # noqa: BLE001 - as python-engineio: logged, the connection goes on
                    self.server.logger.exception("Unknown receive error")
        finally:
            deadline.stop()

    def _message_handler(self) -> Callable[[str, Any], Awaitable[Any]] | None:
        """The server's ``message`` handler, when python-engineio would await it in the reading task
        (no ``async_handlers``: python-socketio's own, which starts a task per event itself): the
        reader then calls it directly, without ``receive``'s log line and ``_trigger_event``'s two
        closures per packet.  None: packets go through ``receive``."""
        handler = self.server.handlers.get("message")
        if self.server.async_handlers or handler is None or not inspect.iscoroutinefunction(handler):
            return None
        return handler  # type: ignore[no-any-return]

    async def _write_queued(self, ws: Any) -> None:
        """The websocket's writer: what the queue carries (pings, packets behind a busy writer),
        until the queue ends it (``None``), stays empty past the ping bound, or a write fails."""
        while True:
            try:
                packets = await self.poll()
            except exceptions.QueueEmpty:
                break
            if not packets:
                break
            try:
                for pkt in packets:
                    await ws.send(pkt.encode())
            except Exception:  # noqa: BLE001 - the websocket is gone: closed below
                break
        await ws.close()


class _ReadDeadline:
    """One timer per websocket for the bound on a frame's wait, in place of a timer per frame: the
    reader notes when each wait begins and ends (a clock read); the timer, when it fires, cancels the
    reading task if the current wait has lasted ``bound`` seconds, else sets itself for the moment it
    would have."""

    __slots__ = ("_bound", "_loop", "_task", "_began", "_timer", "_fired")

    def __init__(self, bound: float) -> None:
        self._bound = bound
        self._loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        self._task = task
        #: When the wait in progress began (None: not waiting).
        self._began: float | None = None
        self._fired = False
        self._timer = self._loop.call_at(self._loop.time() + bound, self._check)

    def waiting(self) -> None:
        self._began = self._loop.time()

    def done(self) -> None:
        self._began = None

    def settle(self) -> None:
        """After a cancellation is caught: the deadline's own request is taken back."""
        if self._fired:
            self._fired = False
            self._task.uncancel()

    def stop(self) -> None:
        self._timer.cancel()

    def _check(self) -> None:
        now = self._loop.time()
        began = self._began
        if began is not None and now - began >= self._bound:
            self._fired = True
            self._task.cancel()
            return
        self._timer = self._loop.call_at((now if began is None else began) + self._bound, self._check)


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
