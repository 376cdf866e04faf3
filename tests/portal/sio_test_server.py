"""A python-socketio server on a real aiohttp server for the portal's socket tests: every Engine.IO
socket turned into the portal's in-place one at connect, as the portal does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import socketio
from aiohttp import web

from portal.eio_socket import in_place

__all__ = ["SioTestServer"]


class SioTestServer:
    """Serves ``sio`` on a free loopback port (``url`` once :meth:`start` returned); ``on_socket`` sees
    each Engine.IO socket right after it was made in place."""

    def __init__(self, sio: socketio.AsyncServer, on_socket: Callable[[Any], None] | None = None) -> None:
        self.sio = sio
        self.app = web.Application()
        sio.attach(self.app)
        self.runner = web.AppRunner(self.app)
        self.url = ""
        eio = sio.eio
        connect = eio.handlers["connect"]

        async def connected(eio_sid: str, environ: dict[str, Any]) -> Any:
            socket = eio.sockets[eio_sid]
            in_place(socket)
            if on_socket is not None:
                on_socket(socket)
            return await connect(eio_sid, environ)

        eio.on("connect", connected)

    async def start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def stop(self) -> None:
        await self.sio.shutdown()
        await self.runner.cleanup()
