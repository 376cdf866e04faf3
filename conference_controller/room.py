"""A room: its configuration, participants, streams and subscriptions, and room-wide notifications.

A room is opened by the controller with its configuration and closed once nobody is left after
the grace period.  ``hold()``/``release()`` keep it open between lookup and use (a join awaits in
between); ``close()`` is idempotent and every entry point checks it (``RoomClosed``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

from .delivery import Delivery
from .errors import InvalidRole, RoomClosed, RoomFull, UnknownStream
from .ids import ParticipantId, RoomId, StreamId, SubscriptionId, WorkerId
from .logs import EventLog
from .messages import ParticipantInit, Permission, RoomConfig
from .participant import Participant
from .settings import ControllerSettings
from .streams import StreamRecord, SubscriptionRecord

__all__ = ["Room"]


class Room:
    def __init__(
        self, id: RoomId, config: RoomConfig, delivery: Delivery, settings: ControllerSettings, log: EventLog,
        *, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = id
        self.clock = clock
        self.config = config
        self.delivery = delivery
        self.settings = settings
        self.log = log.bind(room=id)
        self.participants: dict[ParticipantId, Participant] = {}
        self.streams: dict[StreamId, StreamRecord] = {}
        self.subscriptions: dict[SubscriptionId, SubscriptionRecord] = {}
        self.grace_timer: asyncio.TimerHandle | None = None
        self._holds = 0
        self._closed = False
        # What the participants have in common, one copy each (participants are many, these few).
        self._permissions: dict[str, Permission] = {}
        self._origins: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"Room(id={self.id!r}, participants={len(self.participants)}, closed={self._closed})"

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def held(self) -> bool:
        return self._holds > 0

    @property
    def idle(self) -> bool:
        """Nobody in it, nothing published or subscribed, nobody about to join."""
        return not (self.participants or self.streams or self.subscriptions or self._holds)

    def check_open(self) -> None:
        if self._closed:
            raise RoomClosed(f"room {self.id} is closed")

    def hold(self) -> None:
        """Keep the room open until :meth:`release` (the caller is about to use it)."""
        self.check_open()
        self._holds += 1
        self.cancel_grace()

    def release(self) -> None:
        self._holds = max(0, self._holds - 1)

    def cancel_grace(self) -> None:
        if self.grace_timer is not None:
            self.grace_timer.cancel()
            self.grace_timer = None

    def close(self) -> bool:
        """Close once; True the first time."""
        if self._closed:
            return False
        self._closed = True
        self.cancel_grace()
        self.log.info("room_closed")
        return True

    # -- participants ----------------------------------------------------------------------------

    def admit(self, init: ParticipantInit, ticket_id: str, extension: bool) -> Participant:
        """Add a participant (limit and role checked) and tell the others."""
        self.check_open()
        limit = self.config.participant_limit
        if limit > 0 and len(self.participants) >= limit:
            raise RoomFull(f"room {self.id} is full ({limit} participants)")
        role = self.config.role(init.role)
        if role is None:
            raise InvalidRole(f"role {init.role!r} is not defined in room {self.id}")
        permission = self._permissions.get(role.role)
        if permission is None:
            permission = self._permissions[role.role] = role.permission()
        participant = Participant(
            id=ParticipantId(init.id), user=init.user, role=role.role, permission=permission,
            room_id=self.id, portal=WorkerId(init.portal), origin=self._shared_origin(init.origin),
            ticket_id=ticket_id, extension=extension, settings=self.settings, log=self.log, clock=self.clock,
        )
        others = list(self.participants.values())
        self.participants[participant.id] = participant
        self.cancel_grace()
        self.delivery.fan_out(others, "participant", {"action": "join", "data": participant.info()})
        participant.log.info("participant_joined", portal=participant.portal, role=participant.role)
        return participant

    def _shared_origin(self, origin: dict[str, Any]) -> dict[str, Any]:
        """An equal origin another participant has already (read only: a scheduling preference)."""
        if not all(isinstance(value, str) for value in origin.values()):
            return origin
        return self._origins.setdefault(tuple(origin.items()), origin)

    def remove(self, participant: Participant) -> None:
        """Take the participant out and tell the others (its streams must be gone already)."""
        if self.participants.get(participant.id) is not participant:
            return
        del self.participants[participant.id]
        participant.left = True
        participant.cancel_hold_timer()
        self.broadcast("participant", {"action": "leave", "data": participant.id})

    def join_result(self, participant: Participant) -> dict[str, Any]:
        return {
            "permission": _permission(participant),
            "room": {
                "id": self.id,
                "views": self.config.view_labels(),
                "participants": [p.info() for p in self.participants.values()],
                "streams": [s.to_info() for s in self.streams.values() if s.ready],
            },
        }

    # -- notifications ---------------------------------------------------------------------------

    def notify(self, participant: Participant, event: str, data: Any) -> None:
        if participant.left:
            return
        self.delivery.send(participant, event, data)

    def broadcast(self, event: str, data: Any, *, exclude: Iterable[ParticipantId] = ()) -> None:
        skip = set(exclude)
        targets = [p for p in self.participants.values() if p.id not in skip]
        if targets:
            self.delivery.fan_out(targets, event, data)

    # -- streams ---------------------------------------------------------------------------------

    def stream(self, stream_id: str) -> StreamRecord:
        record = self.streams.get(StreamId(stream_id))
        if record is None:
            raise UnknownStream(f"no stream {stream_id} in room {self.id}")
        return record

    def stream_of_track(self, source: str) -> StreamRecord:
        """The ready stream that ``source`` (a stream id or a track id) names."""
        record = self.streams.get(StreamId(source))
        if record is None:
            record = next((s for s in self.streams.values() if s.has_track(source)), None)
        if record is None or not record.ready:
            raise UnknownStream(f"no stream {source} in room {self.id}")
        return record

    def announce_stream(self, record: StreamRecord) -> None:
        record.ready = True
        self.broadcast("stream", {"id": record.id, "status": "add", "data": record.to_info()})

    def drop_stream(self, record: StreamRecord) -> list[SubscriptionRecord]:
        """Forget the stream (``stream remove`` if it was announced); returns the subscriptions it ends."""
        if self.streams.pop(record.id, None) is None:
            return []
        owner = self.participants.get(record.owner)
        if owner is not None:
            owner.discard_stream(record.id)
        if record.ready:
            self.broadcast("stream", {"id": record.id, "status": "remove"})
        ended = [sub for sub in self.subscriptions.values() if record.id in sub.streams]
        for sub in ended:
            self.drop_subscription(sub)
        return ended

    def drop_subscription(self, record: SubscriptionRecord) -> None:
        if self.subscriptions.pop(record.id, None) is None:
            return
        owner = self.participants.get(record.owner)
        if owner is not None:
            owner.discard_subscription(record.id)

    # -- admin -----------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.config.name,
            "participants": len(self.participants),
            "streams": sum(1 for s in self.streams.values() if s.ready),
            "subscriptions": len(self.subscriptions),
            "participantLimit": self.config.participant_limit,
        }


def _permission(participant: Participant) -> dict[str, Any]:
    permission = participant.permission
    return {
        "publish": {"audio": permission.publish.audio, "video": permission.publish.video},
        "subscribe": {"audio": permission.subscribe.audio, "video": permission.subscribe.video},
    }
