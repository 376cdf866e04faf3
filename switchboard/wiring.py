"""The one place that builds each role from the settings.

Embedded mode and cluster mode differ only in the transport: :class:`EmbeddedCluster` puts token
API, cluster manager, one controller and one portal on one in-process :class:`~rpc.LocalBroker`;
:func:`build_role` builds one role on a RabbitMQ transport for a process of its own.
Components start in dependency order and stop in reverse (like ``AppRunner.setup``/``cleanup``).
Every role is built from keys that were checked (:mod:`switchboard.keys`): a cluster role without
the keys it needs, or with a weak one, is refused before it connects anywhere.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any, Protocol

import msgspec

from alerts import Alert, AlertService, FaultReporter, LocalDeadLetters, alerts_service_name
from alerts.observe import register_alert_metrics
from alerts.service import DEAD_LETTER_METHODS
from cluster_manager import ClusterManager
from contracts.cluster import new_worker_id
from cluster_manager.node import ManagerNode
from cluster_manager import ADMIN_METHODS, admin_rpc_routes
from conference_controller import Controller
from cluster_manager.observe import manager_readiness, manager_registry
from conference_controller.observe import ControllerCollector, controller_readiness, controller_registry
from credentials import AdminKeys, Keyring
from observability import ObserveServer, observe_transport
from portal import Portal
from rpc import LocalBroker, Transport, create_transport
from token_api import TokenApi, rooms_service_name
from token_api.app_keys import METRICS
from token_api.management import ManagementRelay, management_routes

from .config import ConfigError, Settings
from .eventlogs import WiringLog
from .journals import build_journal
from .keys import EmbeddedKeys, check_role_keys, embedded_keys

__all__ = ["EmbeddedCluster", "build_role", "build_observer", "build_alerts", "ROLES", "Component"]

log = WiringLog()

ROLES = ("cluster-manager", "token-api", "portal", "controller")


class Component(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def _export_controller(components: dict[str, Component]) -> None:
    """The embedded controller has no port of its own: its rooms, participants, outboxes and journal
    are on the token API's ``/metrics``, which stands for the process."""
    api, controller = components["token-api"], components["controller"]
    if isinstance(api, TokenApi) and isinstance(controller, Controller):
        api.app[METRICS].registry.register(ControllerCollector(controller))


async def _stop(role: str, component: Component) -> None:
    """Stop one component of several: a failure is logged, and the others are stopped still."""
    try:
        await component.stop()
    except Exception:
        log.exception("stop_failed", role=role)


def build_role(role: str, settings: Settings, transport: Transport, *, embedded: bool = False) -> Component:
    """One role's component on ``transport`` (not started).

    :raises ConfigError: the role lacks a key it needs, a key is weak, or a setting cannot work.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose from {', '.join(ROLES)}")
    check_role_keys(role, settings)
    reporter = FaultReporter(transport, settings.cluster_manager.name,
                             max_in_flight=settings.alerts.max_reports_in_flight)
    # A handler's unexpected exception is a fault (the alert service's own are only logged).
    transport.on_failed = reporter.handler_failed
    try:
        return _build(role, settings, transport, embedded, reporter)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _build(role: str, settings: Settings, transport: Transport, embedded: bool, alerts: FaultReporter) -> Component:
    admin_keys = AdminKeys(settings.keys.admin_keys)
    if role == "cluster-manager":
        if embedded:
            return ClusterManager(transport, settings.cluster_manager, admin_keys=admin_keys, alerts=alerts)
        # A process of its own is one of any number of managers: active, or a hot standby.
        return ManagerNode(transport, settings.cluster_manager, admin_keys=admin_keys, alerts=alerts)
    if role == "token-api":
        alert_service = alerts_service_name(settings.cluster_manager.name)
        routes = admin_rpc_routes(transport, settings.cluster_manager.name,
                                  allowed_methods=ADMIN_METHODS | DEAD_LETTER_METHODS,
                                  services={method: alert_service for method in DEAD_LETTER_METHODS})
        relay = ManagementRelay(transport, settings.cluster_manager.name, admin_keys.own(),
                                settings.token_api.management)
        routes += management_routes(relay)
        return TokenApi(transport, settings.token_api, Keyring(settings.keys.keys),
                        cluster_name=settings.cluster_manager.name, extra_routes=routes)
    if role == "portal":
        return Portal(transport, settings.portal, Keyring(settings.keys.keys), settings.worker)
    return Controller(transport, settings.controller, settings.worker, admin_keys=admin_keys,
                      rooms_service=rooms_service_name(settings.worker.cluster_name),
                      journal=build_journal(settings, embedded=embedded), own_journal=True, adopt_rooms=embedded,
                      alerts=alerts, webhooks=settings.webhooks)


def build_observer(role: str, settings: Settings, component: Component) -> ObserveServer | None:
    """The ``/metrics``, ``/healthz`` and ``/readyz`` port of a cluster manager or a controller in a
    process of its own (``None``: another role, which serves its own, or none configured).  The
    embedded server has none: its token API's ``/healthz``, ``/readyz`` and ``/metrics`` stand for it."""
    if role == "cluster-manager" and isinstance(component, ManagerNode):
        node = component
        server = ObserveServer(settings.cluster_manager.observe, manager_registry(node),
                               lambda: manager_readiness(node))
    elif role == "controller" and isinstance(component, Controller):
        controller = component
        server = ObserveServer(settings.controller.observe, controller_registry(controller),
                               lambda: controller_readiness(controller))
    else:
        return None
    if not server.enabled:
        return None
    observe_transport(server.registry, component.transport)
    return server


