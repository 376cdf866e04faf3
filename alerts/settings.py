"""Settings of alerts and dead letters (section ``alerts``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = ["AlertSettings", "SinkSettings", "DeadLetterSettings"]

_Positive = Annotated[float, msgspec.Meta(gt=0, le=3600)]


class SinkSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Name shown in metrics, logs and dead letters.
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    #: ``slack`` (Slack's incoming-webhook JSON: ``{"text", "blocks"}``), ``json`` (the alert and its
    #: faults as JSON) or ``log`` (one log line per alert).
    kind: Literal["slack", "json", "log"]
    #: Webhook URL (``slack`` and ``json``).  A secret: logs and admin answers show its host only.
    url: str = ""
    #: Seconds one delivery attempt may take.
    timeout: _Positive = 5.0

    def __post_init__(self) -> None:
        if self.kind != "log" and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"alert sink {self.name!r} ({self.kind}) needs an http(s) url")


class DeadLetterSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Most dead letters kept (the oldest go first); in cluster mode the queue's ``x-max-length``.
    max_count: Annotated[int, msgspec.Meta(gt=0, le=100_000)] = 1000
    #: Largest dead letter kept, bytes (a bigger message is kept cut to its description).
    max_bytes: Annotated[int, msgspec.Meta(gt=0, le=10_000_000)] = 65536
    #: Cluster mode: the dead-letter exchange and its quorum queue are named
    #: ``<cluster_manager.name>.<suffix>``.
    suffix: Annotated[str, msgspec.Meta(min_length=1)] = "dead-letters"
    #: Seconds a dead-letter store operation (publish, browse) may take on the broker.
    broker_timeout: _Positive = 5.0


class AlertSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Where alerts go.  Each: ``{name, kind, url, timeout}`` (``SWITCHBOARD_ALERTS__SINKS`` takes a
    #: JSON list).  Default: the log only.
    sinks: list[SinkSettings] = msgspec.field(default_factory=lambda: [SinkSettings(name="log", kind="log")])
    #: Seconds from a group's first fault to its alert: faults of one group (a lost worker and its
    #: failover, repeats of one failure) that come within it go out as one alert with a count.
    group_window: _Positive = 5.0
    #: Open groups at most; one more sends the oldest early.
    max_groups: Annotated[int, msgspec.Meta(gt=0, le=10_000)] = 100
    #: Faults listed in one alert at most (the count includes the rest).
    max_faults_listed: Annotated[int, msgspec.Meta(gt=0, le=1000)] = 10
    #: Delivery attempts per alert and sink (the first included) before it becomes a dead letter.
    attempts: Annotated[int, msgspec.Meta(gt=0, le=20)] = 4
    #: Seconds before an alert's second attempt; each next wait doubles (exponential backoff).
    backoff_initial: _Positive = 0.5
    #: Longest wait between two attempts of an alert, seconds (the doubling stops there).
    backoff_max: _Positive = 30.0
    #: Random seconds, up to this, added to each wait between an alert's attempts.
    backoff_jitter: Annotated[float, msgspec.Meta(ge=0, le=60)] = 0.5
    #: Alert deliveries in progress at most (a sink that hangs cannot pile up tasks): beyond, an
    #: alert becomes a dead letter at once.
    max_deliveries: Annotated[int, msgspec.Meta(gt=0, le=10_000)] = 100
    #: Faults a process sends to the alert service at once at most (beyond: logged and dropped).
    max_reports_in_flight: Annotated[int, msgspec.Meta(gt=0, le=10_000)] = 100
    #: Dead letters: what still fails after its retries.
    dead_letters: DeadLetterSettings = msgspec.field(default_factory=DeadLetterSettings)
