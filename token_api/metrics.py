"""Prometheus metrics of one token API, on a registry of its own (several apps may share a process),
with the process, GC and unexpected-exception metrics of every role (:func:`observability.component_registry`)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from observability import component_registry

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]


class Metrics:
    def __init__(self) -> None:
        self.registry = component_registry()
        self.tokens_minted = Counter(
            "switchboard_tokens_minted",
            "Join tokens issued, by endpoint.",
            ["endpoint"],
            registry=self.registry,
        )
        self.scheduling_failures = Counter(
            "switchboard_token_scheduling_failures",
            "Token requests refused because no portal could be reserved, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "switchboard_token_api_auth_failures",
            "Refused authentications, by reason.",
            ["reason"],
            registry=self.registry,
        )
        self.schedule_seconds = Histogram(
            "switchboard_token_schedule_seconds",
            "Time to reserve a portal for a token, retries included.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