def build_alerts(settings: Settings, transport: Transport, component: Component | None = None, *,
                 embedded: bool = False) -> AlertService:
    """The alert service a cluster-manager process (or the embedded server) runs beside its manager:
    dead letters in memory when embedded, else on the broker's dead-letter queue.  With a
    ``ManagerNode``, only the active node reports its own broker link's faults."""
    admin_keys = AdminKeys(settings.keys.admin_keys)
    cluster = settings.cluster_manager.name
    store: Any
    if embedded or not settings.rpc.broker_url:
        store = LocalDeadLetters(settings.alerts.dead_letters.max_count)
    else:
        from alerts.amqp_store import AmqpDeadLetters

        store = AmqpDeadLetters(settings.rpc.broker_url, cluster, settings.alerts.dead_letters,
                                node_id=transport.node_id)
    leads = component.leads if isinstance(component, ManagerNode) else (lambda: True)
    fault_log = component.fault_log if isinstance(component, (ManagerNode, ClusterManager)) else None

    def on_alert(alert: Alert) -> None:
        # On the status page's timeline, when this process's manager is the one it reads (the active
        # one: always when embedded; in a cluster, the broker picks each single-active consumer alone).
        if fault_log is not None:
            fault_log.record("alert", severity=alert.severity, count=alert.count, group=alert.group,
                             summary=alert.title)

    return AlertService(transport, settings.alerts, cluster=cluster, store=store, admin_keys=admin_keys, leads=leads,
                        on_alert=on_alert)


def role_transport(role: str, settings: Settings) -> Transport:
    """The RabbitMQ transport of a role running in a process of its own."""
    if not settings.rpc.broker_url:
        raise ConfigError(f"switchboard {role} runs in cluster mode: give --broker amqp://… (or rpc.broker_url)")
    return create_transport(new_worker_id(role), settings.rpc)


class EmbeddedCluster:
    """Token API, cluster manager, one controller and one portal in this process.

    Keys that are not configured come from the state file (made on first start); see
    :func:`switchboard.keys.embedded_keys`, which raises ``ConfigError`` for a weak key.
    """

    def __init__(self, settings: Settings, *, roundtrip: bool | None = None) -> None:
        #: The keys in use: configured ones, the rest from the state file.
        self.keys: EmbeddedKeys = embedded_keys(settings)
        settings = self.keys.settings
        # One process: no previous workers can exist, so there is no freshman window to wait out.
        self.settings = msgspec.structs.replace(
            settings, cluster_manager=msgspec.structs.replace(settings.cluster_manager, initial_time=0.0)
        )
        self.broker = LocalBroker(roundtrip=settings.rpc.local_roundtrip if roundtrip is None else roundtrip)
        self.components: dict[str, Any] = {}
        #: What :meth:`stop` undoes: every component started and every transport, in reverse.
        self._running: AsyncExitStack | None = None
        self._stopped = False

    async def start(self) -> None:
        """Build every component (a setting that cannot work is refused before anything runs),
        then start them in dependency order.  A failed start stops what had started, in reverse,
        closes every transport and raises its error; a cluster that failed to start or was
        stopped cannot be started again."""
        if self._stopped:
            raise RuntimeError("this EmbeddedCluster was stopped; make a new one")
        if self._running is not None:
            return
        try:
            async with AsyncExitStack() as undo:
                built: list[tuple[str, Component]] = []
                for role in ("cluster-manager", "token-api", "controller", "portal"):
                    transport = self.broker.transport(new_worker_id(role), call_timeout=self.settings.rpc.call_timeout)
                    undo.push_async_callback(transport.close)
                    built.append((role, build_role(role, self.settings, transport, embedded=True)))
                _export_controller(dict(built))
                for role, component in built:
                    await component.start()
                    undo.push_async_callback(_stop, role, component)
                    self.components[role] = component
                manager = self.components["cluster-manager"]
                alerts = build_alerts(self.settings, manager.transport, manager, embedded=True)
                # The token API's /metrics stands for the whole embedded server.
                register_alert_metrics(self.components["token-api"].app[METRICS].registry, alerts.tallies)
                await alerts.start()
                undo.push_async_callback(_stop, "alerts", alerts)
                self.components["alerts"] = alerts
                self._running = undo.pop_all()
        except BaseException:
            self._stopped = True
            raise

    async def stop(self) -> None:
        """Stop every component in reverse order, then close the transports.  Idempotent."""
        self._stopped = True
        running, self._running = self._running, None
        if running is not None:
            await running.aclose()

    @property
    def alerts(self) -> AlertService:
        return self.components["alerts"]  # type: ignore[no-any-return]

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
    def service_key(self) -> str | None:
        """A key ``POST /token`` accepts as ``X-Service-Key`` (``None``: the API is open)."""
        return self.keys.service_key if self.settings.token_api.require_service_key else None

    @property
    def admin_key(self) -> str:
        key = self.keys.admin_key
        assert key is not None  # embedded_keys always provides one
        return key

    @property
    def service_headers(self) -> dict[str, str]:
        """Headers that authenticate a token API call (``POST /token``, ``/v1/rooms*``)."""
        key = self.service_key
        return {"X-Service-Key": key} if key else {}

    @property
    def admin_headers(self) -> dict[str, str]:
        """Headers that authenticate an admin call (``POST /admin/rpc``)."""
        return {"Authorization": f"Bearer {self.admin_key}"}

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
