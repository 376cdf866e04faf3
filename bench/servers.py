"""Starting the servers under test as subprocesses, so that their CPU and memory can be read alone.

- :func:`embedded` — ``python -m switchboard up`` (token API, cluster manager, controller and
  portal in one process);
- :func:`cluster` — ``python -m switchboard cluster-manager|token-api|portal|controller`` on a
  RabbitMQ broker, one process per role (several portals if asked);
- :func:`echo` — the bare python-socketio baseline (``bench/baselines.py``);
- :func:`broker` — the RabbitMQ broker of the cluster scenarios: ``--broker`` or a throwaway node.

Every server gets the settings the benchmarks need through ``SWITCHBOARD_*`` variables: loopback
only, warnings-only logs, a throwaway rooms database, and limits meant for real clients lifted
(the per-socket request rate limit of 50/s would throttle a load generator whose clients each send
hundreds of messages per second; load 1.0 at 10,000 participants would stop scheduling before the
capacity scenario's 10,000).  Output goes to a log file whose tail is shown when a start fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.proc import free_port, raise_fd_limit, tree

__all__ = ["Server", "embedded", "cluster", "echo", "Broker", "broker", "BENCH_SETTINGS", "SERVICE_KEY_ENV",
           "service_headers", "admin"]

_ROOT = Path(__file__).resolve().parent.parent

#: The service key of every benchmarked server: made once per run and kept in this process's
#: environment, so that load-generator processes started from it mint tokens with it too.
SERVICE_KEY_ENV = "SWITCHBOARD_BENCH_SERVICE_KEY"
os.environ.setdefault(SERVICE_KEY_ENV, secrets.token_urlsafe(32))

#: Settings every benchmarked switchboard process gets (``SWITCHBOARD_<SECTION>__<KEY>``).
BENCH_SETTINGS = {
    "KEYS__KEYS": json.dumps([secrets.token_urlsafe(32)]),
    "KEYS__ADMIN_KEYS": json.dumps([secrets.token_urlsafe(32)]),
    "TOKEN_API__SERVICE_KEYS": json.dumps({"bench": os.environ[SERVICE_KEY_ENV]}),
    "LOG__LEVEL": "warning",
    "PORTAL__RATE_LIMIT_PER_SECOND": "1000000",
    "PORTAL__RATE_LIMIT_BURST": "1000000",
    # every benchmark client comes from 127.0.0.1
    "PORTAL__CONNECTIONS_PER_ADDRESS_PER_SECOND": "1000000",
    "PORTAL__CONNECTIONS_PER_ADDRESS_BURST": "1000000",
    "TOKEN_API__MINTS_PER_ADDRESS_PER_SECOND": "1000000",
    "TOKEN_API__MINTS_PER_ADDRESS_BURST": "1000000",
    "PORTAL__MAX_PARTICIPANTS": "1000000",
    "CONTROLLER__CAPACITY": "1000000",
    "CLUSTER_MANAGER__INITIAL_TIME": "0",
}


def service_headers() -> dict[str, str]:
    """What authenticates ``POST /token`` at a benchmarked server (in this process or a child)."""
    return {"X-Service-Key": os.environ[SERVICE_KEY_ENV]}


@dataclass
class Server:
    """The processes of one server under test."""

    procs: dict[str, subprocess.Popen[bytes]]
    workdir: Path
    api_url: str = ""
    portal_urls: list[str] = field(default_factory=list)
    #: Roles whose CPU and memory are "the server's" (the baseline's one process; ours: all).
    measured: list[str] = field(default_factory=list)

    @property
    def portal_url(self) -> str:
        return self.portal_urls[0]

    def pid(self, role: str) -> int:
        return self.procs[role].pid

    @property
    def pids(self) -> list[int]:
        return [self.procs[r].pid for r in (self.measured or list(self.procs))]

    def check(self) -> None:
        for role, proc in self.procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{role} exited with {proc.returncode}:\n{self.log_tail(role)}")

    def log_tail(self, role: str, lines: int = 30) -> str:
        path = self.workdir / f"{role}.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in self.procs.values():
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _env(workdir: Path, extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # Each server its own rooms database and room journal: a journal left by an earlier run (or by
    # another run at the same time) would be adopted at start, rooms, held participants and all.
    own = {"TOKEN_API__ROOMS_DB": str(workdir / "rooms.sqlite3"), "JOURNAL__SQLITE__PATH": str(workdir / "journal.sqlite3"),
           "JOURNAL__FILE__PATH": str(workdir / "journal.d")}
    for key, value in {**BENCH_SETTINGS, **own, **(extra or {})}.items():
        env[f"SWITCHBOARD_{key}"] = value
    return env


def _spawn(workdir: Path, role: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    raise_fd_limit()  # children inherit it
    log = open(workdir / f"{role}.log", "wb")
    try:
        return subprocess.Popen([sys.executable, *args], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    finally:
        log.close()


async def admin(server: Server, method: str, **args: Any) -> Any:
    """One call of the cluster admin RPC (``POST /admin/rpc``) with the benches' admin key: its result."""
    key = json.loads(BENCH_SETTINGS["KEYS__ADMIN_KEYS"])[0]
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.api_url}/admin/rpc", json={"method": method, "args": args},
                                headers={"Authorization": f"Bearer {key}"}) as response:
            body = await response.json()
    if "error" in body:
        raise RuntimeError(f"admin {method}: {body['error']}")
    return body["result"]


