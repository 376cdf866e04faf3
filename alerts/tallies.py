"""Counts of the alert service, read by its Prometheus collector (:mod:`alerts.observe`)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["AlertTallies"]


@dataclass
class AlertTallies:
    #: Alerts a sink took, by sink.
    sent: Counter[str] = field(default_factory=Counter)
    #: Failed delivery attempts, by sink.
    failed: Counter[str] = field(default_factory=Counter)
    #: Alerts no attempt delivered (kept as dead letters), by sink.
    dead_lettered: Counter[str] = field(default_factory=Counter)
    #: Dead letters stored, by origin (``alert``, ``message``).
    stored: Counter[str] = field(default_factory=Counter)
    #: Faults received.
    faults: Counter[str] = field(default_factory=Counter)
