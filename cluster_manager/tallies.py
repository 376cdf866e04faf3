"""Counts a cluster-manager node keeps for ``/metrics`` (:mod:`cluster_manager.observe`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["ManagerTallies"]


@dataclass
class ManagerTallies:
    """Since the process started, across promotions; written by the reaper and the failover only."""

    #: Workers removed from the registry, by reason (``quit``, ``timeout``, ``connection_lost``, …).
    workers_removed: Counter[str] = field(default_factory=Counter)
    #: Tasks of lost workers, by outcome: ``handed_over`` to a live worker, or ``failed`` after
    #: ``failover_attempts``.
    failovers: Counter[str] = field(default_factory=Counter)

    def removed(self, reason: str) -> None:
        self.workers_removed[reason] += 1
