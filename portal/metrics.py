"""Prometheus metrics of one portal (a registry per portal, served at ``GET /metrics``), with the
process, GC and unexpected-exception metrics of every role (:func:`observability.component_registry`)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from observability import component_registry

__all__ = ["PortalMetrics", "LabelledCounter"]


class LabelledCounter:
    """A counter with labels whose children are looked up once: ``labels()`` costs microseconds
    (a lock, a tuple, a dict) and the hot path counts every request and notification."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self._children: dict[tuple[str, ...], Counter] = {}

    def inc(self, *labels: str) -> None:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self.counter.labels(*labels)
        child.inc()


class PortalMetrics:
    def __init__(self) -> None:
        self.registry = component_registry()
        self.sockets = Gauge(
            "switchboard_portal_connected_sockets", "Socket.IO connections open", registry=self.registry
        )
        self.participants = Gauge(
            "switchboard_portal_participants", "Participants with a session here", registry=self.registry
        )
        self.logins = LabelledCounter(Counter(
            "switchboard_portal_logins", "Logins by result and reason", ["result", "reason"], registry=self.registry
        ))
        self.relogins = LabelledCounter(Counter(
            "switchboard_portal_relogins", "Relogins by result and reason", ["result", "reason"],
            registry=self.registry,
        ))
        self.requests = LabelledCounter(Counter(
            "switchboard_portal_requests", "Client requests by event and result", ["event", "result"],
            registry=self.registry,
        ))
        self.events = LabelledCounter(Counter(
            "switchboard_portal_events_relayed", "Notifications emitted to clients by event", ["event"],
            registry=self.registry,
        ))
