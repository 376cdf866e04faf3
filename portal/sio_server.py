"""The portal's Socket.IO server: python-socketio's, with a shorter way from an event to its ack.

For each client event python-socketio's handler task looks the handler up through
``_trigger_event`` (namespace, catch-all and legacy-disconnect rules, ``inspect.iscoroutinefunction``
per event), then sends the ack through three coroutines (``_send_packet``, Engine.IO's ``send`` and
``send_packet``) to the Engine.IO socket.  The portal registers one coroutine handler per event on
the default namespace (and a catch-all for the rest), so :class:`PortalSocketServer` calls a
handler registered under the event's own name directly, and hands a text ack to the Engine.IO socket
itself.  Anything else (a catch-all, a namespace class, a sync handler, a binary ack, a socket gone
or closed) takes the library's path as before; the handler's cancellation is answered with an empty
ack, as the library does.

An event may also have a *continued* handler (:attr:`PortalSocketServer.continued`), called with the
socket's sid, the event's argument and a function that sends the ack.  It returns ``False`` to leave
the event to its coroutine handler, or ``True`` once it took the event; it then sends the ack itself,
possibly later from a callback (a ``text`` relayed over the in-process transport: no coroutine of the
portal waits for the controller).  Such an ack is written in place up to the write's first suspension
(a websocket waiting for its buffer to drain); the rest goes on as a task.  A failure to send it is
logged, as the library's handler task would.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet

from rpc.local import carry_on

from .logs import EventLog

__all__ = ["PortalSocketServer", "ContinuedHandler", "SendAck"]

log = EventLog()

#: Sends the ack of the event it was made for (from any callback: it does not raise).
SendAck = Callable[[Any], None]
#: ``(sid, argument, send_ack) -> taken``: see the module's docstring.
ContinuedHandler = Callable[[str, Any, SendAck], bool]


class PortalSocketServer(socketio.AsyncServer):  # type: ignore[misc]  # python-socketio ships no types
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Handlers already checked to be coroutine functions (``inspect`` costs a few calls per event).
        self._coroutine_handlers: dict[Callable[..., Any], bool] = {}
        #: Handlers of events of the default namespace that may answer from a callback (see above).
        self.continued: dict[str, ContinuedHandler] = {}
        #: Acks whose sending suspended, going on as tasks.
        self._sending: set[asyncio.Task[None]] = set()

    async def _handle_event_internal(self, server: Any, sid: str, eio_sid: str, data: list[Any],
                                     namespace: str, id: int | None) -> None:
        if id is not None and server is self and namespace == "/" and len(data) <= 2:
            continued = self.continued.get(data[0])
            if continued is not None and continued(sid, data[1] if len(data) > 1 else None,
                                                   lambda r: self._send_eagerly(self._ack(eio_sid, namespace, id, r))):
                return
        handler = self._direct_handler(namespace, data[0])
        if handler is None or server is not self:
            await super()._handle_event_internal(server, sid, eio_sid, data, namespace, id)
            return
        try:
            r = await handler(sid, *data[1:])
        except asyncio.CancelledError:  # as python-socketio: the client still gets its (empty) ack
            r = None
        if id is None:
            return
        await self._ack(eio_sid, namespace, id, r)

    async def _ack(self, eio_sid: str, namespace: str, id: int, r: Any) -> None:
        """Send ``r`` as the ack of event ``id``."""
        args = [] if r is None else list(r) if isinstance(r, tuple) else [r]
        encoded = self.packet_class(packet.ACK, namespace=namespace, id=id, data=args).encode()
        socket = self.eio.sockets.get(eio_sid)
        if isinstance(encoded, str) and socket is not None and not socket.closed:
            await socket.send(eio_packet.Packet(eio_packet.MESSAGE, data=encoded))
        else:  # binary attachments, or no socket to send to: the library's path (and its warning)
            await self._send_packet(eio_sid, self.packet_class(packet.ACK, namespace=namespace, id=id, data=args))

    def _send_eagerly(self, sending: Coroutine[Any, Any, None]) -> None:
        """Run ``sending`` here up to its first suspension (most acks are written without one); if it
        suspends, it goes on as a task from there.  A failure is logged, not raised."""
        try:
            waiting_on = sending.send(None)
        except StopIteration:
            return
        except Exception:
            log.exception("ack_send_failed")
            return
        task = asyncio.get_running_loop().create_task(carry_on(sending, waiting_on), name="ack-send")
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.exception("ack_send_failed", exc_info=task.exception())

    def _direct_handler(self, namespace: str, event: str) -> Callable[..., Any] | None:
        """The coroutine handler registered for ``event`` itself on ``namespace``, if there is one."""
        handler = self.handlers.get(namespace, {}).get(event)
        if handler is None:
            return None
        known = self._coroutine_handlers.get(handler)
        if known is None:
            known = self._coroutine_handlers[handler] = inspect.iscoroutinefunction(handler)
        return handler if known else None
