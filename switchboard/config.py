"""One settings object with a section per component: defaults in code, then a TOML file, then
environment variables (``SWITCHBOARD_<SECTION>__<KEY>``, values parsed as JSON when they parse),
then command-line overrides.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec

from alerts.settings import AlertSettings
from webhooks.settings import WebhookSettings
from cluster_manager.settings import ClusterManagerSettings
from conference_controller.settings import ControllerSettings
from credentials import KeySettings
from journal.settings import FileJournalSettings
from journal.settings import JournalSettings as SqliteJournalSettings
from journal.settings import StreamJournalSettings
from portal.settings import PortalSettings
from rpc.settings import RpcSettings, WorkerSettings
from token_api.settings import TokenApiSettings

__all__ = ["Settings", "JournalSection", "LogSettings", "LoadBalancerSettings", "LocalClusterSettings", "load_settings", "ConfigError", "ENV_PREFIX"]

ENV_PREFIX = "SWITCHBOARD_"


_Positive = Annotated[float, msgspec.Meta(gt=0)]
_PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


class LogSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: ``debug`` | ``info`` | ``warning`` | ``error``.
    level: str = "info"
    #: One JSON object per line (otherwise ``key=value`` text).
    json: bool = False


class LoadBalancerSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The reference HAProxy in front of the portals (``switchboard haproxy-config``,
    #: docs/operations.md).  Public host name clients reach the load balancer at: when set, portal N
    #: of ``switchboard up --broker`` announces ``public_host:(first_port + N - 1)`` as its
    #: ``via_host``; empty: no load balancer, each portal announces itself.
    public_host: str = ""
    #: Frontend port of the first portal; portal N gets ``first_port + N - 1``.
    first_port: Annotated[int, msgspec.Meta(gt=0, lt=65536)] = 9080
    #: Address HAProxy binds its frontends to.
    bind_host: str = "127.0.0.1"
    #: Seconds between health checks of each portal (``GET /healthz``).
    check_interval: _Positive = 0.5
    #: Failed checks in a row before a portal is taken out (a refused connection takes it out at once).
    fall: _PositiveInt = 2
    #: Passed checks in a row before a portal taken out is put back.
    rise: _PositiveInt = 2
    #: Seconds HAProxy waits for a TCP connection to a portal.
    connect_timeout: _Positive = 2.0
    #: Connection attempts per request, at most (the last one at a sibling).
    retries: _PositiveInt = 3
    #: Seconds of client or portal silence on an HTTP request (a long poll); more than the portal's
    #: ``ping_interval + ping_timeout``.
    http_timeout: _Positive = 60.0
    #: Seconds of silence on an established websocket before HAProxy closes it.
    tunnel_timeout: _Positive = 3600.0
    #: Engine.IO sessions remembered per portal frontend (a long-polling session stays on the portal
    #: that opened it, also when its own portal comes back).
    sticky_sessions: _PositiveInt = 100_000
    #: Seconds a remembered Engine.IO session is kept after its last request.
    sticky_expire: _Positive = 300.0
    #: PEM file (certificate and key) for TLS on the frontends of portals that declare ``secure``.
    certificate: str = ""
    #: Most connections HAProxy accepts in all (it needs about twice as many open files: raise
    #: the limit, e.g. systemd's `LimitNOFILE`, with it).
    max_connections: _PositiveInt = 4096


class LocalClusterSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Seconds ``switchboard up --broker URL`` waits for a broker to answer at ``URL`` before it gives
    #: up with one line (it starts no role until one answers).
    broker_wait: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 30.0
    #: Seconds between two attempts to reach the broker while ``switchboard up --broker`` waits for it.
    broker_retry_interval: Annotated[float, msgspec.Meta(gt=0, le=60)] = 1.0


class JournalSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Where the rooms' events are journaled, so that a restart or a controller's death drops nobody:
    #: ``auto`` (``file`` for ``switchboard up``; for a controller process, ``holder`` when a broker is
    #: configured, else ``sqlite``), ``file`` (append-only files of our own on local disk, one machine;
    #: opened empty, it takes over the rooms of the SQLite journal at ``journal.sqlite.path``, which is
    #: then renamed ``*.migrated``: the upgrade from a version whose embedded default was ``sqlite``),
    #: ``sqlite`` (one SQLite file on local disk: one machine), ``holder`` (RabbitMQ streams: the
    #: records of all of a controller's rooms in one stream of its own, each room's claims in a stream of
    #: the room's; any controller can rebuild any room; it takes over rooms the ``stream`` journal wrote,
    #: not the other way round: docs/holder-journal.md), ``stream`` (RabbitMQ streams, one per room with
    #: its records and claims: the cluster default before 2026-12-05, ~1.5× the holder journal's CPU on
    #: the relay path), ``memory``
    #: (tests only: lost with the process) or ``off`` (nothing journaled: a restart or a controller's
    #: death drops its rooms).
    kind: Literal["auto", "sqlite", "stream", "holder", "memory", "off", "file"] = "auto"
    #: The SQLite journal (one file on local disk).
    sqlite: SqliteJournalSettings = msgspec.field(default_factory=SqliteJournalSettings)
    #: The append-only file journal (one directory on local disk).
    file: FileJournalSettings = msgspec.field(default_factory=FileJournalSettings)
    #: The stream journal (on the broker of ``rpc.broker_url``), and the ``holder`` one; an empty
    #: ``prefix`` names the streams after the cluster (``<worker.cluster_name>.journal.``).
    stream: StreamJournalSettings = msgspec.field(default_factory=lambda: StreamJournalSettings(prefix=""))


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    rpc: RpcSettings = msgspec.field(default_factory=RpcSettings)
    worker: WorkerSettings = msgspec.field(default_factory=WorkerSettings)
    keys: KeySettings = msgspec.field(default_factory=KeySettings)
    cluster_manager: ClusterManagerSettings = msgspec.field(default_factory=ClusterManagerSettings)
    token_api: TokenApiSettings = msgspec.field(default_factory=TokenApiSettings)
    portal: PortalSettings = msgspec.field(default_factory=PortalSettings)
    controller: ControllerSettings = msgspec.field(default_factory=ControllerSettings)
    journal: JournalSection = msgspec.field(default_factory=JournalSection)
    log: LogSettings = msgspec.field(default_factory=LogSettings)
    load_balancer: LoadBalancerSettings = msgspec.field(default_factory=LoadBalancerSettings)
    local_cluster: LocalClusterSettings = msgspec.field(default_factory=LocalClusterSettings)
    alerts: AlertSettings = msgspec.field(default_factory=AlertSettings)
    webhooks: WebhookSettings = msgspec.field(default_factory=WebhookSettings)

    def __post_init__(self) -> None:
        # Rules across sections.  A frozen leader must find its lease run out before the broker hands
        # its queue to a standby (after 2 missed heartbeats at the soonest), or two managers act at once.
        manager = self.cluster_manager
        if manager.leader_lease >= 2 * self.rpc.heartbeat:
            raise ValueError(f"cluster_manager.leader_lease ({manager.leader_lease:g} s) must be shorter than twice "
                             f"rpc.heartbeat ({self.rpc.heartbeat} s): the broker's takeover of a frozen manager")
        if manager.leader_tick_interval >= manager.leader_lease:
            raise ValueError(f"cluster_manager.leader_tick_interval ({manager.leader_tick_interval:g} s) must be "
                             f"shorter than cluster_manager.leader_lease ({manager.leader_lease:g} s)")


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        *path, key = name[len(ENV_PREFIX):].lower().split("__")  # SECTION__SUB__KEY for sub-sections
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        target = layer
        for part in path:
            target = target.setdefault(part, {})
        target[key] = value
    return layer


def load_settings(
    path: str | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from defaults, ``path`` (TOML), the environment and ``overrides``."""
    data: dict[str, Any] = msgspec.to_builtins(Settings())
    if path:
        try:
            with open(path, "rb") as fh:
                data = _merge(data, tomllib.load(fh))
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    data = _merge(data, _env_layer(os.environ if env is None else env))
    if overrides:
        data = _merge(data, overrides)
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid setting: {exc}") from None
