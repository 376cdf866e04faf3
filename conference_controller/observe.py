"""What a controller's ``/metrics`` and ``/readyz`` say (:mod:`observability`).

Gauges are read from the controller when scraped (nothing on the hot path); the counters are the
:class:`Tallies` the controller keeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from observability import Readiness, component_registry

from .state import ParticipantState

if TYPE_CHECKING:
    from .controller import Controller

__all__ = ["Tallies", "ControllerCollector", "controller_registry", "controller_readiness", "oldest_unacked_at"]


@dataclass
class Tallies:
    """Counts since the process started; only the controller writes them."""

    #: Records handed to the journal, and writes it lost (the room was unloaded and is rebuilt).
    journal_appends: int = 0
    journal_failures: int = 0
    #: Rooms rebuilt here from the journal: taken over after a controller failed, migrated in by a
    #: drain, or reloaded after a lost write.
    rooms_recovered: int = 0


def oldest_unacked_at(participant: ParticipantState) -> float | None:
    """When the oldest notification the participant has not acknowledged was given (``None``: none)."""
    outbox = participant.outbox
    index = outbox.acked + 1 - outbox.first
    if not outbox.messages or index >= len(outbox.messages):
        return None
    return outbox.messages[max(0, index)].at


class ControllerCollector(Collector):
    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def collect(self) -> Iterator[Metric]:
        c = self.controller
        yield GaugeMetricFamily("switchboard_controller_rooms", "Rooms loaded here", value=len(c.rooms))
        yield GaugeMetricFamily("switchboard_controller_participants", "Participants in rooms loaded here",
                                value=len(c.participants))
        unacked, oldest = 0, None
        for room in c.rooms.values():
            for participant in room.state.participants.values():
                unacked += participant.outbox.last_seq - participant.outbox.acked
                at = oldest_unacked_at(participant)
                if at is not None and (oldest is None or at < oldest):
                    oldest = at
        yield GaugeMetricFamily("switchboard_controller_outbox_unacked",
                                "Notifications given to participants and not acknowledged yet", value=unacked)
        yield GaugeMetricFamily("switchboard_controller_outbox_oldest_unacked_seconds",
                                "Age of the oldest notification not acknowledged (0: none)",
                                value=0.0 if oldest is None else max(0.0, c.clock() - oldest))
        yield GaugeMetricFamily("switchboard_controller_journal_pending_records",
                                "Journal records appended and not yet durable (the journal's lag)",
                                value=sum(len(room.pending) for room in c.rooms.values()))
        yield CounterMetricFamily("switchboard_controller_journal_appends", "Records handed to the journal",
                                  value=c.tallies.journal_appends)
        yield CounterMetricFamily("switchboard_controller_journal_failures",
                                  "Journal writes lost (the room is unloaded and rebuilt)",
                                  value=c.tallies.journal_failures)
        yield CounterMetricFamily("switchboard_controller_rooms_recovered",
                                  "Rooms rebuilt here from the journal (failover, migration, reload)",
                                  value=c.tallies.rooms_recovered)
        hooks = c.webhooks.tallies
        yield GaugeMetricFamily("switchboard_controller_webhooks_pending",
                                "Webhook events of rooms loaded here not yet delivered or given up",
                                value=sum(len(room.state.hooks.pending) for room in c.rooms.values()))
        yield CounterMetricFamily("switchboard_controller_webhooks_sent", "Webhook deliveries an endpoint took",
                                  value=hooks.sent)
        yield CounterMetricFamily("switchboard_controller_webhooks_failed", "Failed webhook delivery attempts",
                                  value=hooks.failed)
        yield CounterMetricFamily("switchboard_controller_webhooks_dead_lettered",
                                  "Webhook deliveries no attempt got through (kept as dead letters)",
                                  value=hooks.dead_lettered)
        yield GaugeMetricFamily("switchboard_controller_broker_connected", "1 while connected to the broker",
                                value=1 if c.transport.connected else 0)


def controller_registry(controller: Controller) -> CollectorRegistry:
    registry = component_registry()
    registry.register(ControllerCollector(controller))
    return registry


def controller_readiness(controller: Controller) -> Readiness:
    """Ready once started and joined to the cluster, while its RPC service is up and the broker
    connected."""
    details = {"worker_id": str(controller.worker_id)}
    if not controller.serving:
        return Readiness.not_ready("not started, or stopped", **details)
    if not controller.transport.connected:
        return Readiness.not_ready("broker connection lost", **details)
    if controller.worker.manager_state is None:
        return Readiness.not_ready("not joined to the cluster", **details)
    return Readiness.serving(**details)
