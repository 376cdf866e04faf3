"""Settings of a portal (section ``[portal]``)."""

from __future__ import annotations

from typing import Annotated

import msgspec

__all__ = ["PortalSettings", "MIN_TICKET_LIFETIME"]

#: The OWT SDK refreshes a ticket 60 s before ``notAfter``; shorter lifetimes cause refresh storms.
MIN_TICKET_LIFETIME = 60.0

_Positive = Annotated[float, msgspec.Meta(gt=0)]
_PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


class PortalSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Address the Socket.IO server binds to (loopback by default: set it to serve other machines).
    host: str = "127.0.0.1"
    #: Port (OWT: 8080); 0 picks a free one.
    port: int = 8080
    #: Public ``hostname[:port]`` clients use (put in tokens); empty = this host's name and port.
    hostname: str = ""
    #: Overrides the public address entirely (OWT ``via_host``), e.g. behind a proxy.
    via_host: str = ""
    #: Tell clients to use TLS (``secure`` in tokens).
    secure: bool = False
    #: ISPs this portal serves (scheduler capacity); empty = any.
    isps: list[str] = []
    #: Regions this portal serves (scheduler capacity); empty = none in particular.
    regions: list[str] = []
    #: Schedulable while load is below this.
    max_load: float = 0.85
    #: Lifetime of a reconnection ticket in seconds (OWT: 600 s; never ≤ 60 s).
    reconnection_ticket_lifetime: float = 600.0
    #: Browser origins allowed for Socket.IO; ``["*"]`` allows any.
    cors_allowed_origins: list[str] = msgspec.field(default_factory=lambda: ["*"])
    #: Participants at which the reported load reaches 1.0.
    max_participants: int = 10000
    #: Seconds a socket may stay without a participant (no login) before it is closed (OWT: 180 s).
    idle_timeout: float = 180.0
    #: Seconds requests that arrive before ``relogin`` on a fresh socket wait for it (socket.io-client 4.1+).
    early_request_window: float = 2.0
    #: Largest Engine.IO message in bytes; a larger one closes the connection.
    max_message_bytes: int = 1_048_576
    #: Largest request payload (JSON) in bytes; a larger one is refused with an error.
    max_request_bytes: int = 65_536
    #: Requests per second one socket may sustain (token bucket); beyond it (and the burst) refused.
    rate_limit_per_second: float = 50.0
    #: Requests one socket may send at once before the sustained rate applies.
    rate_limit_burst: int = 100
    #: Unanswered (or held) requests per socket.
    max_pending_requests: int = 32
    #: Seconds one call to the cluster manager waits (``claim``, ``schedule``, ``portals``; OWT: 2 s).
    cluster_timeout: float = 2.0
    #: Seconds the controller's ``join`` of a login waits (OWT: 6 s).
    join_timeout: float = 6.0
    #: Seconds a client's ``text`` request waits for the controller (OWT: 4 s).
    text_timeout: float = 4.0
    #: Seconds a client's ``stream-control`` request waits for the controller (OWT: 4 s).
    control_timeout: float = 4.0
    #: Seconds any other call to a controller waits (client requests, ``resume``, ``refresh_ticket``,
    #: ``leave``; OWT: 2 s).
    request_timeout: float = 2.0
    #: Seconds a login the cluster cannot serve yet (no controller registered, manager still
    #: starting, the room's controller dead and its rooms not yet moved) is retried, at most.
    cluster_retry_budget: float = 3.0
    #: Seconds between two attempts of such a login.
    cluster_retry_interval: float = 0.25
    #: Seconds the controller reserves a room's task at a schedule (OWT: 30 s).
    room_reserve_time: float = 30.0
    #: A controller lost (its ``exit.quit``): each of its sockets here moves to the controller the
    #: cluster now schedules for the room (which rebuilds it from the journal) — tried this many
    #: times; then the client is told to log in again (``drop``).
    failover_attempts: _PositiveInt = 5
    #: Seconds between two attempts to move a socket of a lost controller.
    failover_interval: _Positive = 0.5
    #: Other live portals (same ISP, same region first) named to an extension client in its login and
    #: relogin answers, where it relogs in by itself when this portal dies (``alternatives``); 0 = none.
    alternatives: Annotated[int, msgspec.Meta(ge=0, le=16)] = 3
    #: Seconds a preference's list of alternatives is reused before it is asked again of the cluster
    #: manager (a stale list is served while the new one comes).
    alternatives_ttl: _Positive = 5.0
    #: Seconds a login waits for a list of alternatives not yet known (then it gets none).
    alternatives_timeout: _Positive = 0.5
    #: Preferences whose list of alternatives is kept, at most.
    alternatives_cache_size: _PositiveInt = 1024
    #: Seconds between batched ``ack`` casts to controllers.
    ack_interval: float = 0.05
    #: Seconds ``stop()`` waits for open HTTP/websocket handlers after closing every connection.
    shutdown_timeout: float = 5.0
    #: Seconds between two Engine.IO pings of a connection.
    ping_interval: float = 25.0
    #: Seconds a connection has to answer a ping before it counts as lost.
    ping_timeout: float = 20.0
    #: Seconds a client has to send a request line and headers, counted from the connection or its
    #: previous response (so also the longest idle keep-alive); past it: 408 and the connection closes.
    header_timeout: _Positive = 10.0
    #: Seconds a client has to send a whole request body (a polling POST) once its headers are in;
    #: past it: 408, the Engine.IO session ends and the connection closes.
    body_timeout: _Positive = 30.0
    #: Seconds from the Engine.IO connection within which a socket must connect Socket.IO and log in
    #: (``login`` or ``relogin``); past it the transport is closed (websocket or polling session).
    login_timeout: _Positive = 30.0
    #: Reverse proxies (addresses or networks, e.g. ``"10.0.0.0/8"``) whose ``X-Forwarded-For`` names
    #: the client; empty = the TCP peer is the client.  Used by every per-address limit.
    trusted_proxies: list[str] = []
    #: New Engine.IO connections per second a client address may sustain; beyond it (and the burst)
    #: 429 with ``Retry-After``. Sized for an office behind one NAT address joining at once, and for
    #: the clients of a dead sibling portal reconnecting here.
    connections_per_address_per_second: _Positive = 50.0
    #: New Engine.IO connections a client address may open at once before the sustained rate applies.
    connections_per_address_burst: _PositiveInt = 500
    #: Most client addresses whose connection rate is tracked (the least recently seen is forgotten first).
    connection_limit_addresses: _PositiveInt = 10_000

    def __post_init__(self) -> None:
        if self.reconnection_ticket_lifetime <= MIN_TICKET_LIFETIME:
            raise ValueError(
                f"portal.reconnection_ticket_lifetime must be more than {MIN_TICKET_LIFETIME:g} s "
                f"(got {self.reconnection_ticket_lifetime:g})"
            )
        for name in ("idle_timeout", "rate_limit_per_second", "max_request_bytes",
                     "max_message_bytes", "max_pending_requests", "rate_limit_burst", "max_participants",
                     "cluster_retry_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"portal.{name} must be positive")
