"""One Socket.IO connection to a portal (a fresh ``AsyncClient`` per connection, no auto-reconnect).

The :class:`~switchboard.client.Client` owns reconnection itself, so that ``relogin`` is always the
first request on a new socket; this module only connects, sends requests with acks, forwards server
events and reports the loss of the transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import socketio
import socketio.exceptions

from .errors import ClientError, ConnectionLost, ProtocolError, RequestTimeout
from .logs import ClientLog

__all__ = ["Connection", "OK_STATUSES"]

_log = ClientLog()

#: Ack statuses that mean success (``'success'`` is OWT's legacy word).
OK_STATUSES = frozenset({"ok", "success"})


class Connection:
    """A Socket.IO client connection with ``(status, data)`` acks turned into results.

    :param on_event: called synchronously, in arrival order, with ``(connection, name, args)`` for
                     every server event.
    :param on_lost: called once with the reason when the connection goes away for any cause other
                    than :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        *,
        on_event: Callable[["Connection", str, tuple[Any, ...]], None],
        on_lost: Callable[["Connection", str], None],
        ssl_verify: bool = True,
    ) -> None:
        self.url = url
        self._on_event = on_event
        self._on_lost = on_lost
        self._sio = socketio.AsyncClient(reconnection=False, ssl_verify=ssl_verify)
        self._sio.on("*", self._handle_event)
        self._sio.on("disconnect", self._handle_disconnect)
        self._pending: set[asyncio.Future[tuple[Any, ...]]] = set()
        self._closing = False
        self.lost = False

    async def open(self, timeout: float) -> None:
        """Connect over websocket.

        :raises ConnectionLost: when the portal cannot be reached within ``timeout`` seconds.
        """
        try:
            await asyncio.wait_for(self._sio.connect(self.url, transports=["websocket"], wait_timeout=timeout), timeout)
        except (socketio.exceptions.ConnectionError, TimeoutError, OSError) as exc:
            await self._abandon()
            raise ConnectionLost(f"cannot connect to {self.url}: {str(exc) or type(exc).__name__}") from None

    async def request(self, event: str, payload: Any, timeout: float) -> Any:
        """Emit ``event`` and wait for its ``(status, data)`` ack; return ``data`` on ``'ok'``.

        :raises ClientError: on ``('error', reason)``.
        :raises ConnectionLost: when the connection goes away before the ack.
        :raises RequestTimeout: when no ack comes within ``timeout`` seconds.
        """
        future: asyncio.Future[tuple[Any, ...]] = asyncio.get_running_loop().create_future()

        def answered(*args: Any) -> None:
            if not future.done():
                future.set_result(args)

        self._pending.add(future)
        try:
            if self.lost:
                raise ConnectionLost("connection lost")
            try:
                await self._sio.emit(event, payload, callback=answered)
            except socketio.exceptions.SocketIOError as exc:
                raise ConnectionLost(f"cannot send {event!r}: {exc}") from None
            try:
                args = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise RequestTimeout(f"no answer to {event!r} within {timeout} s") from None
        finally:
            self._pending.discard(future)
        return _ack_result(event, args)

    async def emit(self, event: str, payload: Any) -> None:
        """Emit ``event`` without waiting for anything.

        :raises ConnectionLost: when there is no live connection.
        """
        try:
            await self._sio.emit(event, payload)
        except socketio.exceptions.SocketIOError as exc:
            raise ConnectionLost(f"cannot send {event!r}: {exc}") from None

    async def close(self) -> None:
        """Disconnect politely (Socket.IO disconnect); ``on_lost`` is not called."""
        self._closing = True
        await self._sio.disconnect()
        self._fail_pending("connection closed")

    async def drop(self) -> None:
        """Close the websocket under Socket.IO, as a network failure would: the server sees a
        transport close, not a disconnect, and ``on_lost`` is called."""
        ws = getattr(self._sio.eio, "ws", None)
        if ws is None or ws.closed:
            return
        await ws.close()

    async def _abandon(self) -> None:
        self._closing = True
        try:
            await self._sio.disconnect()
        except Exception as exc:  # a half-open connection may fail to close; nothing is left to do
            _log.debug("disconnect_failed", error=repr(exc))
        self.lost = True

    def _fail_pending(self, reason: str) -> None:
        for future in self._pending:
            if not future.done():
                future.set_exception(ConnectionLost(reason))

    def _handle_event(self, event: str, *args: Any) -> None:
        self._on_event(self, event, args)

    def _handle_disconnect(self, reason: str = "") -> None:
        self.lost = True
        self._fail_pending(f"connection lost ({reason})")
        if not self._closing:
            self._on_lost(self, reason)


def _ack_result(event: str, args: tuple[Any, ...]) -> Any:
    status = args[0] if args else None
    data = args[1] if len(args) > 1 else None
    if status in OK_STATUSES:
        return data
    if status == "error":
        raise ClientError(data)
    raise ProtocolError(f"unknown ack status {status!r} for {event!r}")
