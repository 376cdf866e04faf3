"""Typed keys of what a token API application holds."""

from __future__ import annotations

from aiohttp import web

from edge import AddressRateLimiter, TrustedProxies
from rpc import Transport

from .auth import Authenticator
from .metrics import Metrics
from .settings import TokenApiSettings
from .store_cache import CachedRoomStore
from .tokens import TokenMinter

__all__ = ["SETTINGS", "TRANSPORT", "CLUSTER_NAME", "STORE", "AUTHENTICATOR", "MINTER", "METRICS", "TRUSTED_PROXIES",
           "MINT_LIMITER"]

SETTINGS = web.AppKey("settings", TokenApiSettings)
TRANSPORT = web.AppKey("transport", Transport)
CLUSTER_NAME = web.AppKey("cluster_name", str)
STORE = web.AppKey("store", CachedRoomStore)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
MINTER = web.AppKey("minter", TokenMinter)
METRICS = web.AppKey("metrics", Metrics)
TRUSTED_PROXIES = web.AppKey("trusted_proxies", TrustedProxies)
MINT_LIMITER = web.AppKey("mint_limiter", AddressRateLimiter)
