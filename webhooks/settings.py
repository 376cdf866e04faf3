"""Settings of webhooks (section ``webhooks``)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from .events import HOOK_TYPES

__all__ = ["EndpointSettings", "WebhookSettings"]

_Positive = Annotated[float, msgspec.Meta(gt=0, le=3600)]


class EndpointSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Name shown in logs, metrics and dead letters.
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    #: The application's URL (http or https); events are POSTed to it as JSON.
    url: str
    #: Key of the HMAC-SHA256 signature of each delivery (the application holds the same); checked
    #: like every key (32+ characters, not an example, some variety).  Never logged or shown.
    secret: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    #: Event types sent to this URL (``room.started``, ``participant.joined``, …); empty: all.
    events: list[str] = []
    #: Seconds one delivery attempt may take.
    timeout: _Positive = 5.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"webhook endpoint {self.name!r} needs an http(s) url")
        unknown = sorted(set(self.events) - set(HOOK_TYPES))
        if unknown:
            raise ValueError(f"webhook endpoint {self.name!r}: unknown event type(s) {', '.join(unknown)}; "
                             f"choose from {', '.join(HOOK_TYPES)}")

    def wants(self, hook_type: str) -> bool:
        return not self.events or hook_type in self.events


class WebhookSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: The application's URLs, each ``{name, url, secret, events, timeout}``: a name for logs and dead
    #: letters, the http(s) URL, the HMAC key (a key like any other: 32+ characters), the event types it wants
    #: (empty: all; docs/webhooks.md) and the seconds one attempt may take (default 5).
    #: ``SWITCHBOARD_WEBHOOKS__ENDPOINTS`` takes a JSON list.  Default: none (no webhooks).
    endpoints: list[EndpointSettings] = []
    #: Delivery attempts per event and endpoint (the first included) before it becomes a dead letter.
    attempts: Annotated[int, msgspec.Meta(gt=0, le=20)] = 5
    #: Seconds before the second attempt; each next wait doubles (exponential backoff).
    backoff_initial: _Positive = 0.5
    #: Longest wait between two attempts, seconds (the doubling stops there).
    backoff_max: _Positive = 30.0
    #: Random seconds, up to this, added to each wait (receivers are not hit in step).
    backoff_jitter: Annotated[float, msgspec.Meta(ge=0, le=60)] = 0.5
    #: Undelivered events a room keeps at most (in its state and journal); beyond, the oldest is
    #: dropped (a gap in ``seq``, logged), so an application that stays down cannot grow a room
    #: without bound.
    max_pending_per_room: Annotated[int, msgspec.Meta(gt=0, le=100_000)] = 1000
    #: Rooms whose events are being delivered at once at most, per controller; a room beyond waits
    #: for a free slot (its events stay pending in its state).
    max_rooms_in_flight: Annotated[int, msgspec.Meta(gt=0, le=100_000)] = 256

    def __post_init__(self) -> None:
        names = [endpoint.name for endpoint in self.endpoints]
        if len(set(names)) != len(names):
            raise ValueError("webhook endpoint names must be unique")
