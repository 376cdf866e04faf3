"""What every role's ``/metrics`` says besides its component's own: the unexpected exceptions the
process logged, and its broker connection."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

import eventlog

from .handlers import HandlerLatency

__all__ = ["UnhandledCollector", "BrokerCollector", "observe_transport"]

#: Components whose series exist (at 0) before their first exception, so that a rate is defined.
COMPONENTS = ("token_api", "portal", "controller", "cluster_manager", "journal", "rpc", "worker", "edge",
              "wiring", "loop")


class UnhandledCollector(Collector):
    """``switchboard_unhandled_exceptions_total{component}``: exceptions nothing expected, logged
    once where they were caught (:meth:`eventlog.EventLog.exception`), since the process started."""

    def collect(self) -> Iterator[Metric]:
        counts = dict.fromkeys(COMPONENTS, 0) | eventlog.unhandled.counts()
        family = CounterMetricFamily("switchboard_unhandled_exceptions",
                                     "Unexpected exceptions logged, by component", labels=["component"])
        for component, count in sorted(counts.items()):
            family.add_metric([component], count)
        yield family


class _Link(Protocol):
    @property
    def connected(self) -> bool: ...


class BrokerCollector(Collector):
    """``switchboard_broker_connected``: 1 while the role's transport is connected to the broker
    (the in-process transport of ``switchboard up`` always is), and how often it reconnected."""

    def __init__(self, transport: _Link) -> None:
        self.transport = transport

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("switchboard_broker_connected", "1 while connected to the broker",
                                value=1 if self.transport.connected else 0)
        yield CounterMetricFamily("switchboard_broker_reconnects", "Broker connections restored after a loss",
                                  value=getattr(self.transport, "reconnects", 0))


class _Observed(_Link, Protocol):
    on_handled: Callable[[str, float], None] | None


def observe_transport(registry: CollectorRegistry, transport: _Observed) -> None:
    """Export the broker connection of ``transport`` and time the RPC requests its services handle
    (``switchboard_rpc_handler_seconds{method}``) on ``registry``."""
    registry.register(BrokerCollector(transport))
    transport.on_handled = HandlerLatency(registry).observe
