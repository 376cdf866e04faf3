"""A scripted Socket.IO portal for the client's edge cases that the real stack never produces on cue
(overlapping replays, live events racing the relogin ack, ``resync-required``).

Each test sets the handlers it needs; every request is recorded in arrival order.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from aiohttp import web

__all__ = ["FakePortal", "make_ticket"]

Handler = Callable[[str, Any], Awaitable[Any]]


def make_ticket(participant: str, *, lifetime: float = 600.0, serial: int = 0) -> str:
    now = int(time.time() * 1000)
    fields = {"participantId": participant, "ticketId": f"t{serial}", "room": "fake", "notBefore": now,
              "notAfter": now + int(lifetime * 1000), "signature": "unsigned"}
    return base64.b64encode(json.dumps(fields).encode()).decode()


class FakePortal:
    """``handlers[event] = async fn(sid, payload) -> ack``; the default login logs in participant ``p1``."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncServer(async_mode="aiohttp")
        self.app = web.Application()
        self.sio.attach(self.app)
        self.received: list[tuple[str, str, Any]] = []
        self.handlers: dict[str, Handler] = {"login": self._login}
        self.port = 0
        self._runner: web.AppRunner | None = None
        self.sio.on("*", self._dispatch)

    @property
    def token(self) -> str:
        fields = {"host": f"127.0.0.1:{self.port}", "secure": False, "tokenId": "fake"}
        return base64.b64encode(json.dumps(fields).encode()).decode()

    def events(self, name: str) -> list[Any]:
        return [payload for _sid, event, payload in self.received if event == name]

    async def emit(self, sid: str, event: str, data: Any) -> None:
        await self.sio.emit(event, data, to=sid)

    async def start(self) -> None:
        # A stopped fake portal is a dead one: its open websockets are cut at once, not awaited.
        self._runner = web.AppRunner(self.app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, event: str, sid: str, *args: Any) -> Any:
        payload = args[0] if args else None
        self.received.append((sid, event, payload))
        handler = self.handlers.get(event)
        if handler is None:
            return None if event == "ack" else ("ok", None)
        return await handler(sid, payload)

    async def _login(self, sid: str, payload: Any) -> Any:
        return "ok", {
            "id": "p1", "user": "u", "role": "presenter",
            "room": {"id": "fake", "participants": [{"id": "p1", "user": "u", "role": "presenter"}], "streams": []},
            "reconnectionTicket": make_ticket("p1"), "switchboard": {"seq": True},
        }
