"""Typed keys of what a token API application holds."""

from __future__ import annotations

from aiohttp import web

from rpc import Transport

from .auth import Authenticator
from .metrics import Metrics
from .settings import TokenApiSettings
from .store import RoomStore
from .tokens import TokenMinter

__all__ = ["SETTINGS", "TRANSPORT", "CLUSTER_NAME", "STORE", "AUTHENTICATOR", "MINTER", "METRICS"]

SETTINGS = web.AppKey("settings", TokenApiSettings)
TRANSPORT = web.AppKey("transport", Transport)
CLUSTER_NAME = web.AppKey("cluster_name", str)
STORE = web.AppKey("store", RoomStore)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
MINTER = web.AppKey("minter", TokenMinter)
METRICS = web.AppKey("metrics", Metrics)