async def _wait_http(server: Server, url: str, timeout: float, method: str = "GET", json: object = None) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            server.check()
            try:
                async with session.request(method, url, json=json, timeout=aiohttp.ClientTimeout(total=2),
                                           headers=service_headers()) as resp:
                    if resp.status == 200:
                        return
                    last = f"{resp.status} {(await resp.text())[:200]}"
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                last = repr(exc)
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout:g} s ({last})\n" +
                       "\n".join(f"--- {r}\n{server.log_tail(r)}" for r in server.procs))


async def _wait_ready(server: Server, timeout: float) -> None:
    """Up when the portals answer and the token API can mint a token (a portal is schedulable)."""
    for url in server.portal_urls:
        await _wait_http(server, f"{url}/healthz", timeout)
    await _wait_http(server, f"{server.api_url}/token", timeout, "POST",
                     {"room": "bench-warmup", "user": "warmup", "role": "presenter"})


async def embedded(extra_settings: dict[str, str] | None = None, timeout: float = 60.0,
                   tracemalloc_out: Path | None = None) -> Server:
    """``switchboard up`` (embedded mode) in a subprocess on free loopback ports.

    With ``tracemalloc_out`` the same server runs under ``bench/memtrace.py`` (SIGUSR1 dumps the heap there).
    """
    workdir = Path(tempfile.mkdtemp(prefix="sb-bench-"))
    api, portal = free_port(), free_port()
    env = _env(workdir, {"PORTAL__HOSTNAME": "127.0.0.1", **(extra_settings or {})})
    if tracemalloc_out is None:
        cmd = ["-m", "switchboard", "up", "--host", "127.0.0.1", "--api-port", str(api), "--portal-port", str(portal)]
    else:
        cmd = ["-m", "bench.memtrace", "--api-port", str(api), "--portal-port", str(portal), "--out", str(tracemalloc_out)]
    proc = _spawn(workdir, "embedded", cmd, env)
    server = Server({"embedded": proc}, workdir, f"http://127.0.0.1:{api}", [f"http://127.0.0.1:{portal}"])
    try:
        await _wait_ready(server, timeout)
    except BaseException:
        await server.close()
        raise
    return server


async def cluster(broker: str, portals: int = 1, extra_settings: dict[str, str] | None = None,
                  timeout: float = 60.0, controllers: int = 1) -> Server:
    """One process per role on ``broker``: cluster manager, token API, ``controllers`` controllers
    (``controller``, then ``controller1`` …), ``portals`` portals."""
    workdir = Path(tempfile.mkdtemp(prefix="sb-bench-"))
    env = _env(workdir, extra_settings)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    server = Server(procs, workdir)
    try:
        procs["cluster-manager"] = _spawn(workdir, "cluster-manager",
                                          ["-m", "switchboard", "cluster-manager", "--broker", broker], env)
        for i in range(controllers):
            name = "controller" if i == 0 else f"controller{i}"
            procs[name] = _spawn(workdir, name, ["-m", "switchboard", "controller", "--broker", broker], env)
        for i in range(portals):
            port = free_port()
            procs[f"portal{i}"] = _spawn(workdir, f"portal{i}", [
                "-m", "switchboard", "portal", "--broker", broker, "--host", "127.0.0.1", "--port", str(port),
                "--hostname", "127.0.0.1"], env)
            server.portal_urls.append(f"http://127.0.0.1:{port}")
        api = free_port()
        procs["token-api"] = _spawn(workdir, "token-api", [
            "-m", "switchboard", "token-api", "--broker", broker, "--host", "127.0.0.1", "--port", str(api)], env)
        server.api_url = f"http://127.0.0.1:{api}"
        await _wait_ready(server, timeout)
    except BaseException:
        await server.close()
        raise
    return server


async def echo(timeout: float = 30.0) -> Server:
    """The bare python-socketio echo server (``bench/baselines.py``)."""
    workdir = Path(tempfile.mkdtemp(prefix="sb-bench-"))
    port = free_port()
    proc = _spawn(workdir, "echo", ["-m", "bench.baselines", "--port", str(port)], _env(workdir, None))
    server = Server({"echo": proc}, workdir, "", [f"http://127.0.0.1:{port}"])
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            server.check()
            try:
                async with session.get(f"{server.portal_url}/socket.io/?EIO=4&transport=polling") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                await server.close()
                raise RuntimeError("echo baseline did not start:\n" + server.log_tail("echo"))
            await asyncio.sleep(0.05)
    return server


@dataclass(frozen=True)
class Broker:
    """A RabbitMQ broker's URL, and the pid of its Erlang VM when it is the throwaway node (for CPU accounting)."""

    url: str
    pid: int | None = None

    @property
    def pids(self) -> list[int]:
        """The throwaway node's process and its descendants (CPU accounting); none for a broker given by URL."""
        return tree(self.pid) if self.pid else []


@asynccontextmanager
async def broker(url: str = "", needed: bool = True) -> AsyncIterator[Broker]:
    """The broker at ``url``; with no ``url``, a throwaway RabbitMQ node started here and closed on the way out.

    With ``needed`` false (a run that uses no broker) and no ``url``, no node is started: the URL is empty.
    """
    if url or not needed:
        yield Broker(url)
        return
    from switchboard.devbroker import RabbitNode

    node = RabbitNode()
    await asyncio.to_thread(node.start)
    try:
        yield Broker(node.url, node.pid)
    finally:
        await asyncio.to_thread(node.close)
