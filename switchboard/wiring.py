"""The one place that builds each role from the settings.

Embedded mode and cluster mode differ only in the transport: :class:`EmbeddedCluster` puts token
API, cluster manager, one controller and one portal on one in-process :class:`~rpc.LocalBroker`;
:func:`build_role` builds one role on a RabbitMQ transport for a process of its own.
Components start in dependency order and stop in reverse (like ``AppRunner.setup``/``cleanup``).
"""

from __future__ import annotations

import logging
import socket
import uuid
from typing import Any, Protocol

import msgspec

from cluster_manager import ClusterManager
from cluster_manager import ADMIN_METHODS, admin_rpc_routes
from conference_controller import Controller
from credentials import Keyring
from portal import Portal
from rpc import LocalBroker, Transport, create_transport
from token_api import TokenApi

from .config import Settings

__all__ = ["EmbeddedCluster", "build_role", "ROLES", "Component"]

log = logging.getLogger("switchboard.wiring")

ROLES = ("cluster-manager", "token-api", "portal", "controller")


class Component(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def _node_id(role: str) -> str:
    return f"{role}-{uuid.uuid4().hex[:12]}@{socket.gethostname()}"


def build_role(role: str, settings: Settings, transport: Transport) -> Component:
    """One role's component on ``transport`` (not started)."""
    keyring = Keyring(settings.keys.keys)
    if role == "cluster-manager":
        return ClusterManager(transport, settings.cluster_manager)
    if role == "token-api":
        routes = admin_rpc_routes(transport, settings.cluster_manager.name, allowed_methods=ADMIN_METHODS)
        return TokenApi(transport, settings.token_api, keyring, cluster_name=settings.cluster_manager.name,
                        extra_routes=routes)
    if role == "portal":
        return Portal(transport, settings.portal, keyring, settings.worker)
    if role == "controller":
        return Controller(transport, settings.controller, settings.worker)
    raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")


def role_transport(role: str, settings: Settings) -> Transport:
    """The RabbitMQ transport of a role running in a process of its own."""
    if not settings.rpc.broker_url:
        raise ValueError(f"switchboard {role} runs in cluster mode: give --broker amqp://… (or rpc.broker_url)")
    return create_transport(_node_id(role), settings.rpc)


class EmbeddedCluster:
    """Token API, cluster manager, one controller and one portal in this process."""

    def __init__(self, settings: Settings, *, roundtrip: bool | None = None) -> None:
        # One process: no previous workers can exist, so there is no freshman window to wait out.
        self.settings = msgspec.structs.replace(
            settings, cluster_manager=msgspec.structs.replace(settings.cluster_manager, initial_time=0.0)
        )
        self.broker = LocalBroker(roundtrip=settings.rpc.local_roundtrip if roundtrip is None else roundtrip)
        self.components: dict[str, Any] = {}
        self._started: list[tuple[str, Component, Transport]] = []

    async def start(self) -> None:
        try:
            for role in ("cluster-manager", "token-api", "controller", "portal"):
                transport = self.broker.transport(_node_id(role), call_timeout=self.settings.rpc.call_timeout)
                component = build_role(role, self.settings, transport)
                await component.start()
                self.components[role] = component
                self._started.append((role, component, transport))
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        while self._started:
            role, component, transport = self._started.pop()
            try:
                await component.stop()
            except Exception:
                log.exception("stopping %s failed", role)
            await transport.close()

    @property
    def token_api(self) -> Any:
        return self.components["token-api"]

    @property
    def portal(self) -> Any:
        return self.components["portal"]

    @property
    def controller(self) -> Any:
        return self.components["controller"]

    @property
    def cluster_manager(self) -> Any:
        return self.components["cluster-manager"]

    @property
    def service_headers(self) -> dict[str, str]:
        """Headers that authenticate a token API call (``POST /token``, ``/v1/rooms*``)."""
        return {}

    @property
    def admin_headers(self) -> dict[str, str]:
        """Headers that authenticate an admin call (``POST /admin/rpc``)."""
        return {}

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.token_api.port}"

    @property
    def portal_url(self) -> str:
        return f"http://127.0.0.1:{self.portal.port}"

    async def __aenter__(self) -> EmbeddedCluster:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
