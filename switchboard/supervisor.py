"""``switchboard up --broker URL``: a local cluster of role processes, kept alive by a watchdog.

Nothing starts until every port the children bind is free and a broker answers at ``URL``
(:mod:`switchboard.brokerwait`, bounded by ``local_cluster.broker_wait``): a failure is one line.
Each role runs as ``python -m switchboard ROLE --broker URL`` in its own process.  A child that
dies is restarted after a back-off (doubling to 10 s while it keeps dying, reset once it has lived
a minute); Ctrl-C or SIGTERM stops every child cleanly (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

from .admin import _redact
from .brokerwait import BrokerUnreachable, wait_for_broker
from .config import ConfigError, Settings
from .eventlogs import SupervisorLog
from .keys import EmbeddedKeys, embedded_keys
from .welcome import print_welcome

__all__ = ["run_local_cluster", "token_api_count", "Child"]

log = SupervisorLog()

_STOP_GRACE = 10.0
_MAX_BACKOFF = 10.0
_HEALTHY_AFTER = 60.0


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff: float = 1.0
    restart_at: float = 0.0
    restarts: int = field(default=0)

    env: dict[str, str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, start_new_session=True, env=self.env)
        self.started_at = time.monotonic()
        log.info("child_started", child=self.name, pid=self.proc.pid)

    def check(self, now: float) -> None:
        """Restart the child if it died and its back-off has passed."""
        if self.proc is None:
            if now >= self.restart_at:
                self.restarts += 1
                self.start()
            return
        code = self.proc.poll()
        if code is None:
            if now - self.started_at > _HEALTHY_AFTER:
                self.backoff = 1.0
            return
        log.warning("child_exited", child=self.name, code=code, restart_in=self.backoff)
        self.proc = None
        self.restart_at = now + self.backoff
        self.backoff = min(self.backoff * 2, _MAX_BACKOFF)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait_or_kill(self, deadline: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _key_environment(keys: EmbeddedKeys) -> dict[str, str]:
    """The keys the children run with, passed in their environment (readable by this user only)."""
    settings = keys.settings
    return {
        "SWITCHBOARD_KEYS__KEYS": json.dumps(settings.keys.keys),
        "SWITCHBOARD_KEYS__ADMIN_KEYS": json.dumps(settings.keys.admin_keys),
        "SWITCHBOARD_TOKEN_API__SERVICE_KEYS": json.dumps(settings.token_api.service_keys),
    }


def _shared_store(settings: Settings) -> bool:
    store = settings.token_api.store
    return store.kind == "postgres" and bool(store.dsn)


def token_api_count(requested: int | None, settings: Settings) -> int:
    """How many token API processes to run: ``requested`` (``--token-apis``), else 2 on a PostgreSQL
    room store and 1 without one.  Several need PostgreSQL: a local cluster rehearses one whose token
    APIs run on several machines, where a SQLite file cannot be shared.

    :raises ConfigError: for fewer than 1, or more than 1 without a PostgreSQL store.
    """
    if requested is None:
        return 2 if _shared_store(settings) else 1
    if requested < 1:
        raise ConfigError("--token-apis must be at least 1")
    if requested > 1 and not _shared_store(settings):
        raise ConfigError(
            f"--token-apis {requested} needs a room store they share: set token_api.store.kind = \"postgres\" "
            "and token_api.store.dsn (docs/token-api.md, Room store), or run one token API"
        )
    return requested


def _via_host(settings: Settings, index: int) -> list[str]:
    """Behind the load balancer (``load_balancer.public_host``), portal ``index`` announces its
    frontend there: what ``switchboard haproxy-config --portals N`` generates."""
    from .loadbalancer import via_host_of

    via_host = via_host_of(settings, index)
    return ["--via-host", via_host] if via_host else []


def _observe_port(first: int, index: int) -> list[str]:
    """Process ``index`` of a role whose ``observe.port`` is set serves health and metrics on
    ``port + index`` (none when it is 0)."""
    return ["--observe-port", str(first + index)] if first else []


def _children(args: argparse.Namespace, settings: Settings, env: dict[str, str]) -> list[Child]:
    base = [sys.executable, "-m", "switchboard"]
    common = ["--broker", settings.rpc.broker_url]
    if args.config:
        common += ["--config", args.config]
    host = ["--host", args.host] if args.host else []
    children = [
        Child(f"cluster-manager-{i + 1}", base + ["cluster-manager"] + common
              + _observe_port(settings.cluster_manager.observe.port, i))
        for i in range(args.managers)
    ]
    children += [
        Child("token-api" if i == 0 else f"token-api-{i + 1}",
              base + ["token-api"] + common + host + ["--port", str(settings.token_api.port + i)])
        for i in range(args.token_apis)
    ]
    children += [Child(f"controller-{i + 1}", base + ["controller"] + common
                       + _observe_port(settings.controller.observe.port, i)) for i in range(args.controllers)]
    children += [
        Child(f"portal-{i + 1}", base + ["portal"] + common + host + ["--port", str(settings.portal.port + i)]
              + _via_host(settings, i))
        for i in range(args.portals)
    ]
    for child in children:
        child.env = env
    return children


def _listening_ports(args: argparse.Namespace, settings: Settings) -> list[tuple[str, int]]:
    """Every ``(host, port)`` a child will bind."""
    observe: list[tuple[str, int]] = []
    for first, host, count in ((settings.cluster_manager.observe.port, settings.cluster_manager.observe.host,
                                args.managers),
                               (settings.controller.observe.port, settings.controller.observe.host, args.controllers)):
        if first:
            observe += [(host, first + i) for i in range(count)]
    return ([(settings.token_api.host, settings.token_api.port + i) for i in range(args.token_apis)]
            + [(settings.portal.host, settings.portal.port + i) for i in range(args.portals)] + observe)


def _in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def check_ports(args: argparse.Namespace, settings: Settings) -> None:
    """:raises ConfigError: naming the first port a child could not bind (one line, not a child's
    traceback per restart)."""
    for host, port in _listening_ports(args, settings):
        if _in_use(host, port):
            raise ConfigError(f"port {port} on {host or '0.0.0.0'} is in use: stop what holds it or choose "
                              "other ports (--api-port, --portal-port, observe.port)")


def run_local_cluster(args: argparse.Namespace, settings: Settings) -> int:
    """Run the children until Ctrl-C/SIGTERM.  Keys that are not configured come from the state
    file, as for an embedded server (:func:`switchboard.keys.embedded_keys`; raises ``ConfigError``).

    Nothing starts before a broker answers at ``rpc.broker_url`` (bounded by
    ``local_cluster.broker_wait``; raises ``ConfigError`` after it) and every port is free."""
    args.token_apis = token_api_count(args.token_apis, settings)
    keys = embedded_keys(settings)
    check_ports(args, settings)
    try:
        wait_for_broker(settings.rpc.broker_url, wait=settings.local_cluster.broker_wait,
                        interval=settings.local_cluster.broker_retry_interval,
                        say=lambda line: print(line, flush=True), shown_url=_redact(settings.rpc.broker_url))
    except BrokerUnreachable as exc:
        raise ConfigError(str(exc)) from None
    children = _children(args, settings, dict(os.environ, **_key_environment(keys)))
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for child in children:
        child.start()
    apis = f"{args.token_apis} token API(s) from port {settings.token_api.port}"
    if not _shared_store(settings):
        apis += " (one: a second needs a shared room store, token_api.store.kind = \"postgres\")"
    print(
        f"switchboard local cluster: {apis}, {args.portals} portal(s) from port {settings.portal.port}, "
        f"{args.controllers} controller(s), {args.managers} cluster manager(s), "
        f"broker {_redact(settings.rpc.broker_url)}.",
        flush=True,
    )
    print_welcome(keys, api_port=settings.token_api.port, portal_port=settings.portal.port)
    while not stopping:
        now = time.monotonic()
        for child in children:
            child.check(now)
        time.sleep(0.25)
    log.info("stopping_children", children=len(children))
    # Workers first, so that they can still say goodbye to the cluster manager, which goes last.
    workers = [c for c in children if c.name.startswith(("portal-", "controller-"))]
    for group in (workers, [c for c in children if c not in workers]):
        for child in group:
            child.terminate()
        deadline = time.monotonic() + _STOP_GRACE
        for child in group:
            child.wait_or_kill(deadline)
    return 0
