"""A cluster of real role processes on RabbitMQ (`python -m switchboard ROLE --broker …`)."""

from __future__ import annotations

import asyncio
import os
import json
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["ProcessCluster", "free_port"]

_ROOT = Path(__file__).resolve().parents[2]


# Below Linux's ephemeral range (32768–60999), so outgoing connections never take a port a server
# of the test is about to bind.
_PORT_RANGE = (20000, 32000)


def _worker_ports() -> range:
    """This test process's share of :data:`_PORT_RANGE`: pytest-xdist's workers get disjoint shares,
    so two workers never hand out the same port (a port picked but not bound yet, or freed while a
    killed role waits to be restarted on it, looks free to the other worker)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    low, high = _PORT_RANGE
    share = (high - low) // max(count, 1)
    start = low + share * (index % max(count, 1))
    return range(start, start + share)


class _PortCursor:
    """Hands out this process's ports in turn from a random start, so a port comes back only after
    the whole share has been handed out once.  (Drawn at random, two roles of one cluster, picked
    before either binds, could get the same port: a role then failed to start.)"""

    def __init__(self, ports: range) -> None:
        self.ports = ports
        self.next = random.randrange(len(ports))

    def take(self, consecutive: int) -> int:
        for _ in range(len(self.ports)):
            if self.next + consecutive > len(self.ports):
                self.next = 0
            first = self.ports[self.next]
            self.next += consecutive
            if all(bindable(first + i) for i in range(consecutive)):
                return first
        raise RuntimeError(f"no {consecutive} free ports in a row in {self.ports}")


_cursor: _PortCursor | None = None


def bindable(port: int) -> bool:
    """Whether ``port`` on loopback can be bound now (nothing listens on it)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(consecutive: int = 1) -> int:
    """A free port (the first of ``consecutive`` free ones in a row) for a server to bind."""
    global _cursor
    if _cursor is None:
        _cursor = _PortCursor(_worker_ports())
    return _cursor.take(consecutive)


