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
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import socketio
from engineio import packet as eio_packet
from socketio import packet

__all__ = ["PortalSocketServer"]


class PortalSocketServer(socketio.AsyncServer):  # type: ignore[misc]  # python-socketio ships no types
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Handlers already checked to be coroutine functions (``inspect`` costs a few calls per event).
        self._coroutine_handlers: dict[Callable[..., Any], bool] = {}

    async def _handle_event_internal(self, server: Any, sid: str, eio_sid: str, data: list[Any],
                                     namespace: str, id: int | None) -> None:
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
        args = [] if r is None else list(r) if isinstance(r, tuple) else [r]
        encoded = self.packet_class(packet.ACK, namespace=namespace, id=id, data=args).encode()
        socket = self.eio.sockets.get(eio_sid)
        if isinstance(encoded, str) and socket is not None and not socket.closed:
            await socket.send(eio_packet.Packet(eio_packet.MESSAGE, data=encoded))
        else:  # binary attachments, or no socket to send to: the library's path (and its warning)
            await self._send_packet(eio_sid, self.packet_class(packet.ACK, namespace=namespace, id=id, data=args))

    def _direct_handler(self, namespace: str, event: str) -> Callable[..., Any] | None:
        """The coroutine handler registered for ``event`` itself on ``namespace``, if there is one."""
        handler = self.handlers.get(namespace, {}).get(event)
        if handler is None:
            return None
        known = self._coroutine_handlers.get(handler)
        if known is None:
            known = self._coroutine_handlers[handler] = inspect.iscoroutinefunction(handler)
        return handler if known else None
