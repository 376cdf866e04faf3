"""A local webhook receiver for the alert tests: records every JSON body it is posted and answers
with the status the test sets (``receiver.status = 500``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

__all__ = ["WebhookReceiver"]


class WebhookReceiver:
    def __init__(self) -> None:
        #: Bodies answered 2xx, in arrival order.
        self.accepted: list[Any] = []
        #: Every request (accepted or not): its answer status.
        self.answers: list[int] = []
        self.status = 200
        self._runner: web.AppRunner | None = None
        self.port = 0

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
        app = web.Application()
        app.router.add_post("/hooks/{rest:.*}", self._hook)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
