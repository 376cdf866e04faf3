"""One settings object with a section per component: defaults in code, then a TOML file, then
environment variables (``SWITCHBOARD_<SECTION>__<KEY>``, values parsed as JSON when they parse),
then command-line overrides.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from cluster_manager.settings import ClusterManagerSettings
from conference_controller.settings import ControllerSettings
from credentials import KeySettings
from journal.settings import JournalSettings as SqliteJournalSettings
from journal.settings import StreamJournalSettings
from portal.settings import PortalSettings
from rpc.settings import RpcSettings, WorkerSettings
from token_api.settings import TokenApiSettings

__all__ = ["Settings", "JournalSection", "LogSettings", "load_settings", "ConfigError", "ENV_PREFIX"]

ENV_PREFIX = "SWITCHBOARD_"


class ConfigError(ValueError):
    """The configuration cannot be used; the message says which setting and why."""


class LogSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: ``debug`` | ``info`` | ``warning`` | ``error``.
    level: str = "info"
    #: One JSON object per line (otherwise ``key=value`` text).
    json: bool = False


class JournalSection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Where the rooms' events are journaled, so that a restart or a controller's death drops nobody:
    #: ``auto`` (``sqlite`` for ``switchboard up``; for a controller process, ``stream`` when a
    #: broker is configured), ``sqlite`` (local disk: one machine), ``stream`` (RabbitMQ streams:
    #: any controller can rebuild any room), ``memory`` (tests only: lost with the process) or
    #: ``off`` (nothing journaled: a restart or a controller's death drops its rooms).
    kind: Literal["auto", "sqlite", "stream", "memory", "off"] = "auto"
    #: The SQLite journal (one file on local disk).
    sqlite: SqliteJournalSettings = msgspec.field(default_factory=SqliteJournalSettings)
    #: The stream journal (on the broker of ``rpc.broker_url``); an empty ``prefix`` names the
    #: streams after the cluster (``<worker.cluster_name>.journal.``).
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
