"""``switchboard`` — run the embedded server, one role of a cluster, a local cluster, or admin commands.

    switchboard up                         embedded: everything in one process
    switchboard up --broker URL --portals N --controllers M [--managers K] [--token-apis T]
                                           a local cluster of processes on RabbitMQ, with a watchdog
    switchboard cluster-manager|token-api|portal|controller --broker URL
                                           one role in this process (cluster mode)
    switchboard admin workers|worker|tasks|drain|undrain|status …
                                           the cluster admin RPC
    switchboard admin rooms|participants|kick …
                                           rooms and participants (the token API's management API)
    switchboard haproxy-config [--portals N | --workers FILE]
                                           the reference load balancer's configuration (HAProxy)
    switchboard broker                     a throwaway local RabbitMQ node for trials; prints its URL
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import signal
import sys
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

from yarl import URL

from eventlog import configure_logging, log_loop_exceptions

from .config import ConfigError, Settings, load_settings
from .eventlogs import WiringLog

__all__ = ["main"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="TOML settings file")
    parser.add_argument("--broker", metavar="URL", help="RabbitMQ URL (amqp://…), or the URLs of a RabbitMQ cluster's nodes, comma-separated: cluster mode")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-json", action="store_true", help="one JSON object per log line")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="switchboard", description="Conference signaling server (OWT-compatible).")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the server (embedded by default)")
    _common(up)
    up.add_argument("--host", help="address to bind (default 127.0.0.1)")
    up.add_argument("--api-port", type=int, help="token API port (default 3000)")
    up.add_argument("--portal-port", type=int, help="portal port (default 8080; cluster mode: the first of N)")
    up.add_argument("--portals", type=int, default=None, help="cluster mode: portal processes (default 1)")
    up.add_argument("--controllers", type=int, default=None, help="cluster mode: controller processes (default 1)")
    up.add_argument("--managers", type=int, default=None,
                    help="cluster mode: cluster-manager processes (one active, the others hot standbys; default 2)")
    up.add_argument("--token-apis", type=int, default=None,
                    help="cluster mode: token API processes on --api-port, +1, … (default 2 when the room "
                         "store is PostgreSQL, else 1; more than 1 needs token_api.store.kind = \"postgres\")")

    for role in ("cluster-manager", "token-api", "portal", "controller"):
        p = sub.add_parser(role, help=f"run the {role} role alone (cluster mode)")
        _common(p)
        if role in ("token-api", "portal"):
            p.add_argument("--host", help="address to bind")
            p.add_argument("--port", type=int, help="port to bind")
        else:
            p.add_argument("--observe-port", type=int,
                           help="port of /metrics, /healthz and /readyz on the observe host (default: none)")
        if role == "portal":
            p.add_argument("--hostname", help="public hostname clients use")
            p.add_argument("--via-host", help="public address override (as OWT's via_host)")
            p.add_argument("--isp", action="append", default=[], help="ISP served (repeatable)")
            p.add_argument("--region", action="append", default=[], help="region served (repeatable)")

    lb = sub.add_parser("haproxy-config", help="print the HAProxy configuration for the portals (docs/operations.md)")
    _common(lb)
    lb.add_argument("--host", help="address the portals bind, as for `switchboard up` (default 127.0.0.1)")
    lb.add_argument("--portal-port", type=int, help="port of the first portal, as for `switchboard up`")
    lb.add_argument("--portals", type=int, default=1, help="portal processes of `switchboard up --broker`")
    lb.add_argument("--workers", metavar="FILE",
                    help="instead: the portals of a running cluster, as `switchboard admin workers --purpose "
                         "portal --json` prints them ('-': standard input)")
    lb.add_argument("--output", "-o", metavar="FILE", help="write the configuration here (default: standard output)")

    broker = sub.add_parser("broker", help="run a throwaway local RabbitMQ node for trials and print its URL")
    broker.add_argument("--start-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="give up when the node does not listen within this long (default 60)")

    admin = sub.add_parser("admin", help="cluster admin commands (see `switchboard admin -h`)", add_help=False)
    admin.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}

    def put(section: str, key: str, value: Any) -> None:
        if value not in (None, []):
            out.setdefault(section, {})[key] = value

    put("rpc", "broker_url", getattr(args, "broker", None))
    put("log", "level", getattr(args, "log_level", None))
    if getattr(args, "log_json", False):
        put("log", "json", True)
    if args.command in ("up", "haproxy-config"):
        put("token_api", "host", args.host)
        put("portal", "host", args.host)
        put("token_api", "port", getattr(args, "api_port", None))
        put("portal", "port", args.portal_port)
    elif args.command in ("token-api", "portal"):
        section = args.command.replace("-", "_")
        put(section, "host", args.host)
        put(section, "port", args.port)
    elif args.command in ("cluster-manager", "controller") and args.observe_port is not None:
        out.setdefault(args.command.replace("-", "_"), {})["observe"] = {"port": args.observe_port}
    if args.command == "portal":
        put("portal", "hostname", args.hostname)
        put("portal", "via_host", args.via_host)
        put("portal", "isps", args.isp)
        put("portal", "regions", args.region)
    return out


def _run(coro_factory: Callable[[], Awaitable[int]]) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro_factory())  # type: ignore[arg-type]
    return uvloop.run(coro_factory())  # type: ignore[arg-type]


async def _wait_for_signal(finished: asyncio.Event | None = None) -> None:
    """Until SIGINT or SIGTERM, or until ``finished`` is set (a drained controller with no room left)."""
    stop = finished or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


def _freeze_startup_heap() -> None:
    """Once the server is up: what startup made (modules, settings, the servers' objects: some 70,000
    of them in the embedded server) goes to the cyclic collector's permanent generation, so that a
    full collection no longer walks it: one took ~85 ms, a pause of every socket, and came back every
    few seconds under the relay benchmark (~9 ms with the startup heap frozen)."""
    gc.collect()
    gc.freeze()


async def _serve_embedded(settings: Settings) -> int:
    from .wiring import EmbeddedCluster

    from .welcome import print_welcome

    log_loop_exceptions(asyncio.get_running_loop())

    cluster = EmbeddedCluster(settings)
    await cluster.start()
    _freeze_startup_heap()
    try:
        print_welcome(cluster.keys, api_port=cluster.token_api.port, portal_port=cluster.portal.port,
                      title="switchboard (embedded) is up:")
        await _wait_for_signal()
    finally:
        await cluster.stop()
    return 0


async def _serve_role(role: str, settings: Settings) -> int:
    """Run one role until a signal; whatever fails on the way, what was started is stopped (the
    component, then its transport)."""
    from alerts.observe import register_alert_metrics

    from .wiring import build_alerts, build_observer, build_role, role_transport

    log_loop_exceptions(asyncio.get_running_loop())
    async with AsyncExitStack() as running:
        transport = role_transport(role, settings)
        running.push_async_callback(transport.close)
        component = build_role(role, settings, transport)  # refuses missing or weak keys before connecting
        observer = build_observer(role, settings, component)
        if observer is not None:
            # Up first: /healthz answers (and /readyz says why not ready) while the component starts.
            await observer.start()
            running.push_async_callback(observer.stop)
        await transport.start()
        await component.start()
        running.push_async_callback(component.stop)
        if role == "cluster-manager":
            # Every manager process serves the cluster's alert service; the broker lets one at a time.
            alerts = build_alerts(settings, transport, component)
            if observer is not None:
                register_alert_metrics(observer.registry, alerts.tallies)
            await alerts.start()
            running.push_async_callback(alerts.stop)
        _freeze_startup_heap()
        observe = f"{observer.settings.host}:{observer.port}" if observer is not None else None
        # An event like any other (one JSON line with --log-json), the broker's password masked.
        WiringLog().info("role_up", role=role, port=getattr(component, "port", None), observe=observe,
                         broker=_masked(settings.rpc.broker_url))
        await _wait_for_signal(getattr(component, "finished", None))
    return 0


_CLUSTER_COUNTS = {"portals": 1, "controllers": 1, "managers": 2}


def _cluster_counts(args: argparse.Namespace, settings: Settings) -> None:
    """``--portals/--controllers/--managers/--token-apis`` need ``--broker`` (a local cluster); fill in
    their defaults.  :raises ConfigError: when given without a broker."""
    given = [f"--{name.replace('_', '-')}" for name in (*_CLUSTER_COUNTS, "token_apis")
             if getattr(args, name) is not None]
    if given and not settings.rpc.broker_url:
        verb = "needs" if len(given) == 1 else "need"
        raise ConfigError(f"{', '.join(given)} {verb} a broker (--broker URL; `switchboard broker` starts one "
                          "for trials): without one, `switchboard up` runs everything in one process")
    for name, default in _CLUSTER_COUNTS.items():
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be at least 1")
        setattr(args, name, default if value is None else value)


def _address_in_use(exc: OSError) -> bool:
    return exc.errno == errno.EADDRINUSE or "address already in use" in str(exc).lower()


def _masked(url: str) -> str:
    """``url`` without its password (each URL of a cluster's comma-separated list)."""
    if "," in url:
        return ",".join(_masked(part.strip()) for part in url.split(",") if part.strip())
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else url


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["admin"]:
        # Handed over whole: argparse's REMAINDER does not take a leading option (``admin -h``).
        from .admin import run_admin

        return run_admin(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "broker":
        from .devbroker_cli import run_broker

        return run_broker(start_timeout=args.start_timeout)
    try:
        settings = load_settings(args.config, overrides=_overrides(args))
    except ConfigError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    if args.command == "haproxy-config":
        from .loadbalancer import run_haproxy_config

        return run_haproxy_config(settings, portals=args.portals, workers_file=args.workers, output=args.output)
    configure_logging(settings.log.level, json_lines=settings.log.json)
    try:
        if args.command == "up":
            _cluster_counts(args, settings)
            if settings.rpc.broker_url:
                from .supervisor import run_local_cluster

                return run_local_cluster(args, settings)
            return _run(lambda: _serve_embedded(settings))
        return _run(lambda: _serve_role(args.command, settings))
    except ConfigError as exc:
        print(f"switchboard {args.command}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if not _address_in_use(exc):
            raise
        print(f"switchboard {args.command}: cannot listen, the address is in use ({exc.strerror or exc}): "
              "stop what holds it or choose other ports", file=sys.stderr)
        return 2
