"""The reference load balancer in front of the portals: an HAProxy configuration generated from the
cluster's configuration (``switchboard haproxy-config``; docs/operations.md, *Load balancer in front
of the portals*).

Every portal gets a frontend at its public address (the ``via_host`` it puts in tokens, which is
what the OWT SDK reconnects to) whose backend is that portal first and its siblings of the same
ISP/region group as backups.  A portal comes from one of two sources, both turned into the same
:class:`PortalAddress` plan:

- the settings and command line of ``switchboard up --broker … --portals N`` (:func:`plan_from_settings`);
- the portals a running cluster knows, as ``switchboard admin workers --purpose portal --json``
  prints them (:func:`plan_from_workers`): each announces its own address (``hostname:port``), its
  public one (``via_host``) and its ISPs and regions.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from token_api.placement import public_address

from .config import ConfigError, LoadBalancerSettings, Settings

__all__ = ["PortalAddress", "plan_from_settings", "plan_from_workers", "via_host_of", "render_haproxy",
           "run_haproxy_config"]

#: ``host:port`` with a host name, IPv4 address or bracketed IPv6 address: nothing HAProxy's
#: configuration syntax would read as more than one word (worker infos come from the network).
_ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*|\[[0-9A-Fa-f:.]+\]):(?P<port>[0-9]{1,5})$")
_UNSPECIFIED = frozenset({"", "0.0.0.0", "::", "[::]"})


@dataclass(frozen=True, slots=True)
class PortalAddress:
    """One portal as the load balancer sees it."""

    #: ``host:port`` HAProxy connects to (the portal's own listener).
    server: str
    #: ``host:port`` clients use (in tokens): the frontend binds its port.
    public: str
    #: TLS between the client and the load balancer.
    secure: bool
    isps: frozenset[str]
    regions: frozenset[str]

    @property
    def group(self) -> tuple[frozenset[str], frozenset[str]]:
        """Portals with the same ISPs and regions stand in for each other."""
        return self.isps, self.regions

    @property
    def public_port(self) -> int:
        return int(_split(self.public, "public address")[1])


def _split(address: str, what: str) -> tuple[str, str]:
    found = _ADDRESS.fullmatch(address)
    if found is None or not 0 < int(found["port"]) < 65536:
        raise ConfigError(f"{what} {address!r} is not host:port")
    return found["host"], found["port"]


def _checked(portal: PortalAddress) -> PortalAddress:
    _split(portal.server, "portal address")
    _split(portal.public, "public address")
    return portal


def via_host_of(settings: Settings, index: int) -> str:
    """The ``via_host`` portal ``index`` (from 0) of ``switchboard up --broker`` announces: its
    frontend on the load balancer, or ``""`` when no load balancer is configured."""
    lb = settings.load_balancer
    return f"{lb.public_host}:{lb.first_port + index}" if lb.public_host else ""


def plan_from_settings(settings: Settings, portals: int) -> list[PortalAddress]:
    """The portals ``switchboard up --broker --portals N`` starts with these settings (portal N on
    ``portal.port + N - 1``, its frontend on ``load_balancer.first_port + N - 1``): one group."""
    if not settings.load_balancer.public_host:
        raise ConfigError("load_balancer.public_host is empty: set it to the host name clients reach "
                          "the load balancer at (SWITCHBOARD_LOAD_BALANCER__PUBLIC_HOST)")
    if portals < 1:
        raise ConfigError("--portals must be at least 1")
    portal = settings.portal
    host = portal.hostname or ("127.0.0.1" if portal.host in _UNSPECIFIED else portal.host)
    return [
        _checked(PortalAddress(server=f"{host}:{portal.port + i}", public=via_host_of(settings, i),
                               secure=portal.secure, isps=frozenset(portal.isps), regions=frozenset(portal.regions)))
        for i in range(portals)
    ]


def plan_from_workers(workers: Iterable[dict[str, Any]]) -> list[PortalAddress]:
    """The portals of a running cluster (``get_workers`` records), ordered by public address."""
    plan: list[PortalAddress] = []
    for worker in workers:
        if worker.get("purpose", "portal") != "portal":
            continue
        info = worker.get("info") or {}
        name = worker.get("id", "?")
        if not str(info.get("via_host") or "").strip():
            raise ConfigError(f"portal {name} announces no via_host: start it with --via-host at its "
                              "frontend on the load balancer")
        try:
            public, secure = public_address(info)
        except ValueError as exc:
            raise ConfigError(f"portal {name}: {exc}") from None
        capacity = info.get("capacity") or {}
        plan.append(_checked(PortalAddress(
            server=f"{info.get('hostname')}:{info.get('port')}", public=public, secure=secure,
            isps=frozenset(str(i) for i in capacity.get("isps") or ()),
            regions=frozenset(str(r) for r in capacity.get("regions") or ()),
        )))
    return sorted(plan, key=lambda p: (p.public_port, p.public))


def _ms(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


def _siblings(plan: Sequence[PortalAddress], index: int) -> list[int]:
    """Indexes of the portals standing in for ``plan[index]``: its group, starting after it."""
    own = plan[index]
    order = list(range(index + 1, len(plan))) + list(range(index))
    return [i for i in order if plan[i].group == own.group]


def render_haproxy(plan: Sequence[PortalAddress], settings: Settings, *, source: str = "") -> str:
    """The HAProxy configuration for ``plan``; raises :class:`ConfigError` for a plan HAProxy could
    not serve (no portal, two portals on one frontend port, TLS without a certificate, an HTTP
    timeout shorter than the Engine.IO heartbeat)."""
    lb: LoadBalancerSettings = settings.load_balancer
    if not plan:
        raise ConfigError("no portal to balance")
    ports = [p.public_port for p in plan]
    if len(set(ports)) != len(ports):
        raise ConfigError(f"two portals share a public port: {sorted(ports)}")
    if any(p.secure for p in plan) and not lb.certificate:
        raise ConfigError("a portal declares secure: set load_balancer.certificate (a PEM file) for TLS")
    for name, value in (("certificate", lb.certificate), ("bind_host", lb.bind_host)):
        if any(c.isspace() or c == "#" for c in value):
            raise ConfigError(f"load_balancer.{name} {value!r} holds a space or '#' (HAProxy would split it)")
    heartbeat = settings.portal.ping_interval + settings.portal.ping_timeout
    if lb.http_timeout <= heartbeat:
        raise ConfigError(f"load_balancer.http_timeout ({lb.http_timeout:g} s) must be more than the portal's "
                          f"ping_interval + ping_timeout ({heartbeat:g} s): a long poll waits that long")
    names = [f"portal-{p.public_port}" for p in plan]
    lines = [
        f"# Generated by `switchboard haproxy-config`{f' from {source}' if source else ''}: regenerate it, do not edit it.",
        "# One frontend per portal at its public address; the portal first, its ISP/region siblings as backups.",
        "global",
        f"    maxconn {lb.max_connections}",
        "",
        "defaults",
        "    mode http",
        "    option forwardfor",
        "    option redispatch",
        f"    retries {lb.retries}",
        f"    timeout connect {_ms(lb.connect_timeout)}",
        f"    timeout client {_ms(lb.http_timeout)}",
        f"    timeout server {_ms(lb.http_timeout)}",
        f"    timeout tunnel {_ms(lb.tunnel_timeout)}",
        f"    default-server inter {_ms(lb.check_interval)} fall {lb.fall} rise {lb.rise} "
        "observe layer4 error-limit 1 on-error mark-down",
    ]
    for index, portal in enumerate(plan):
        tls = f" ssl crt {lb.certificate}" if portal.secure else ""
        host = "*" if lb.bind_host in ("", "0.0.0.0") else lb.bind_host
        lines += [
            "",
            f"frontend {names[index]}",
            f"    bind {host}:{portal.public_port}{tls}",
            f"    default_backend {names[index]}",
            "",
            f"backend {names[index]}",
            "    balance source",
            "    hash-type consistent",
            "    option allbackups",
            "    option httpchk",
            "    http-check send meth GET uri /healthz",
            "    http-check expect status 200",
            f"    stick-table type string len 64 size {lb.sticky_sessions} expire {_ms(lb.sticky_expire)}",
            "    stick on url_param(sid)",
            f"    server {names[index]} {portal.server} check",
        ]
        lines += [f"    server {names[i]} {plan[i].server} check backup" for i in _siblings(plan, index)]
    return "\n".join(lines) + "\n"


def run_haproxy_config(settings: Settings, *, portals: int, workers_file: str | None, output: str | None) -> int:
    """``switchboard haproxy-config``: print (or write to ``output``) the configuration for the
    portals of ``switchboard up --broker --portals N``, or for those listed in ``workers_file``
    (``-``: standard input) as ``switchboard admin workers --purpose portal --json`` prints them."""
    try:
        if workers_file is not None:
            raw = sys.stdin.read() if workers_file == "-" else _read(workers_file)
            try:
                workers = json.loads(raw)
            except ValueError as exc:
                raise ConfigError(f"{workers_file} is not JSON: {exc}") from None
            if not isinstance(workers, list):
                raise ConfigError(f"{workers_file} is not a list of workers")
            text = render_haproxy(plan_from_workers(workers), settings, source="the cluster's portals")
        else:
            text = render_haproxy(plan_from_settings(settings, portals), settings,
                                  source=f"the settings of `switchboard up --broker --portals {portals}`")
    except ConfigError as exc:
        print(f"switchboard haproxy-config: {exc}", file=sys.stderr)
        return 2
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
