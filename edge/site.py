"""Serving an application through :class:`~edge.protocol.GuardedRequestHandler` connections.

aiohttp's ``TCPSite`` serves the runner's ``Server``, whose connections are plain
``RequestHandler``\\ s and which takes no handler class; :class:`GuardedSite` is a ``TCPSite`` whose
connections are guarded ones, still registered with (and shut down by) the runner's server.
"""

from __future__ import annotations

import asyncio

from aiohttp import hdrs, web

from .protocol import SERVER_NAME, Guard, GuardedRequestHandler

__all__ = ["GuardedSite", "name_server"]


class GuardedSite(web.BaseSite):
    """Like ``web.TCPSite(runner, host, port)``, with every connection guarded by ``guard``."""

    __slots__ = ("_host", "_port", "_guard", "_bound_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, guard: Guard, *, backlog: int = 128) -> None:
        super().__init__(runner, backlog=backlog)
        self._host = host
        self._port = port
        self._guard = guard
        self._bound_port: int | None = None

    @property
    def port(self) -> int:
        """The bound port once started (the real one for port 0)."""
        return self._bound_port if self._bound_port is not None else self._port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        if server is None:
            raise RuntimeError("the runner is not set up")
        loop = asyncio.get_running_loop()
        guard = self._guard

        def connection() -> GuardedRequestHandler:
            return GuardedRequestHandler(server, loop=loop, guard=guard, access_log=None)

        self._server = await loop.create_server(connection, self._host, self._port, backlog=self._backlog)
        sockets = self._server.sockets
        self._bound_port = int(sockets[0].getsockname()[1]) if sockets else self._port


async def name_server(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: ``Server`` names no versions (aiohttp would name Python's and its own)."""
    response.headers[hdrs.SERVER] = SERVER_NAME
