"""Timeouts, retry budgets and buffer bounds of the client, in one frozen object."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClientSettings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientSettings:
    """Every knob of :class:`~switchboard.client.Client`; the defaults suit tests and bots alike.

    Times are seconds.
    """

    #: Longest wait for the answer to one request (``login``, ``text``, …), outages included.
    request_timeout: float = 10.0
    #: Longest wait for one Socket.IO connection (Engine.IO handshake and namespace connect).
    connect_timeout: float = 5.0
    #: Connection attempts after a transport loss before the session is given up (OWT SDK: 10).
    reconnection_attempts: int = 10
    #: First delay before a reconnection attempt; doubled after each failure up to ``reconnection_delay_max``.
    reconnection_delay: float = 0.2
    reconnection_delay_max: float = 5.0
    #: Delay before trying the next portal address when one refused the connection or did not answer
    #: (the portal's ``alternatives``, then the token's URL); a whole round that failed waits the
    #: doubled ``reconnection_delay`` instead.
    failover_delay: float = 0.05
    #: Most alternative portal addresses kept from the portal's answers (first ones first).
    max_alternatives: int = 3
    #: Random part of each delay, as a fraction of it (0.5 = ±50 %); login retries too.
    reconnection_jitter: float = 0.5
    #: :meth:`~switchboard.client.Client.join` from a token API: tries in all, each with a new token,
    #: when no token API answered, when the portal a token names cannot be reached (a portal that died before the cluster noticed:
    #: ~0.3 s with the broker's event exchange) or refuses for now (``timeout``, ``unavailable``: the
    #: room's controller died during the join). The defaults wait up to ~3 s in all between logins.
    login_attempts: int = 5
    #: Delay before such a retry (with ``reconnection_jitter``); doubled after each one.
    login_retry_delay: float = 0.2
    #: With the extension: acknowledge seen events at most this long after they arrived…
    ack_interval: float = 0.05
    #: …or as soon as this many events are unacknowledged.
    ack_batch: int = 20
    #: Refresh the reconnection ticket this long before ``notAfter`` (OWT SDK: 60 s)…
    ticket_refresh_margin: float = 60.0
    #: …or at half its lifetime when the lifetime is under twice the margin; never sooner than this
    #: after the last refresh (no refresh storm with short tickets).
    ticket_refresh_min_delay: float = 1.0
    #: Events kept for :meth:`~switchboard.client.Client.next_event` until consumed (oldest dropped first).
    event_backlog: int = 10_000
    #: Verify the portal's and the token API's TLS certificates.
    ssl_verify: bool = True
