"""Health and metrics endpoints of a component: ``/metrics``, ``/healthz`` and ``/readyz`` on a small
HTTP port of its own (loopback by default; off unless a port is configured)."""

from .handlers import HandlerLatency
from .readiness import Readiness
from .server import ObserveServer, component_registry
from .settings import ObserveSettings

__all__ = ["HandlerLatency", "ObserveServer", "ObserveSettings", "Readiness", "component_registry"]
