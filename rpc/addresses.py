"""How a portal's worker info names the address its clients reach it at.

A portal joins the cluster with ``hostname``/``port`` (or OWT's ``ip``), an optional ``via_host`` (a
proxy in front of it) and ``secure`` (or OWT's ``ssl``).  The token API puts that address in join
tokens, the cluster manager hands it out as an alternative to a portal's clients: one reading of it.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["public_address", "public_url"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SECURE_SCHEMES = ("https://", "wss://")


def public_address(info: dict[str, Any]) -> tuple[str, bool]:
    """``(host, secure)`` of a portal from its worker info, as the OWT SDK expects them.

    ``via_host`` (a proxy in front of the portal) wins, with its scheme and any path removed;
    otherwise ``hostname`` (or ``ip``) and ``port``.  ``secure`` is the worker's ``secure`` (or
    OWT's ``ssl``) flag, or an ``https``/``wss`` scheme on ``via_host``.
    """
    secure = bool(info.get("secure") or info.get("ssl"))
    via_host = info.get("via_host")
    if isinstance(via_host, str) and via_host.strip():
        via_host = via_host.strip()
        secure = secure or via_host.lower().startswith(_SECURE_SCHEMES)
        host = _SCHEME.sub("", via_host).split("/", 1)[0]
        if host:
            return host, secure
    hostname = info.get("hostname") or info.get("ip")
    port = info.get("port")
    if not isinstance(hostname, str) or not hostname or isinstance(port, bool) or not isinstance(port, int):
        raise ValueError("the portal declared no public address (hostname and port, or via_host)")
    return f"{hostname}:{port}", secure


def public_url(host: str, secure: bool) -> str:
    """The URL a Socket.IO client connects to for ``(host, secure)``, as the OWT SDK builds it."""
    return f"{'https' if secure else 'http'}://{host}"
