"""A webhook event as the room's state keeps it until it is delivered, and the room events that
make one (pure: :func:`conference_controller.machine.apply` calls :func:`hook_of`)."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["HOOK_TYPES", "HookEvent", "HookOutbox", "event_id"]

HOOK_TYPES = (
    "room.started", "room.finished",
    "participant.joined", "participant.left", "participant.held", "participant.resumed",
    "stream.published", "stream.unpublished",
)


class HookEvent(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    #: The room's hook sequence number: 1, 2, … in the order the room's events were decided.
    seq: int
    type: str
    data: dict[str, Any] = {}


class HookOutbox(msgspec.Struct, kw_only=True):
    """A room's webhook events not yet delivered (or given up), oldest first."""

    #: Names this run of the room (a room id may be used again after the room finished): event ids
    #: are ``<instance>-<seq>``.
    instance: str = ""
    last_seq: int = 0
    pending: list[HookEvent] = []
    #: Events dropped from a full outbox (never delivered).
    dropped: int = 0


def event_id(instance: str, seq: int) -> str:
    return f"{instance}-{seq}"


def body(room: str, instance: str, event: HookEvent) -> dict[str, Any]:
    """The JSON body the application gets (the same bytes on every attempt)."""
    return {"id": event_id(instance, event.seq), "type": event.type, "room": room, "seq": event.seq,
            "data": event.data}
