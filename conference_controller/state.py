"""A room's state as plain data: what the journal rebuilds and :func:`~conference_controller.machine.apply` writes.

Nothing here holds a timer, a sender, a logger or a future, and nothing reads a clock: times are
the ``at`` values the events carried (seconds on the monotonic clock of the controller that wrote
them; a takeover re-bases them, see :class:`~conference_controller.events.TakenOver`).  Every
struct encodes with msgspec, so a snapshot is ``msgspec.msgpack.encode(room)``.
"""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.controller import Permission, PublishInfo, SubscribeInfo
from webhooks.events import HookOutbox

from contracts.rooms import RoomConfig

__all__ = [
    "Limits",
    "Message",
    "Outbox",
    "Ticket",
    "ParticipantState",
    "Track",
    "StreamState",
    "SubscriptionState",
    "TransportState",
    "RoomState",
]


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """The bounds the room was opened with (from the controller's settings), so replay needs no settings."""

    outbox_max_messages: int = 1000
    outbox_max_age: float = 300.0
    dedupe_window: int = 256
    reconnection_timeout: float = 60.0
    ticket_retry_window: float = 30.0
    #: Webhook events kept until delivered, at most (0: webhooks off, none kept).
    hook_outbox_max: int = 0


class Message(msgspec.Struct, frozen=True, array_like=True):
    seq: int
    event: str
    data: Any
    #: When it was given (the writer's monotonic clock): the outbox's age bound.
    at: float

    def to_wire(self) -> dict[str, Any]:
        return {"seq": self.seq, "event": self.event, "data": self.data}


class Outbox(msgspec.Struct, kw_only=True):
    """Seq-numbered notifications ``messages[0].seq .. last_seq`` kept until acknowledged (seqs from 1,
    without holes); everything at or below ``acked`` was seen, below ``first`` gone."""

    messages: list[Message] = []
    last_seq: int = 0
    acked: int = 0

    @property
    def first(self) -> int:
        """Seq of the oldest kept message (``last_seq + 1`` when empty)."""
        return self.messages[0].seq if self.messages else self.last_seq + 1


class Ticket(msgspec.Struct, kw_only=True):
    """The reconnection ticket ids of a participant (never logged)."""

    current: str
    #: The ticket the last rotation replaced, good for a retry of that rotation until ``previous_until``.
    previous: str | None = None
    previous_until: float = 0.0
    #: Hash of the ``retryKey`` the last relogin carried (``None``: it carried none).
    retry_key: str | None = None
    #: The last rotation was a refresh (its exact repeat is accepted, it opens no retry).
    by_refresh: bool = False


class ParticipantState(msgspec.Struct, kw_only=True):
    id: str
    user: str
    role: str
    permission: Permission
    portal: str
    origin: dict[str, Any] = {}
    extension: bool = False
    ticket: Ticket
    #: ``False`` while held: the portal lost the socket and notifications wait in the outbox.
    connected: bool = True
    #: While held: when the hold ends (the writer's monotonic clock).
    hold_deadline: float | None = None
    #: Counts the accepted resumes: the socket of a resume supersedes every socket of an older one.
    epoch: int = 0
    outbox: Outbox = msgspec.field(default_factory=Outbox)
    #: Answers of the last ``dedupe_window`` requests that succeeded, by request id (oldest first).
    answers: dict[str, Any] = {}
    streams: list[str] = []
    subscriptions: list[str] = []

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.user, "role": self.role}


class Track(msgspec.Struct, kw_only=True):
    id: str
    type: str
    source: str
    status: str = "active"
    mid: str | None = None

    def to_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"id": self.id, "type": self.type, "source": self.source, "status": self.status}
        if self.mid is not None:
            info["mid"] = self.mid
        return info


class StreamState(msgspec.Struct, kw_only=True):
    """A forward stream published by a participant; announced (``stream add``) once ready."""

    id: str
    owner: str
    transport_id: str
    info: PublishInfo
    tracks: list[Track] = []
    ready: bool = False

    @property
    def kinds(self) -> set[str]:
        return {track.type for track in self.tracks}

    def has_track(self, track_id: str) -> bool:
        return track_id == self.id or any(track.id == track_id for track in self.tracks)

    def to_info(self) -> dict[str, Any]:
        """StreamInfo as in OWT's portal format (``stream add``, join result)."""
        info: dict[str, Any] = {
            "id": self.id,
            "type": "forward",
            "media": {"tracks": [track.to_info() for track in self.tracks]},
            "info": {
                "owner": self.owner,
                "type": "webrtc",
                "inViews": [],
                "attributes": self.info.attributes if self.info.attributes is not None else {},
            },
        }
        if self.info.data:
            info["data"] = True
        return info


class SubscriptionState(msgspec.Struct, kw_only=True):
    id: str
    owner: str
    transport_id: str
    info: SubscribeInfo
    streams: list[str] = []
    ready: bool = False


class TransportState(msgspec.Struct, kw_only=True):
    """A participant's transport placed on a media agent, with the sessions set up on it."""

    id: str
    agent: str
    owner: str
    sessions: list[str] = []


class RoomState(msgspec.Struct, kw_only=True):
    id: str
    config: RoomConfig
    limits: Limits = msgspec.field(default_factory=Limits)
    #: The epoch of the room's placement (from the cluster manager): the journal fences older ones.
    epoch: int = 0
    #: The controller that holds the room.
    controller: str = ""
    participants: dict[str, ParticipantState] = {}
    streams: dict[str, StreamState] = {}
    subscriptions: dict[str, SubscriptionState] = {}
    transports: dict[str, TransportState] = {}
    closed: bool = False
    #: Events applied so far (a snapshot says how far it got).
    applied: int = 0
    #: Webhook events not yet delivered, and the room's last hook seq (:mod:`~conference_controller.hooks`).
    hooks: HookOutbox = msgspec.field(default_factory=HookOutbox)

    @property
    def idle(self) -> bool:
        """Nobody in it, nothing published or subscribed."""
        return not (self.participants or self.streams or self.subscriptions)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.config.name,
            "participants": len(self.participants),
            "streams": sum(1 for s in self.streams.values() if s.ready),
            "subscriptions": len(self.subscriptions),
            "participantLimit": self.config.participant_limit,
        }
