"""Drive ``tests/js/owt_flow.mjs`` (socket.io-client v4 speaking what the OWT JS SDK speaks) from pytest.

One Node process per harness; commands go as JSON lines on its stdin, results and events come back
as JSON lines on its stdout. Closing stdin ends the process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

__all__ = ["NodeHarness", "JS_DIR", "node_available"]

JS_DIR = Path(__file__).resolve().parents[1] / "js"
_SCRIPT = JS_DIR / "owt_flow.mjs"


def node_available() -> bool:
    """``node`` is on the PATH (socket.io-client is checked by :meth:`NodeHarness.start`)."""
    return shutil.which("node") is not None


class NodeHarness:
    """One Node OWT-style client; ``await command('join', token=...)`` etc."""

    def __init__(self, *, env: dict[str, str] | None = None) -> None:
        self._env = env
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)
        self._results: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._events: list[dict[str, Any]] = []
        self._arrived = asyncio.Event()
        #: Every event line, in order, never consumed (for assertions over the whole run).
        self.log: list[dict[str, Any]] = []
        self.stderr = b""

    async def start(self) -> None:
        if not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
            raise RuntimeError("socket.io-client is not installed: run `make node-deps`")
        self._proc = await asyncio.create_subprocess_exec(
            "node", str(_SCRIPT), cwd=JS_DIR, env=self._env,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self.next_event("ready", timeout=10)

    async def command(self, cmd: str, *, timeout: float = 15.0, **fields: Any) -> dict[str, Any]:
        """Send one command and wait for its result line."""
        assert self._proc is not None and self._proc.stdin is not None
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._results[ident] = future
        self._proc.stdin.write((json.dumps({"cmd": cmd, "id": ident, **fields}) + "\n").encode())
        await self._proc.stdin.drain()
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            self._results.pop(ident, None)

    async def next_event(self, name: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """Take the oldest not yet taken event line named ``name``."""
        async with asyncio.timeout(timeout):
            while True:
                for index, event in enumerate(self._events):
                    if event["event"] == name:
                        return self._events.pop(index)
                self._arrived.clear()
                await self._arrived.wait()

    async def texts_until(self, last: str, *, timeout: float = 30.0) -> list[str]:
        """The messages of the texts not yet taken, up to the first ``last`` included."""
        got: list[str] = []
        while last not in got:
            got.append((await self.next_event("text", timeout=timeout))["data"]["message"])
        return got

    def lost_its_place(self) -> list[dict[str, Any]]:
        """What a client that kept its place never sees: a ``drop``, the server ending the
        connection, or a relogin refused."""
        return [e for e in self.log if e["event"] in ("drop", "serverdisconnected")
                or (e["event"] == "relogin" and not e.get("ok"))]

    def drain_events(self, name: str) -> list[dict[str, Any]]:
        """Take every event line named ``name`` that arrived and was not taken."""
        taken = [e for e in self._events if e["event"] == name]
        self._events = [e for e in self._events if e["event"] != name]
        return taken

    async def close(self) -> None:
        """Close stdin (the script disconnects and exits); kill it if it lingers."""
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        if self._reader is not None:
            await self._reader
        if proc.stderr is not None:
            self.stderr = await proc.stderr.read()

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for raw in self._proc.stdout:
            line = json.loads(raw)
            if "result" in line:
                future = self._results.get(line.get("id"))
                if future is not None and not future.done():
                    future.set_result(line)
                continue
            self.log.append(line)
            self._events.append(line)
            self._arrived.set()
