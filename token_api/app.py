"""Assembling the token API's :class:`aiohttp.web.Application`."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Sequence

from aiohttp import web

from credentials import Keyring
from edge import AddressRateLimiter, TrustedProxies, name_server
from rpc import Transport

from .app_keys import (
    AUTHENTICATOR,
    CLUSTER_NAME,
    METRICS,
    MINT_LIMITER,
    MINTER,
    SETTINGS,
    STORE,
    TRANSPORT,
    TRUSTED_PROXIES,
)
from .auth import Authenticator
from .dashboard import DASHBOARD_PREFIX, install_dashboard
from .metrics import Metrics
from .middlewares import cors_middleware, error_middleware
from .placement import PortalScheduler
from .routes import routes
from .service import RoomsService, rooms_service_name
from .settings import TokenApiSettings
from .store import create_room_store
from .store_cache import CachedRoomStore
from .tokens import TokenMinter

__all__ = ["create_app", "is_loopback", "allowed_origins", "ADMIN_PREFIX"]

log = logging.getLogger("switchboard.token_api")

#: Routes under this prefix are management pages and RPC: CORS never opens them.
ADMIN_PREFIX = "/admin/"


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server on this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_origins(settings: TokenApiSettings) -> list[str]:
    """``cors_allowed_origins``, or when unset: any origin on loopback (a trial), none otherwise."""
    if settings.cors_allowed_origins is not None:
        return list(settings.cors_allowed_origins)
    return ["*"] if is_loopback(settings.host) else []


async def _rooms_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    await store.open()
    try:
        # The controllers' room loads read the store itself, never the mints' memory of it: every
        # token API process answers them as the database has the room now.
        handle = await app[TRANSPORT].serve(rooms_service_name(app[CLUSTER_NAME]), RoomsService(store.store))
        try:
            log.info("rooms_served store=%s", store.describe())
            yield
        finally:
            await handle.stop()
    finally:
        await store.close()


def create_app(
    settings: TokenApiSettings,
    transport: Transport,
    keyring: Keyring,
    *,
    cluster_name: str = "cluster",
    extra_routes: Sequence[web.RouteDef] | None = None,
) -> web.Application:
    """The token API application.

    Its start-up opens the room store (``settings.store``: SQLite ``rooms_db`` or PostgreSQL) and serves the RPC service
    ``rooms`` on ``transport``; its cleanup undoes both.  ``transport`` must be started, and stays
    open (its owner closes it).  ``extra_routes`` are mounted as given (the admin relay, …) and go
    through the same CORS and error middlewares.

    :raises ValueError: the settings cannot work (``require_service_key`` without any key, a
        token lifetime that is not positive, a PostgreSQL store without a DSN, a trusted proxy that is not an address or network) or
        would expose an open token API beyond loopback.
    """
    if settings.token_lifetime <= 0:
        raise ValueError(f"token_api.token_lifetime must be positive, got {settings.token_lifetime}")
    if not settings.require_service_key and not is_loopback(settings.host):
        raise ValueError(
            f"token_api.require_service_key is off (anyone may mint tokens) and token_api.host is "
            f"{settings.host!r}: an open token API may only bind a loopback address; turn "
            "require_service_key on (with token_api.service_keys) or bind 127.0.0.1"
        )
    trusted = TrustedProxies(settings.trusted_proxies, setting="token_api.trusted_proxies")
    metrics = Metrics()
    store = CachedRoomStore(create_room_store(settings), ttl=settings.rooms_cache_ttl)
    portals = PortalScheduler(transport, settings, metrics, cluster_name=cluster_name)
    app = web.Application(
        client_max_size=settings.client_max_size,
        middlewares=[cors_middleware(allowed_origins(settings), closed_prefixes=(ADMIN_PREFIX, DASHBOARD_PREFIX)), error_middleware],
    )
    app[SETTINGS] = settings
    app[TRANSPORT] = transport
    app[CLUSTER_NAME] = cluster_name
    app[STORE] = store
    app[METRICS] = metrics
    app[TRUSTED_PROXIES] = trusted
    app[AUTHENTICATOR] = Authenticator(settings, metrics, trusted=trusted)
    app[MINT_LIMITER] = AddressRateLimiter(
        settings.mints_per_address_per_second, settings.mints_per_address_burst, settings.mint_limit_addresses
    )
    app[MINTER] = TokenMinter(settings, keyring, store, portals)
    app.add_routes(routes)
    if settings.dashboard.enabled:
        install_dashboard(app)
    if extra_routes:
        app.add_routes(extra_routes)
    app.cleanup_ctx.append(_rooms_ctx)
    app.on_response_prepare.append(name_server)
    return app
