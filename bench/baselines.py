"""The bare baseline server: python-socketio on aiohttp under uvloop, one acked ``echo`` event.

It is what the reference measured (Part B1/B4 of libraries-and-baselines.md), run the way our server
runs (uvloop, websocket clients): the ``relay`` scenario compares our CPU per relayed message with
its CPU per ``echo`` ack, and ``login`` compares our login cycle with a bare connect + disconnect on
it.  Run ``python -m bench.baselines --port N``; it prints ``READY <port>`` when it listens.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any

import socketio
from aiohttp import web

__all__ = ["main"]


def make_app() -> web.Application:
    sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*", logger=False, engineio_logger=False)
    app = web.Application()
    sio.attach(app)

    @sio.event  # type: ignore[untyped-decorator]  # python-socketio ships no types
    async def echo(sid: str, data: Any) -> Any:
        return data

    app["sio"] = sio
    return app


async def _serve(port: int) -> None:
    app = make_app()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"READY {bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await app["sio"].shutdown()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.baselines", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    from bench.proc import raise_fd_limit

    raise_fd_limit()
    import uvloop

    uvloop.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
