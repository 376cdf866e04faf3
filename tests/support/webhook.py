"""A local webhook receiver for the alert tests: records every JSON body it is posted and answers
with the status the test sets (``receiver.status = 500``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.support.local_http import LocalHttpServer

__all__ = ["WebhookReceiver"]


class WebhookReceiver:
    def __init__(self) -> None:
        #: Bodies answered 2xx, in arrival order.
        self.accepted: list[Any] = []
        #: Every request (accepted or not): its answer status.
        self.answers: list[int] = []
        self.status = 200
        self._server = LocalHttpServer("/hooks/{rest:.*}", self._hook)

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/secret-token-part"

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.json()
        status = self.status
        self.answers.append(status)
        if 200 <= status < 300:
            self.accepted.append(body)
        return web.Response(status=status, text="ok" if status < 300 else "nope")

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop()
