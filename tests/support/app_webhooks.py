"""A local application receiving Switchboard's webhooks: every request is checked with the client
library's :func:`~switchboard.client.webhooks.verify_webhook` (a bad one is answered 400 and kept in
``rejected``), then answered with the next status of ``script`` or else ``status``."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from aiohttp import web

from switchboard.client.webhooks import SIGNATURE_HEADER, WebhookRejected, verify_webhook
from tests.support.local_http import LocalHttpServer

__all__ = ["AppReceiver", "SECRET"]

SECRET = "app-webhook-secret-0123456789abcdef"


class AppReceiver:
    def __init__(self, secret: str = SECRET) -> None:
        self.secret = secret
        #: Verified events answered 2xx, in arrival order (repeats included).
        self.accepted: list[dict[str, Any]] = []
        #: Why requests were refused (bad or stale signatures).
        self.rejected: list[str] = []
        #: The status of every verified request, in order.
        self.answers: list[int] = []
        #: Statuses to answer next, then ``status``.
        self.script: deque[int] = deque()
        self.status = 200
        #: While set: requests wait for it (``parked`` counts them), then are answered with its result.
        self._gate: asyncio.Future[int] | None = None
        self.parked = 0
        self._server = LocalHttpServer("/switchboard-hooks", self._hook)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/switchboard-hooks"

    def config(self, **extra: Any) -> dict[str, Any]:
        """The ``webhooks`` settings pointing at this receiver (small backoffs, for tests)."""
        return {"endpoints": [{"name": "app", "url": self.url, "secret": self.secret}], "attempts": 3,
                "backoff_initial": 0.02, "backoff_max": 0.05, "backoff_jitter": 0.0, **extra}

    def of_room(self, room: str) -> list[dict[str, Any]]:
        return [event for event in self.accepted if event["room"] == room]

    def distinct(self, room: str) -> list[dict[str, Any]]:
        """The room's events, each once (the first copy), in arrival order."""
        seen: set[str] = set()
        out = []
        for event in self.of_room(room):
            if event["id"] not in seen:
                seen.add(event["id"])
                out.append(event)
        return out

    def check_order(self, room: str) -> None:
        """Each event of the room arrived after every lower seq, and a repeat is an exact copy."""
        first: dict[str, dict[str, Any]] = {}
        highest = 0
        for event in self.of_room(room):
            if event["id"] in first:
                assert event == first[event["id"]], (event, first[event["id"]])
                continue
            assert event["seq"] == highest + 1, f"seq {event['seq']} after {highest}: {self.of_room(room)}"
            first[event["id"]] = event
            highest = event["seq"]

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            event = verify_webhook(body, request.headers.get(SIGNATURE_HEADER), self.secret)
        except WebhookRejected as exc:
            self.rejected.append(str(exc))
            return web.Response(status=400, text=str(exc))
        assert request.headers["Switchboard-Event-Id"] == event["id"]
        assert request.headers["Switchboard-Event"] == event["type"]
        gate = self._gate
        if gate is not None:
            self.parked += 1
            status = await asyncio.shield(gate)
        else:
            status = self.script.popleft() if self.script else self.status
        self.answers.append(status)
        if 200 <= status < 300:
            self.accepted.append(event)
        return web.Response(status=status)

    def hold(self) -> None:
        """Park every request from now on (its sender waits for an answer) until :meth:`release`."""
        self._gate = asyncio.get_running_loop().create_future()

    def release(self, status: int = 503, *, hold_on: bool = False) -> None:
        """Answer the parked requests with ``status`` (2xx: accepted); later ones are answered as
        usual, or parked again with ``hold_on``."""
        gate, self._gate = self._gate, None
        if gate is not None and not gate.done():
            gate.set_result(status)
        if hold_on:
            self.hold()

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        self.release()
        await self._server.stop()
