"""Who may call: service keys (``X-Service-Key``) and MAuth, with replay protection and a
per-address limit on failures (the address is :func:`edge.client_address`: behind a trusted
reverse proxy, the client it forwarded for, not the proxy).

``POST /token`` and the room management routes (``/v1/rooms*``, tokens included) need
credentials unless ``require_service_key`` is off — an open token API, which the settings allow
only on a loopback address (:func:`token_api.app.create_app` refuses anything else).  An open API
does not look at credentials; its callers are anonymous (``Principal.service is None``).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from edge import TrustedProxies, client_address

from .errors import AuthError, TooManyRequests
from .logs import log
from .mauth import MalformedHeader, parse_header, signature_matches
from .metrics import Metrics
from .ratelimit import FailureLimiter
from .replay import NonceCache
from .settings import TokenApiSettings

__all__ = ["Authenticator", "Principal", "SERVICE_KEY_HEADER"]


SERVICE_KEY_HEADER = "X-Service-Key"
_UNKNOWN_SERVICE_KEY = "switchboard: no such service"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller; ``user``/``role`` come from MAuth and override the body's."""

    service: str | None
    user: str | None = None
    role: str | None = None


_OPEN = Principal(service=None)


class Authenticator:
    def __init__(
        self,
        settings: TokenApiSettings,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        trusted: TrustedProxies | None = None,
    ) -> None:
        if settings.require_service_key and not settings.service_keys:
            raise ValueError("token_api.require_service_key is on but token_api.service_keys is empty")
        self._keys = dict(settings.service_keys)
        self._open = not settings.require_service_key
        self._window_ms = settings.mauth_window * 1000
        self._wall_clock = wall_clock
        self._metrics = metrics
        self._trusted = trusted if trusted is not None else TrustedProxies(settings.trusted_proxies)
        self._nonces = NonceCache(settings.mauth_window, settings.mauth_nonce_capacity, clock=clock)
        self._limiter = FailureLimiter(
            settings.auth_failure_limit, settings.auth_failure_window, settings.auth_failure_addresses, clock=clock
        )

    def authenticate(self, request: web.Request) -> Principal:
        """The caller of ``POST /token`` or a ``/v1/rooms*`` route; :class:`AuthError` without valid
        credentials (unless the API is open: then an anonymous principal)."""
        return _OPEN if self._open else self._authenticate(request)

    def _authenticate(self, request: web.Request) -> Principal:
        address = client_address(request, self._trusted)
        wait = self._limiter.retry_after(address)
        if wait:
            self._metrics.auth_failures.labels(reason="rate_limited").inc()
            raise TooManyRequests("too many failed authentications; retry later", retry_after=wait)
        try:
            return self._verify(request)
        except AuthError as exc:
            self._limiter.failed(address)
            self._metrics.auth_failures.labels(reason=exc.error_reason).inc()
            log.info("auth_failed", reason=exc.error_reason, remote=address)
            raise

    def _verify(self, request: web.Request) -> Principal:
        key = request.headers.get(SERVICE_KEY_HEADER)
        if key is not None:
            return self._verify_service_key(key)
        header = request.headers.get("Authorization")
        if header is not None:
            return self._verify_mauth(header)
        raise AuthError("credentials required: MAuth or X-Service-Key", reason="missing_credentials")

    def _verify_service_key(self, given: str) -> Principal:
        given_bytes = given.encode("utf-8", "replace")
        found: str | None = None
        for service, key in self._keys.items():
            # Compare with every key, so the time taken does not tell which one matched.
            if hmac.compare_digest(given_bytes, key.encode()) and found is None:
                found = service
        if found is None:
            raise AuthError("wrong service key", reason="bad_service_key")
        return Principal(service=found)

    def _verify_mauth(self, header: str) -> Principal:
        try:
            credentials = parse_header(header)
            user = credentials.user
        except MalformedHeader as exc:
            raise AuthError(str(exc), reason="malformed_header") from None
        key = self._keys.get(credentials.service_id)
        if not signature_matches(credentials, key if key is not None else _UNKNOWN_SERVICE_KEY) or key is None:
            raise AuthError("MAuth signature does not match", reason="bad_signature")
        if abs(self._wall_clock() * 1000 - credentials.timestamp) > self._window_ms:
            raise AuthError("MAuth timestamp is outside the accepted window", reason="stale_timestamp")
        if self._nonces.is_full():
            raise TooManyRequests("too many MAuth requests in the window; retry later", retry_after=1,
                                  reason="nonce_capacity")
        if not self._nonces.add(credentials.service_id, credentials.cnonce):
            raise AuthError("MAuth cnonce was already used", reason="replayed_nonce")
        if user is None or credentials.role is None:
            # Only a username *and* role are signed; one alone is ignored.
            return Principal(service=credentials.service_id)
        return Principal(service=credentials.service_id, user=user, role=credentials.role)
