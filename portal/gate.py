"""What the portal's HTTP server refuses before Engine.IO sees a request, and how it says so.

- A new Engine.IO connection (a request on the Socket.IO path without ``sid``: a polling handshake
  or a websocket opened directly) counts against its client address
  (``connections_per_address_per_second`` and ``_burst``, the address from
  :func:`edge.client_address`); beyond the limit: 429 with ``Retry-After`` and nothing is created.
- HTTP errors (unknown path, wrong method, a polling body that did not arrive within
  ``body_timeout``) are JSON ``{"error": {"reason", "message"}}``.  Engine.IO's own refusals (bad
  session, bad transport) keep python-engineio's text bodies.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware
from engineio.exceptions import EngineIOError

from edge import AddressRateLimiter, BodyTimeout, TrustedProxies, client_address, error_response

__all__ = ["gate_middleware", "PollingBodyTimeout"]

_REASONS = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


class PollingBodyTimeout(BodyTimeout, EngineIOError):  # type: ignore[misc]
    """A late polling POST body: an Engine.IO error, so python-engineio ends that session quietly
    (instead of logging a traceback and answering ``ok``)."""


def gate_middleware(sio_path: str, limiter: AddressRateLimiter, trusted: TrustedProxies) -> Middleware:
    """The middleware (see the module docstring) for Socket.IO served at ``sio_path``."""

    @web.middleware
    async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == hdrs.METH_GET and request.path == sio_path and "sid" not in request.query:
            wait = limiter.take(client_address(request, trusted))
            if wait:
                return error_response(429, "too_many_connections",
                                      "too many new connections from this address; retry later",
                                      headers={hdrs.RETRY_AFTER: str(wait)})
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(exc.status, _REASONS.get(exc.status, "bad_request"), exc.reason,
                                  headers={k: v for k, v in exc.headers.items() if k in (hdrs.ALLOW,)})
        if isinstance(request.content.exception(), BodyTimeout):
            return error_response(408, "body_timeout", "The request body did not arrive in time", close=True)
        return response

    return gate
