"""Load-generator processes stepped in lock-step by the benchmark (the parent).

The parent starts N worker processes (``python -m bench.loadgen module:function``), each running
``async def function(config, control) -> dict`` under uvloop with a raised open-file limit.  A
worker calls ``await control.report({...})`` to say where it is (e.g. "logged in") and gets the
parent's next command back; its return value is its final report.  Lines are JSON, prefixed with
``@@`` on the worker's stdout (anything else a worker prints is passed through to stderr).

The measured window is given to workers as wall-clock times (``time.time()``, shared by all
processes of the machine): :func:`window` turns them into ``perf_counter`` values.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bench.proc import raise_fd_limit

__all__ = ["Workers", "Control", "window", "split"]

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PREFIX = "@@"


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """``items`` dealt into ``parts`` lists of nearly equal length (contiguous slices)."""
    parts = max(1, min(parts, len(items))) if items else 1
    size, extra = divmod(len(items), parts)
    out, at = [], 0
    for i in range(parts):
        n = size + (1 if i < extra else 0)
        out.append(list(items[at:at + n]))
        at += n
    return out


def window(command: dict[str, Any]) -> tuple[float, float]:
    """The command's ``t0``/``t1`` (wall clock) as ``perf_counter`` values."""
    offset = time.perf_counter() - time.time()
    return command["t0"] + offset, command["t1"] + offset


# -- parent side ----------------------------------------------------------------------------------

class Workers:
    """N worker processes running ``target`` (``"module:function"``), one config each."""

    def __init__(self, target: str, configs: Sequence[dict[str, Any]]) -> None:
        self.target = target
        self.configs = list(configs)
        self.procs: list[asyncio.subprocess.Process] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    async def start(self) -> None:
        raise_fd_limit()
        for config in self.configs:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.loadgen", self.target,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=_ROOT,
                limit=64 * 1024 * 1024,
            )
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(config).encode() + b"\n")
            await proc.stdin.drain()
            self.procs.append(proc)

    async def _line(self, proc: asyncio.subprocess.Process) -> dict[str, Any]:
        assert proc.stdout is not None
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                code = await proc.wait()
                raise RuntimeError(f"load generator {self.target} (pid {proc.pid}) exited with {code}")
            line = raw.decode(errors="replace").rstrip("\n")
            if line.startswith(_PREFIX):
                return json.loads(line[len(_PREFIX):])  # type: ignore[no-any-return]
            print(line, file=sys.stderr)

    async def reports(self, timeout: float = 300.0) -> list[dict[str, Any]]:
        """The next report of every worker (in worker order)."""
        async with asyncio.timeout(timeout):
            return list(await asyncio.gather(*(self._line(p) for p in self.procs)))

    async def send(self, command: dict[str, Any] | Sequence[dict[str, Any]]) -> None:
        """One command to every worker (or one per worker from a sequence)."""
        commands = [command] * len(self.procs) if isinstance(command, dict) else list(command)
        for proc, cmd in zip(self.procs, commands, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(cmd).encode() + b"\n")
            await proc.stdin.drain()

    async def step(self, command: dict[str, Any] | Sequence[dict[str, Any]], timeout: float = 300.0) -> list[dict[str, Any]]:
        await self.send(command)
        return await self.reports(timeout)

    async def close(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                try:
                    proc.kill()
                except ProcessLookupError:
                    pass
            await proc.wait()
        self.procs.clear()

    async def __aenter__(self) -> Workers:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


# -- worker side ----------------------------------------------------------------------------------

class Control:
    """A worker's line to the parent."""

    def __init__(self, config: dict[str, Any], out: Any) -> None:
        self.config = config
        self._out = out

    def _write(self, obj: dict[str, Any]) -> None:
        self._out.write(_PREFIX + json.dumps(obj) + "\n")
        self._out.flush()

    async def report(self, obj: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a report and wait for the parent's next command."""
        self._write(obj or {})
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            raise SystemExit(0)  # the parent went away
        return json.loads(line)  # type: ignore[no-any-return]


def _worker(target: str) -> int:
    raise_fd_limit()
    module_name, _, func_name = target.partition(":")
    func: Callable[[dict[str, Any], Control], Awaitable[dict[str, Any]]] = getattr(
        importlib.import_module(module_name), func_name
    )
    config = json.loads(sys.stdin.readline())
    # Keep the report channel clean: stray prints go to stderr.
    out = sys.stdout
    sys.stdout = sys.stderr
    control = Control(config, out)

    async def run() -> None:
        control._write(await func(config, control))

    try:
        import uvloop
    except ImportError:
        asyncio.run(run())
    else:
        uvloop.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1]))
