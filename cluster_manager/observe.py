"""What a cluster-manager node's ``/metrics`` and ``/readyz`` say (:mod:`observability`).

Read from the node when scraped: whether it is the active one, its epoch, the workers of the
registry it leads (the active one only, so that a sum over nodes counts each worker once), and its
:class:`~cluster_manager.tallies.ManagerTallies`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from observability import Readiness, component_registry

if TYPE_CHECKING:
    from .node import ManagerNode

__all__ = ["ManagerCollector", "manager_registry", "manager_readiness"]


class ManagerCollector(Collector):
    def __init__(self, node: ManagerNode) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        node = self.node
        manager = node.manager
        yield GaugeMetricFamily("switchboard_cluster_manager_active", "1 on the active manager, 0 on a standby",
                                value=1 if manager is not None else 0)
        epoch = (manager.epoch or 0) if manager is not None else node.replica.epoch
        yield GaugeMetricFamily("switchboard_cluster_manager_epoch",
                                "Leader epoch: the active one's own, a standby's last seen", value=epoch)
        workers = GaugeMetricFamily("switchboard_cluster_manager_workers",
                                    "Registered workers by purpose and state (active manager only)",
                                    labels=["purpose", "state"])
        if manager is not None:
            for purpose, scheduler in manager.registry.schedulers.items():
                states = Counter("drained" if view["drained"] else str(view["state"])
                                 for view in scheduler.workers_view())
                for state, count in sorted(states.items()):
                    workers.add_metric([purpose, state], count)
        yield workers
        yield CounterMetricFamily("switchboard_cluster_manager_promotions", "Times this node became the active one",
                                  value=node.promotions)
        removed = CounterMetricFamily("switchboard_cluster_manager_workers_removed",
                                      "Workers removed from the registry, by reason", labels=["reason"])
        for reason, count in sorted(node.tallies.workers_removed.items()):
            removed.add_metric([reason], count)
        yield removed
        failovers = CounterMetricFamily("switchboard_cluster_manager_failovers",
                                        "Tasks of lost workers handed over (or not), by outcome", labels=["outcome"])
        for outcome in ("handed_over", "failed"):
            failovers.add_metric([outcome], node.tallies.failovers[outcome])
        yield failovers


def manager_registry(node: ManagerNode) -> CollectorRegistry:
    registry = component_registry()
    registry.register(ManagerCollector(node))
    return registry


def manager_readiness(node: ManagerNode) -> Readiness:
    """Ready once started, as the active manager or as a standby (the body says which): a standby
    is ready to take over, which is what it is there for."""
    details: dict[str, Any] = {"node": node.transport.node_id, "role": node.role}
    if not node.serving:
        return Readiness.not_ready("not started, or stopped", **details)
    manager = node.manager
    if manager is not None:
        details["epoch"] = manager.epoch
    return Readiness.serving(**details)
