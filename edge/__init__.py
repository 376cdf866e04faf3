"""The HTTP edge both aiohttp servers (token API, portal) put between the network and their app.

- :mod:`edge.protocol`: deadlines on a request's head and body, aiohttp's own errors as JSON, no
  version in ``Server``;
- :mod:`edge.site`: serving an app through such connections;
- :mod:`edge.client_address`: who the client is, behind trusted proxies;
- :mod:`edge.address_limits`: rate limits per client address.
"""

from .address_limits import AddressRateLimiter, limit_key
from .client_address import TrustedProxies, client_address, parse_address
from .protocol import (
    SERVER_NAME,
    BodyTimeout,
    ErrorBody,
    Guard,
    GuardedRequestHandler,
    error_response,
    json_error_body,
)
from .site import GuardedSite, name_server

__all__ = [
    "AddressRateLimiter",
    "limit_key",
    "TrustedProxies",
    "client_address",
    "parse_address",
    "SERVER_NAME",
    "BodyTimeout",
    "ErrorBody",
    "Guard",
    "GuardedRequestHandler",
    "error_response",
    "json_error_body",
    "GuardedSite",
    "name_server",
]
