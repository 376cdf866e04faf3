"""Settings of a portal (section ``[portal]``)."""

from __future__ import annotations

import msgspec

__all__ = ["PortalSettings"]


class PortalSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Address the Socket.IO server binds to.
    host: str = "0.0.0.0"
    #: Port (OWT: 8080); 0 picks a free one.
    port: int = 8080
    #: Public ``hostname[:port]`` clients use (put in tokens); empty = this host's name and port.
    hostname: str = ""
    #: Overrides the public address entirely (OWT ``via_host``), e.g. behind a proxy.
    via_host: str = ""
    #: Tell clients to use TLS (``secure`` in tokens).
    secure: bool = False
    #: ISPs and regions this portal serves (scheduler capacity); empty ISPs = any.
    isps: list[str] = []
    regions: list[str] = []
    #: Schedulable while load is below this.
    max_load: float = 0.85
    #: Seconds a disconnected participant is held for a relogin (OWT: 60 s).
    reconnection_timeout: float = 60.0
    #: Lifetime of a reconnection ticket in seconds (OWT: 600 s; never ≤ 60 s).
    reconnection_ticket_lifetime: float = 600.0
    #: Browser origins allowed for Socket.IO; ``["*"]`` allows any.
    cors_allowed_origins: list[str] = msgspec.field(default_factory=lambda: ["*"])
