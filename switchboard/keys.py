"""Which keys a process runs with: configured keys are checked, an embedded server makes its own.

- Every configured key (signing keys, admin keys, token API service keys) must be strong:
  :func:`credentials.weak_key_reason` refuses short and example keys.
- A cluster role refuses to start without the keys it uses (:data:`ROLE_NEEDS`).
- An embedded server fills in what is not configured from its state file
  (:mod:`switchboard.localkeys`), made with random keys on first start.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgspec

from credentials import weak_key_reason

from .config import ConfigError, Settings
from .localkeys import LocalKeys, LocalKeysError, load_or_create, state_path

__all__ = ["EmbeddedKeys", "check_configured_keys", "check_role_keys", "embedded_keys", "ROLE_NEEDS"]

_MAKE_ONE = "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"

#: The settings each cluster role cannot start without.
ROLE_NEEDS: dict[str, tuple[str, ...]] = {
    "cluster-manager": ("keys.admin_keys",),
    "controller": ("keys.admin_keys",),
    "token-api": ("keys.keys", "token_api.service_keys"),
    "portal": ("keys.keys",),
}


def _configured(settings: Settings) -> Iterator[tuple[str, str]]:
    for i, key in enumerate(settings.keys.keys):
        yield f"keys.keys[{i}]", key
    for i, key in enumerate(settings.keys.admin_keys):
        yield f"keys.admin_keys[{i}]", key
    for service, key in settings.token_api.service_keys.items():
        yield f"token_api.service_keys.{service}", key
    for i, endpoint in enumerate(settings.webhooks.endpoints):
        yield f"webhooks.endpoints[{i}].secret", endpoint.secret


def check_configured_keys(settings: Settings) -> None:
    """:class:`ConfigError` naming the first configured key that is too weak to use."""
    for name, key in _configured(settings):
        reason = weak_key_reason(key)
        if reason is not None:
            raise ConfigError(f"{name} {reason}; {_MAKE_ONE}")


def _is_set(settings: Settings, name: str) -> bool:
    if name == "token_api.service_keys":
        return bool(settings.token_api.service_keys) or not settings.token_api.require_service_key
    section, _, key = name.partition(".")
    return bool(getattr(getattr(settings, section), key))


def check_role_keys(role: str, settings: Settings) -> None:
    """:class:`ConfigError` when ``role`` lacks a key it needs, or a configured key is weak."""
    for name in ROLE_NEEDS.get(role, ()):
        if not _is_set(settings, name):
            env = "SWITCHBOARD_" + name.replace(".", "__").upper()
            raise ConfigError(f"switchboard {role} needs {name} (set it in the config file or {env}); {_MAKE_ONE}")
    check_configured_keys(settings)


@dataclass(frozen=True, slots=True)
class EmbeddedKeys:
    """The settings an embedded server runs with, and where its generated keys are kept."""

    settings: Settings
    state_file: Path | None
    local: LocalKeys | None
    created: bool

    @property
    def service_key(self) -> str | None:
        """A service key ``POST /token`` accepts (the generated one when it is in use)."""
        keys = self.settings.token_api.service_keys
        if self.local is not None and keys.get(self.local.service_id) == self.local.service_key:
            return self.local.service_key
        return next(iter(keys.values()), None)

    @property
    def admin_key(self) -> str | None:
        return self.settings.keys.admin_keys[-1] if self.settings.keys.admin_keys else None


def embedded_keys(settings: Settings) -> EmbeddedKeys:
    """``settings`` with every key an embedded server needs: configured ones (checked), the rest
    from the state file (made on first start)."""
    check_configured_keys(settings)
    keys, api = settings.keys, settings.token_api
    missing_service = not api.service_keys and api.require_service_key
    if keys.keys and keys.admin_keys and not missing_service:
        return EmbeddedKeys(settings, None, None, False)
    path = state_path(keys.state_file)
    try:
        local, created = load_or_create(path)
    except LocalKeysError as exc:
        raise ConfigError(f"keys.state_file: {exc}") from None
    keys = msgspec.structs.replace(
        keys, keys=keys.keys or [local.signing_key], admin_keys=keys.admin_keys or [local.admin_key]
    )
    if missing_service:
        api = msgspec.structs.replace(api, service_keys={local.service_id: local.service_key})
    return EmbeddedKeys(msgspec.structs.replace(settings, keys=keys, token_api=api), path, local, created)
