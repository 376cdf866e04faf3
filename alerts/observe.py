"""The alert service's Prometheus metrics: alerts sent / failed / dead-lettered by sink, dead
letters stored by origin, faults received by kind."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from .tallies import AlertTallies

__all__ = ["AlertCollector", "register_alert_metrics"]

_COUNTERS = (
    ("sent", "switchboard_alerts_sent", "Alerts a sink took", "sink"),
    ("failed", "switchboard_alerts_failed", "Failed alert delivery attempts", "sink"),
    ("dead_lettered", "switchboard_alerts_dead_lettered", "Alerts no attempt delivered (kept as dead letters)", "sink"),
    ("stored", "switchboard_dead_letters_stored", "Dead letters stored", "origin"),
    ("faults", "switchboard_faults_received", "Faults the alert service received", "kind"),
)


class AlertCollector(Collector):
    def __init__(self, tallies: AlertTallies) -> None:
        self.tallies = tallies

    def collect(self) -> Iterator[Metric]:
        for attr, name, text, label in _COUNTERS:
            family = CounterMetricFamily(name, text, labels=[label])
            for key, value in sorted(getattr(self.tallies, attr).items()):
                family.add_metric([key], value)
            yield family


def register_alert_metrics(registry: CollectorRegistry, tallies: AlertTallies) -> None:
    registry.register(AlertCollector(tallies))
