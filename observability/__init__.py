"""Health and metrics endpoints of a component: ``/metrics``, ``/healthz`` and ``/readyz`` on a small
HTTP port of its own (loopback by default; off unless a port is configured)."""

from .collectors import BrokerCollector, UnhandledCollector, observe_transport
from .handlers import HandlerLatency
from .readiness import Readiness
from .server import ObserveServer, component_registry
from .settings import ObserveSettings

__all__ = ["BrokerCollector", "HandlerLatency", "ObserveServer", "ObserveSettings", "Readiness", "UnhandledCollector",
           "component_registry", "observe_transport"]