@dataclass
class RoleProcess:
    name: str
    argv: list[str]
    log: Path
    port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    #: Port of ``/metrics``, ``/healthz`` and ``/readyz`` (cluster managers and controllers).
    observe_port: int | None = None

    def start(self, env: dict[str, str]) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=_ROOT)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        """SIGSTOP: the process is frozen (a partition as its peers see it) until :meth:`cont`."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGSTOP)

    def cont(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # a paused process would not see the SIGTERM
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class ProcessCluster:
    """Cluster managers, token APIs, N controllers and M portals, each its own process.

    Names (RPC services, event exchange) are unique per cluster so clusters on one broker never mix.
    """

    broker_url: str
    workdir: Path
    portals: int = 2
    controllers: int = 2
    #: Cluster-manager processes: ``cluster-manager``, then ``cluster-manager-2``, … (hot standbys).
    managers: int = 1
    #: Token API processes: ``token-api``, then ``token-api-2``, … (each on its own port); more than
    #: one needs ``postgres_dsn``, the room store they share.
    token_apis: int = 1
    #: A PostgreSQL database for the token APIs' room store (``tests/conftest.py``'s ``postgres_dsn``);
    #: empty: each token API keeps rooms in the cluster's SQLite file.
    postgres_dsn: str = ""
    #: Fake media agents (:mod:`tests.support.media_agent`), named ``agent-N``.
    media_agents: int = 0
    env_overrides: dict[str, str] = field(default_factory=dict)
    #: ISP of each portal (default: portal-N serves ``isp-N``, so a token's preference picks it).
    portal_isps: list[str] | None = None
    #: ``via_host`` of each portal (its public address behind a load balancer); default: none.
    portal_via_hosts: list[str] | None = None
    roles: dict[str, RoleProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.signing_key, self.service_key, self.admin_key = (secrets.token_urlsafe(32) for _ in range(3))
        self.env = dict(os.environ)
        self.env.update(
            {
                "PYTHONPATH": str(_ROOT),
                "SWITCHBOARD_CLUSTER_MANAGER__NAME": f"cluster-{tag}",
                "SWITCHBOARD_WORKER__CLUSTER_NAME": f"cluster-{tag}",
                "SWITCHBOARD_RPC__EVENTS_EXCHANGE": f"events-{tag}",
                "SWITCHBOARD_CLUSTER_MANAGER__INITIAL_TIME": "0.5",
                "SWITCHBOARD_CLUSTER_MANAGER__CHECK_ALIVE_INTERVAL": "0.5",
                "SWITCHBOARD_WORKER__KEEPALIVE_INTERVAL": "0.3",
                "SWITCHBOARD_WORKER__JOIN_INTERVAL": "0.3",
                "SWITCHBOARD_TOKEN_API__ROOMS_DB": str(self.workdir / "rooms.sqlite3"),
                "SWITCHBOARD_LOG__LEVEL": "info",
                "SWITCHBOARD_KEYS__KEYS": json.dumps([self.signing_key]),
                "SWITCHBOARD_KEYS__ADMIN_KEYS": json.dumps([self.admin_key]),
                "SWITCHBOARD_TOKEN_API__SERVICE_KEYS": json.dumps({"tests": self.service_key}),
            }
        )
        if self.postgres_dsn:
            self.env["SWITCHBOARD_TOKEN_API__STORE__KIND"] = "postgres"
            self.env["SWITCHBOARD_TOKEN_API__STORE__DSN"] = self.postgres_dsn
        elif self.token_apis > 1:
            raise ValueError("several token APIs need the room store they share: pass postgres_dsn")
        self.env.update(self.env_overrides)
        base = [sys.executable, "-m", "switchboard"]
        common = ["--broker", self.broker_url]
        api_ports = [free_port() for _ in range(self.token_apis)]
        self.api_port = api_ports[0]
        for i in range(self.managers):
            self._add("cluster-manager" if i == 0 else f"cluster-manager-{i + 1}",
                      base + ["cluster-manager"] + common, observe=True)
        for i, port in enumerate(api_ports):
            self._add("token-api" if i == 0 else f"token-api-{i + 1}",
                      base + ["token-api"] + common + ["--host", "127.0.0.1", "--port", str(port)], port)
        for i in range(self.controllers):
            self._add(f"controller-{i + 1}", base + ["controller"] + common, observe=True)
        for i in range(self.media_agents):
            self._add(f"agent-{i + 1}", [sys.executable, "-m", "tests.support.media_agent"] + common)
        for i in range(self.portals):
            port = free_port()
            isp = self.portal_isps[i] if self.portal_isps else f"isp-{i + 1}"
            via = ["--via-host", self.portal_via_hosts[i]] if self.portal_via_hosts else []
            self._add(f"portal-{i + 1}", base + ["portal"] + common + ["--host", "127.0.0.1", "--port", str(port),
                                                                        "--hostname", "127.0.0.1", "--isp", isp] + via,
                      port)

    def _add(self, name: str, argv: list[str], port: int | None = None, *, observe: bool = False) -> None:
        observe_port = free_port() if observe else None
        if observe_port is not None:
            argv = argv + ["--observe-port", str(observe_port)]
        self.roles[name] = RoleProcess(name, argv, self.workdir / f"{name}.log", port, observe_port=observe_port)

    def observe_url(self, name: str) -> str:
        """Where role process ``name`` (a cluster manager or a controller) serves ``/metrics``,
        ``/healthz`` and ``/readyz``."""
        port = self.roles[name].observe_port
        assert port is not None, f"{name} has no observability port"
        return f"http://127.0.0.1:{port}"

    @property
    def service_headers(self) -> dict[str, str]:
        """Headers that authenticate a token API call (``POST /token``, ``/v1/rooms*``)."""
        return {"X-Service-Key": self.service_key}

    @property
    def admin_headers(self) -> dict[str, str]:
        """Headers that authenticate an admin call (``POST /admin/rpc``)."""
        return {"Authorization": f"Bearer {self.admin_key}"}

    @property
    def api_url(self) -> str:
        """The first token API's URL."""
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def api_urls(self) -> list[str]:
        """Every token API's URL, ``token-api`` first."""
        return [f"http://127.0.0.1:{role.port}" for name, role in self.roles.items()
                if name == "token-api" or name.startswith("token-api-")]

    def _live_api_url(self) -> str:
        """The first token API whose process runs (admin calls go on when one was killed)."""
        for name, role in self.roles.items():
            if (name == "token-api" or name.startswith("token-api-")) and role.proc is not None \
                    and role.proc.poll() is None:
                return f"http://127.0.0.1:{role.port}"
        return self.api_url

    def portal_url(self, n: int) -> str:
        return f"http://127.0.0.1:{self.roles[f'portal-{n}'].port}"

    async def admin(self, method: str, **args: Any) -> Any:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{self._live_api_url()}/admin/rpc", json={"method": method, "args": args},
                                    headers=self.admin_headers) as resp:
                body = await resp.json()
        if "error" in body:
            raise RuntimeError(f"admin {method}: {body['error']}")
        return body["result"]

    async def start(self, timeout: float = 60.0) -> None:
        for role in self.roles.values():
            role.start(self.env)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            try:
                workers = await self.admin("get_workers")
                counts: dict[str, int] = {}
                for worker in workers:
                    counts[worker.get("purpose", "")] = counts.get(worker.get("purpose", ""), 0) + 1
                if (counts.get("portal", 0) >= self.portals and counts.get("conference", 0) >= self.controllers
                        and counts.get("webrtc", 0) >= self.media_agents):
                    if await self._all_apis_ready():
                        return
            except (aiohttp.ClientError, RuntimeError, OSError):
                pass
            for role in self.roles.values():
                if role.proc is not None and role.proc.poll() is not None:
                    raise RuntimeError(f"{role.name} exited: {role.log.read_text()[-3000:]}")
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("cluster not ready: " + self.logs_tail())
            await asyncio.sleep(0.2)

    async def _all_apis_ready(self) -> bool:
        async with aiohttp.ClientSession() as session:
            for url in self.api_urls:
                async with session.get(f"{url}/readyz") as resp:
                    if resp.status != 200:
                        return False
        return True

    def kill(self, name: str) -> None:
        self.roles[name].kill()

    async def holder_of(self, room: str) -> tuple[str, str]:
        """``(process name, worker id)`` of the controller holding ``room`` now."""
        for name in self.roles:
            if not name.startswith("controller-") or self.roles[name].proc is None:
                continue
            worker = await self.worker_id(name)
            if any(t["task"] == room for t in await self.admin("get_tasks", worker_id=worker)):
                return name, worker
        raise AssertionError(f"no controller holds {room}")

    async def worker_id(self, name: str) -> str:
        """The cluster worker id of role process ``name`` (a controller or a portal)."""
        role = self.roles[name]
        if role.port is not None:  # a portal: its worker info names its port
            for worker in await self.admin("get_workers", purpose="portal"):
                if worker["info"].get("port") == role.port:
                    return str(worker["id"])
            raise RuntimeError(f"{name} is not registered")
        # A controller logs its (random) worker id with every event.
        found = re.search(r'worker(?:=|": ")(conference-[0-9a-f]+@[^\s"]+)', role.log.read_text())
        if found is None:
            raise RuntimeError(f"no worker id in the log of {name}")
        return found.group(1)

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """Every ``event`` the roles logged, in time order, each with its ``ts`` (wall clock) and
        ``role``; needs JSON log lines (``SWITCHBOARD_LOG__JSON=true``)."""
        found = []
        for role in self.roles.values():
            for line in role.log.read_text().splitlines() if role.log.exists() else []:
                if line.startswith("{") and f'"event": "{event}"' in line:
                    found.append({**json.loads(line), "role": role.name})
        return sorted(found, key=lambda e: float(e["ts"]))

    def logs_tail(self, chars: int = 1500) -> str:
        return "\n".join(f"--- {r.name}\n{r.log.read_text()[-chars:]}" for r in self.roles.values() if r.log.exists())

    def stop(self) -> None:
        for role in reversed(list(self.roles.values())):
            role.stop()
