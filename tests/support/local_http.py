"""A small HTTP server on a free loopback port for the tests' receivers (webhooks, alerts)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

__all__ = ["LocalHttpServer"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LocalHttpServer:
    """Serves ``POST path`` with ``handler`` on ``127.0.0.1`` (a free port, :attr:`port`)."""

    def __init__(self, path: str, handler: Handler) -> None:
        self._path = path
        self._handler = handler
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(self._path, self._handler)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
