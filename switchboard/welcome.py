"""What ``switchboard up`` prints once it serves: where things listen, where its keys are, and a
``curl`` line that mints a token with the service key."""

from __future__ import annotations

import shlex

from .keys import EmbeddedKeys

__all__ = ["print_welcome", "curl_line"]

_WILDCARDS = frozenset({"", "0.0.0.0", "::"})


def _reachable(host: str) -> str:
    """An address a command on this machine reaches a server bound to ``host`` at."""
    if host in _WILDCARDS:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def curl_line(api: str, service_key: str | None) -> str:
    """The command that mints a join token for ``alice`` in room ``demo``."""
    parts = ["curl", "-s", "-X", "POST", f"{api}/token", "-H", "Content-Type: application/json"]
    if service_key:
        parts += ["-H", f"X-Service-Key: {service_key}"]
    parts += ["-d", '{"room":"demo","user":"alice","role":"presenter"}']
    return shlex.join(parts)


def print_welcome(keys: EmbeddedKeys, *, api_port: int, portal_port: int, title: str = "") -> None:
    settings = keys.settings
    api = f"http://{_reachable(settings.token_api.host)}:{api_port}"
    portal = f"http://{_reachable(settings.portal.host)}:{portal_port}"
    service_key = keys.service_key if settings.token_api.require_service_key else None
    lines = [title] if title else []
    lines += [
        f"  token API      {api}   (POST /token, /v1/rooms, /healthz, /metrics)",
        f"  portal         {portal}   (Socket.IO, OWT protocol 1.2)",
    ]
    if keys.state_file is not None:
        made = "made now" if keys.created else "kept from an earlier start"
        lines.append(f"  keys           {keys.state_file} ({made}; mode 0600)")
    admin = "switchboard admin status" if keys.local is not None and keys.admin_key == keys.local.admin_key \
        else "switchboard admin status --key <admin key>"
    if api != "http://127.0.0.1:3000":
        admin += f" --url {api}"
    if settings.token_api.dashboard.enabled:
        where = "admin_key in the keys file" if keys.state_file is not None else "an admin key"
        lines.append(f"  status page    {api}/dashboard   (log in with {where})")
    lines += [f"  cluster admin  {admin}", "  mint a token:", f"    {curl_line(api, service_key)}", "Ctrl-C stops it."]
    print("\n".join(lines), flush=True)
