"""A bare python-socketio client for tests: it records every event a portal emits, answers nothing
by itself and never reconnects, so a test sees exactly what the portal did."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Self

import socketio

__all__ = ["RecordingClient", "OWT_AGENT"]

#: The ``userAgent`` the OWT JavaScript SDK sends at login.
OWT_AGENT: dict[str, Any] = {"sdk": {"type": "JavaScript", "version": "5.1"}}


class RecordingClient:
    """Connects to ``url`` over a websocket; ``received`` is every ``(event, data)`` in order."""

    EVENTS = ("participant", "text", "stream", "progress", "drop")

    def __init__(self, url: str) -> None:
        self.url = url
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: list[tuple[str, Any]] = []
        self.disconnected = asyncio.Event()
        for event in self.EVENTS:
            self.sio.on(event, self._recorder(event))
        self.sio.on("disconnect", self._on_disconnect)

    def _recorder(self, event: str) -> Callable[..., Awaitable[None]]:
        async def record(*args: Any) -> None:
            self.received.append((event, args[0] if args else None))

        return record

    async def _on_disconnect(self, *args: Any) -> None:
        self.disconnected.set()

    async def connect(self) -> Self:
        await self.sio.connect(self.url, transports=["websocket"])
        return self

    async def call(self, event: str, *payload: Any, timeout: float = 10.0) -> Any:
        return await self.sio.call(event, *payload, timeout=timeout)

    async def login(self, token: str, *, extension: bool = False, protocol: str = "1.2") -> Any:
        """``login`` as the OWT SDK sends it (with the switchboard extension if asked); the ack."""
        agent: dict[str, Any] = dict(OWT_AGENT)
        if extension:
            agent["switchboard"] = {"seq": True}
        return await self.call("login", {"token": token, "userAgent": agent, "protocol": protocol})

    async def login_ok(self, token: str, *, extension: bool = False) -> dict[str, Any]:
        """:meth:`login` that must succeed; the login result."""
        status, result = await self.login(token, extension=extension)
        assert status == "ok", result
        return dict(result)

    def texts(self) -> list[Any]:
        return [data["message"] for event, data in self.received if event == "text"]

    def seqs(self) -> list[int]:
        """The ``seq`` of every event received (extension sessions)."""
        return [data["seq"] for _, data in self.received if isinstance(data, dict) and "seq" in data]

    def participant_events(self) -> list[Any]:
        return [data for event, data in self.received if event == "participant"]

    async def lose_network(self) -> None:
        """Close the websocket under the client (what a network loss looks like to the server)."""
        await self.sio.eio.ws.close()
        await asyncio.wait_for(self.disconnected.wait(), 5)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
