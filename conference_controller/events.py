"""Every change to a room, as one tagged msgspec union: what the journal records and replay applies.

Events are facts that already passed every check (:mod:`~conference_controller.machine` decides
them); :func:`~conference_controller.machine.apply` writes them into a
:class:`~conference_controller.state.RoomState` without checking again.  Times (``at``, deadlines)
are seconds on the monotonic clock of the controller that wrote the event; a :class:`TakenOver`
re-bases every time kept in the state onto the new holder's clock, so no recovery step compares
clocks of two machines.
"""

from __future__ import annotations

from typing import Any, Union

import msgspec

from contracts.controller import Permission

from contracts.rooms import RoomConfig
from .state import Limits, StreamState, SubscriptionState

__all__ = [
    "Event",
    "RoomOpened",
    "TakenOver",
    "Joined",
    "Left",
    "Held",
    "Resumed",
    "TicketRefreshed",
    "Acked",
    "PermissionChanged",
    "TransportPlaced",
    "TransportLost",
    "StreamAdded",
    "StreamReady",
    "TrackStatus",
    "StreamRemoved",
    "SubscriptionAdded",
    "SubscriptionReady",
    "SubscriptionRemoved",
    "Notified",
    "Answered",
    "RoomClosed",
    "HooksSent",
    "encode_events",
    "decode_events",
]


class _Event(msgspec.Struct, tag_field="t", kw_only=True, omit_defaults=True):
    pass


class RoomOpened(_Event, kw_only=True, tag="open"):
    room: str
    config: RoomConfig
    limits: Limits
    epoch: int
    controller: str
    #: Names this run of the room (its webhook event ids start with it; a room id may come again).
    instance: str = ""


class TakenOver(_Event, kw_only=True, tag="takeover"):
    """``controller`` holds the room from here on, under ``epoch``; ``at`` on its clock.  Every
    participant is held (until its portal resumes it) and every hold deadline, retry window and
    message age restarts from ``at`` (never shorter than it was)."""

    controller: str
    epoch: int
    at: float


class Joined(_Event, kw_only=True, tag="join"):
    participant: str
    user: str
    role: str
    permission: Permission
    portal: str
    origin: dict[str, Any] = {}
    ticket: str
    extension: bool = False


class Left(_Event, kw_only=True, tag="leave"):
    participant: str
    reason: str


class Held(_Event, kw_only=True, tag="hold"):
    participant: str
    deadline: float


class Resumed(_Event, kw_only=True, tag="resume"):
    """A relogin through ``portal``: acknowledges up to ``seen`` and, unless ``retry`` (a repeat of the
    last relogin), rotates the ticket to ``new_ticket`` with the used one good until ``previous_until``."""

    participant: str
    portal: str
    seen: int
    retry: bool = False
    new_ticket: str
    retry_key: str | None = None
    previous_until: float = 0.0


class TicketRefreshed(_Event, kw_only=True, tag="refresh"):
    participant: str
    new_ticket: str


class Acked(_Event, kw_only=True, tag="ack"):
    """The participant saw everything up to ``seq``; ``confirm``: the client said so itself (its new
    ticket is then confirmed and the used one dies)."""

    participant: str
    seq: int
    confirm: bool = False


class PermissionChanged(_Event, kw_only=True, tag="permission"):
    participant: str
    permission: Permission


class TransportPlaced(_Event, kw_only=True, tag="transport"):
    transport: str
    agent: str
    owner: str


class TransportLost(_Event, kw_only=True, tag="transport_lost"):
    """The transport's agent is gone (its sessions were removed by the events before this one)."""

    transport: str


class StreamAdded(_Event, kw_only=True, tag="stream"):
    stream: StreamState


class StreamReady(_Event, kw_only=True, tag="stream_ready"):
    stream: str


class TrackStatus(_Event, kw_only=True, tag="track"):
    stream: str
    kind: str
    status: str


class StreamRemoved(_Event, kw_only=True, tag="stream_removed"):
    """The stream ends; ``agent``: the media agent to tell (``None``: nobody, it knows or is gone)."""

    stream: str
    transport: str
    agent: str | None = None


class SubscriptionAdded(_Event, kw_only=True, tag="subscription"):
    subscription: SubscriptionState


class SubscriptionReady(_Event, kw_only=True, tag="subscription_ready"):
    subscription: str


class SubscriptionRemoved(_Event, kw_only=True, tag="subscription_removed"):
    subscription: str
    transport: str
    agent: str | None = None


class Notified(_Event, kw_only=True, tag="notify"):
    """A notification given to each of ``targets`` with the seq it has in that participant's outbox."""

    targets: list[tuple[str, int]]
    event: str
    data: Any
    at: float


class Answered(_Event, kw_only=True, tag="answer"):
    """A request that succeeded, by its id: a repeat gets ``result`` again without acting twice."""

    participant: str
    request: str
    result: Any


class RoomClosed(_Event, kw_only=True, tag="close"):
    pass


class HooksSent(_Event, kw_only=True, tag="hooks_sent"):
    """The room's webhook events up to ``seq`` were delivered (or given up as dead letters)."""

    seq: int


Event = Union[
    RoomOpened, TakenOver, Joined, Left, Held, Resumed, TicketRefreshed, Acked, PermissionChanged,
    TransportPlaced, TransportLost, StreamAdded, StreamReady, TrackStatus, StreamRemoved, SubscriptionAdded,
    SubscriptionReady, SubscriptionRemoved, Notified, Answered, RoomClosed, HooksSent,
]

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[Event])


def encode_events(events: list[Event]) -> bytes:
    """One journal record: the events one command produced."""
    return _encoder.encode(events)


def decode_events(body: bytes) -> list[Event]:
    return _decoder.decode(body)
