"""Assembling the token API's :class:`aiohttp.web.Application`."""

from __future__ import annotations

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
from .metrics import Metrics
from .middlewares import cors_middleware, error_middleware
from .placement import PortalScheduler
from .routes import routes
from .service import ROOMS_SERVICE, RoomsService
from .settings import TokenApiSettings
from .store import RoomStore
from .tokens import TokenMinter

__all__ = ["create_app"]

log = logging.getLogger("switchboard.token_api")


async def _rooms_ctx(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    await store.open()
    try:
        handle = await app[TRANSPORT].serve(ROOMS_SERVICE, RoomsService(store))
        try:
            log.info("rooms_served db=%s", store.path)
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

    Its start-up opens the room store (``settings.rooms_db``) and serves the RPC service
    ``rooms`` on ``transport``; its cleanup undoes both.  ``transport`` must be started, and stays
    open (its owner closes it).  ``extra_routes`` are mounted as given (the admin relay, …) and go
    through the same CORS and error middlewares.

    :raises ValueError: the settings cannot work (``require_service_key`` without any key, a
        token lifetime that is not positive, a trusted proxy that is not an address or network).
    """
    if settings.token_lifetime <= 0:
        raise ValueError(f"token_api.token_lifetime must be positive, got {settings.token_lifetime}")
    trusted = TrustedProxies(settings.trusted_proxies, setting="token_api.trusted_proxies")
    metrics = Metrics()
    store = RoomStore(settings.rooms_db, cache_ttl=settings.rooms_cache_ttl)
    portals = PortalScheduler(transport, settings, metrics, cluster_name=cluster_name)
    app = web.Application(
        client_max_size=settings.client_max_size,
        middlewares=[cors_middleware(settings.cors_allowed_origins), error_middleware],
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
    if extra_routes:
        app.add_routes(extra_routes)
    app.cleanup_ctx.append(_rooms_ctx)
    app.on_response_prepare.append(name_server)
    return app
