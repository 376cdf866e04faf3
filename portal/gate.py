"""What the portal's HTTP server refuses before (or instead of) Engine.IO, and how it says so.

- A new Engine.IO connection (a request on the Socket.IO path without ``sid``: a polling handshake
  or a websocket opened directly) counts against its client address
  (``connections_per_address_per_second`` and ``_burst``, the address from
  :func:`edge.client_address`); beyond the limit: 429 with ``Retry-After`` and nothing is created.
- A polling POST announcing more than ``max_message_bytes`` is refused here (413) and its session
  ended: python-engineio would refuse it too, but then wait for the client to fetch a CLOSE packet
  before answering, which a hostile client never does.
- A polling POST whose body does not arrive within ``body_timeout`` (:mod:`edge.protocol`) gets 408
  and its session is ended.
- Other HTTP errors (unknown path, wrong method) are JSON ``{"error": {"reason", "message"}}``.
  Engine.IO's own refusals (bad session, bad transport) keep python-engineio's text bodies.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from edge import AddressRateLimiter, BodyTimeout, TrustedProxies, client_address, error_response

__all__ = ["gate_middleware", "quiet_body_timeouts"]

_REASONS = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}

EndSession = Callable[[str], Awaitable[None]]


def gate_middleware(sio_path: str, limiter: AddressRateLimiter, trusted: TrustedProxies, *, max_body: int,
                    end_session: EndSession) -> Middleware:
    """The middleware (see the module docstring) for Socket.IO served at ``sio_path``;
    ``end_session(sid)`` ends an Engine.IO session."""

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        sid = request.query.get("sid") if request.path == sio_path else None
        if request.path == sio_path and request.method == hdrs.METH_GET and sid is None:
            wait = limiter.take(client_address(request, trusted))
            if wait:
                return error_response(429, "too_many_connections",
                                      "too many new connections from this address; retry later",
                                      headers={hdrs.RETRY_AFTER: str(wait)})
        if sid is not None and request.method == hdrs.METH_POST and (request.content_length or 0) > max_body:
            await end_session(sid)
            return error_response(413, "body_too_large", f"a message is at most {max_body} bytes", close=True)
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(exc.status, _REASONS.get(exc.status, "bad_request"), exc.reason,
                                  headers={k: v for k, v in exc.headers.items() if k in (hdrs.ALLOW,)})
        if isinstance(request.content.exception(), BodyTimeout):
            if sid is not None:
                await end_session(sid)
            return error_response(408, "body_timeout", "The request body did not arrive in time", close=True)
        return response

    return gate


def _not_a_body_timeout(record: logging.LogRecord) -> bool:
    return not (record.exc_info and isinstance(record.exc_info[1], BodyTimeout))


def quiet_body_timeouts() -> None:
    """python-engineio logs any failure reading a polling body with a traceback; a late body is a
    client's fault, answered by :func:`gate_middleware`, so that one is dropped (idempotent)."""
    logging.getLogger("engineio.server").addFilter(_not_a_body_timeout)
