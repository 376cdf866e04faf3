"""Settings of the token API (section ``[token_api]``)."""

from __future__ import annotations

import msgspec

__all__ = ["TokenApiSettings"]


class TokenApiSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Address the HTTP API binds to.
    host: str = "0.0.0.0"
    #: HTTP port (OWT management API: 3000).
    port: int = 3000
    #: Token lifetime in seconds; the portal reservation lasts exactly as long.
    token_lifetime: float = 180.0
    #: Require the service key header on ``POST /token`` (off in the embedded default, for a first run).
    require_service_key: bool = False
    #: Service keys accepted on ``POST /token`` (header ``X-Service-Key``) and MAuth services ``{id: key}``.
    service_keys: dict[str, str] = {}
    #: Create a room with default settings when a token is asked for an unknown room.
    auto_create_rooms: bool = True
    #: SQLite file holding the room configuration.
    rooms_db: str = "switchboard-rooms.sqlite3"
    #: Browser origins allowed by CORS; ``["*"]`` allows any.
    cors_allowed_origins: list[str] = msgspec.field(default_factory=lambda: ["*"])
