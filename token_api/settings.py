"""Settings of the token API (section ``[token_api]``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = ["TokenApiSettings", "RoomStoreSettings", "ManagementSettings", "DashboardSettings"]

_PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]
_PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
_Count = Annotated[int, msgspec.Meta(ge=0)]


class RoomStoreSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Where room configuration is kept: ``sqlite`` (the file ``token_api.rooms_db``; token API
    #: processes sharing it must run on one machine) or ``postgres`` (the database ``dsn``; any
    #: number of token API processes on any machines, all agreeing).
    kind: Literal["sqlite", "postgres"] = "sqlite"
    #: PostgreSQL connection string, ``postgresql://user:password@host:port/database`` (libpq's
    #: ``PGPASSWORD`` or ``~/.pgpass`` may hold the password instead). A credential: keep it in the
    #: settings file or ``SWITCHBOARD_TOKEN_API__STORE__DSN``; it is never logged. Required for
    #: ``postgres``.
    dsn: str = ""
    #: PostgreSQL: connections each token API process keeps open, and the most it opens.
    pool_min_size: _Count = 1
    pool_max_size: _PositiveInt = 10
    #: PostgreSQL: seconds to open one connection.
    connect_timeout: _PositiveSeconds = 5.0
    #: PostgreSQL: seconds a request waits for a free pooled connection.
    acquire_timeout: _PositiveSeconds = 5.0
    #: PostgreSQL: seconds one statement may run (migrations included, lock waits too).
    query_timeout: _PositiveSeconds = 5.0
    #: PostgreSQL: seconds an idle pooled connection is kept before it is closed.
    pool_idle_lifetime: _PositiveSeconds = 300.0
    #: PostgreSQL: times an update (or a get-or-create) is tried again when another process changed
    #: the room meanwhile; beyond it the request fails.
    update_retries: _PositiveInt = 20
    #: SQLite: seconds a statement waits for another process's write lock on ``rooms_db``.
    sqlite_busy_timeout: _PositiveSeconds = 5.0


class ManagementSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The management API of live rooms (``/v1/rooms/{room}/participants``, ``/streams``, ``/messages``)."""

    #: Timeout of one call to the cluster manager or to the room's controller, seconds (504 beyond).
    call_timeout: _PositiveSeconds = 5.0
    #: Tries when the room is between controllers (moved, reloading, its controller just died)
    #: before answering 503.
    attempts: _PositiveInt = 3
    #: Seconds between those tries.
    retry_interval: _PositiveSeconds = 0.5
    #: ``Retry-After`` (seconds) sent with its 503 answers.
    retry_after: _PositiveInt = 2


class DashboardSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The status page ``/dashboard`` (docs/operations.md, *The status page*)."""

    #: Serve the page (behind an admin key either way).
    enabled: bool = True
    #: Seconds a login lasts; then the page asks for the admin key again.
    session_lifetime: _PositiveSeconds = 8 * 3600.0
    #: Logged-in browsers kept at once by this process (the oldest login ends first).
    sessions: _PositiveInt = 64
    #: Seconds between two reads of the cluster for a live page.
    refresh_interval: _PositiveSeconds = 1.0
    #: Seconds each call the page makes (cluster manager, controllers) may take.
    call_timeout: _PositiveSeconds = 2.0
    #: Live pages (event streams) served at once; more get 503.
    streams: _PositiveInt = 32
    #: Faults shown on the timeline, the newest.
    faults_shown: _PositiveInt = 200
    #: Login attempts per client address: sustained per second and burst; beyond them 429.
    logins_per_address_per_second: _PositiveSeconds = 0.2
    logins_per_address_burst: _PositiveInt = 10
    #: Most client addresses whose login attempts are tracked.
    login_limit_addresses: _PositiveInt = 10_000
    #: Mark the session cookie ``Secure`` (sent over HTTPS only); turn on when the token API is
    #: reached over TLS (a request that arrives over TLS gets it anyway).
    secure_cookie: bool = False


class TokenApiSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Address the HTTP API binds to (loopback by default; with ``require_service_key`` off only a
    #: loopback address is allowed).
    host: str = "127.0.0.1"
    #: HTTP port (OWT management API: 3000).
    port: int = 3000
    #: Token lifetime in seconds; the portal reservation lasts exactly as long.
    token_lifetime: float = 180.0
    #: Require credentials (``X-Service-Key`` or MAuth) on ``POST /token`` and ``/v1/rooms*``.
    #: Off (an open token API, for a trial) is refused unless ``host`` is a loopback address.
    require_service_key: bool = True
    #: Service keys accepted on ``POST /token`` (header ``X-Service-Key``) and MAuth services
    #: ``{id: key}``. Empty: an embedded server uses the one it keeps in ``keys.state_file``.
    service_keys: dict[str, str] = {}
    #: Create a room with default settings when an authenticated caller asks a token for an
    #: unknown room (never for an anonymous caller of an open token API).
    auto_create_rooms: bool = True
    #: SQLite file holding the room configuration (``store.kind = "sqlite"``).
    rooms_db: str = "switchboard-rooms.sqlite3"
    #: Seconds a token mint may use a room read from memory; changes made by another token API
    #: process are seen by its mints within this (the controllers' room loads and ``/v1/rooms``
    #: always read the store). 0 = no cache.
    rooms_cache_ttl: float = 2.0
    #: The room store (``[token_api.store]``).
    store: RoomStoreSettings = msgspec.field(default_factory=RoomStoreSettings)
    #: The management API of live rooms (``[token_api.management]``).
    management: ManagementSettings = msgspec.field(default_factory=ManagementSettings)
    #: Browser origins allowed by CORS on the token and room routes (never on admin routes);
    #: ``["*"]`` allows any. Unset: any origin while bound to loopback (a trial), none otherwise.
    cors_allowed_origins: list[str] | None = None
    #: MAuth: a request's timestamp may differ from this server's clock by at most this many
    #: seconds, and a ``(service, cnonce)`` pair is accepted once within it.
    mauth_window: _PositiveSeconds = 300.0
    #: MAuth: most ``(service, cnonce)`` pairs remembered at once; beyond it new requests get 429.
    mauth_nonce_capacity: _PositiveInt = 100_000
    #: Failed authentications from one address within ``auth_failure_window`` before 429.
    auth_failure_limit: _PositiveInt = 10
    #: Seconds over which authentication failures are counted per address.
    auth_failure_window: _PositiveSeconds = 60.0
    #: Most client addresses whose failures are tracked (the oldest is forgotten first).
    auth_failure_addresses: _PositiveInt = 10_000
    #: Seconds spent retrying the cluster manager for a portal before answering 503.
    schedule_budget: _PositiveSeconds = 3.0
    #: Timeout of one ``schedule`` call, seconds (capped by what is left of the budget).
    schedule_call_timeout: _PositiveSeconds = 1.0
    #: ``Retry-After`` (seconds) sent with 503 when no portal could be reserved.
    retry_after: _PositiveInt = 2
    #: Timeout of the cluster manager calls made by ``GET /readyz``, seconds.
    readiness_timeout: _PositiveSeconds = 1.0
    #: Largest accepted request body, bytes (413 beyond).
    client_max_size: _PositiveInt = 64 * 1024
    #: Longest accepted user name, characters.
    max_user_length: _PositiveInt = 128
    #: Seconds a client has to send a request line and headers, counted from the connection or its
    #: previous response (so also the longest idle keep-alive); past it: 408 and the connection closes.
    header_timeout: _PositiveSeconds = 10.0
    #: Seconds a client has to send a whole request body once its headers are in; past it: 408.
    body_timeout: _PositiveSeconds = 30.0
    #: Deepest nesting of arrays and objects accepted in a JSON body (400 ``too_deep`` beyond).
    max_json_depth: _PositiveInt = 32
    #: Reverse proxies (addresses or networks, e.g. ``"10.0.0.0/8"``) whose ``X-Forwarded-For`` names
    #: the client; empty = the TCP peer is the client.  Used by every per-address limit.
    trusted_proxies: list[str] = []
    #: Token mints (``POST /token``, ``POST /v1/rooms/{room}/tokens``) per client address: sustained
    #: per second and burst; beyond them 429 with ``Retry-After``. An application server mints for
    #: all its users from one address: sized for a room filling at once, not for one browser.
    mints_per_address_per_second: _PositiveSeconds = 100.0
    mints_per_address_burst: _PositiveInt = 500
    #: Most client addresses whose mint rate is tracked (the least recently seen is forgotten first).
    mint_limit_addresses: _PositiveInt = 10_000
    #: The status page (``[token_api.dashboard]``).
    dashboard: DashboardSettings = msgspec.field(default_factory=DashboardSettings)
