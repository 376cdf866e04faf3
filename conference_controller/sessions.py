"""Media sessions of a controller's rooms: publications, subscriptions, signaling, agent progress.

The records live in the room; the agent calls go through :class:`~conference_controller.media.MediaGateway`.
A publication is announced (``stream add`` to everyone) when its agent reports it ``ready``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import msgspec

from .errors import (
    InvalidRequest,
    MediaError,
    PermissionDenied,
    UnknownParticipant,
    UnknownStream,
    UnknownSubscription,
    UnknownTransport,
    UnsupportedOperation,
)
from .ids import StreamId, SubscriptionId, TransportId, WorkerId
from .media import MediaTransport
from .messages import PublishInfo, SubscribeInfo
from .participant import Participant
from .room import Room
from .streams import StreamRecord, SubscriptionRecord

if TYPE_CHECKING:
    from .controller import Controller

__all__ = ["MediaSessions", "PROGRESS_STATUSES"]

PROGRESS_STATUSES = ("soac", "ready", "error")
_TRACK_OPERATIONS = {"pause": "inactive", "play": "active"}


class MediaSessions:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.media = controller.media

    # -- publications ----------------------------------------------------------------------------

    async def publish(
        self, participant: Participant, stream_id: str, transport_id: str, info: PublishInfo
    ) -> dict[str, Any]:
        room = self.controller.room_of(participant)
        if info.media is None or not info.media.tracks:
            raise InvalidRequest("publish needs media.tracks")
        for track in info.media.tracks:
            if not participant.permission.allows("publish", track.type):
                raise PermissionDenied(f"role {participant.role} may not publish {track.type}")
        if StreamId(stream_id) in room.streams:
            raise InvalidRequest(f"stream {stream_id} exists already")
        media = await self._open(room, participant, transport_id)
        record = StreamRecord(StreamId(stream_id), participant.id, media.id, info)
        room.streams[record.id] = record
        participant.add_stream(record.id)
        try:
            await self.media.start_session(media, "publish", stream_id, participant.id, msgspec.to_builtins(info))
        except MediaError:
            room.drop_stream(record)
            raise
        if participant.left:
            self._end(room, record)
            raise MediaError(f"participant {participant.id} left during publish")
        participant.log.info("publication_started", stream=stream_id, transport=transport_id, agent=media.agent)
        return {"id": stream_id, "transportId": transport_id}

    async def unpublish(self, participant: Participant, stream_id: str) -> str:
        room = self.controller.room_of(participant)
        record = room.streams.get(StreamId(stream_id))
        if record is None or record.owner != participant.id:
            raise UnknownStream(f"participant {participant.id} has no stream {stream_id}")
        self._end(room, record)
        return "ok"

    async def stream_control(self, participant: Participant, stream_id: str, operation: str, data: Any) -> Any:
        room = self.controller.room_of(participant)
        record = room.stream(stream_id)
        if record.owner != participant.id:
            raise PermissionDenied(f"stream {stream_id} belongs to another participant")
        status = _TRACK_OPERATIONS.get(operation)
        if status is None:
            raise UnsupportedOperation(f"stream operation {operation!r} is not supported")
        if data not in ("audio", "video") or not record.set_status(data, status):
            raise InvalidRequest(f"stream {stream_id} has no {data!r} track")
        media = self.media.transports.get(record.transport_id)
        if media is not None:
            await self.media.call(media, "control", transport_id=media.id, session_id=stream_id,
                                  operation=operation, data=data)
        if record.ready:
            room.broadcast("stream", {"id": record.id, "status": "update",
                                      "data": {"field": f"{data}.status", "value": status}})
        return "ok"

    async def _open(self, room: Room, participant: Participant, transport_id: str) -> MediaTransport:
        """The participant's transport on an agent; the participant may have left meanwhile."""
        media = await self.media.open(TransportId(transport_id), participant.id, participant.origin)
        if participant.left or room.closed:
            self.media.release(media)
            raise UnknownParticipant(f"participant {participant.id} left")
        return media

    # -- subscriptions ---------------------------------------------------------------------------

    async def subscribe(
        self, participant: Participant, subscription_id: str, transport_id: str, info: SubscribeInfo
    ) -> dict[str, Any]:
        room = self.controller.room_of(participant)
        if info.media is None or not info.media.tracks:
            raise InvalidRequest("subscribe needs media.tracks")
        streams: set[StreamId] = set()
        for track in info.media.tracks:
            if not participant.permission.allows("subscribe", track.type):
                raise PermissionDenied(f"role {participant.role} may not subscribe to {track.type}")
            source = room.stream_of_track(track.from_)
            if track.type not in source.kinds:
                raise UnknownStream(f"stream {source.id} has no {track.type} track")
            streams.add(source.id)
        if SubscriptionId(subscription_id) in room.subscriptions:
            raise InvalidRequest(f"subscription {subscription_id} exists already")
        media = await self._open(room, participant, transport_id)
        record = SubscriptionRecord(SubscriptionId(subscription_id), participant.id, media.id, info, streams)
        room.subscriptions[record.id] = record
        participant.add_subscription(record.id)
        try:
            await self.media.start_session(media, "subscribe", subscription_id, participant.id,
                                           msgspec.to_builtins(info))
        except MediaError:
            room.drop_subscription(record)
            raise
        if participant.left or record.id not in room.subscriptions:
            self._end(room, record)
            raise MediaError(f"subscription {subscription_id} ended during setup")
        participant.log.info("subscription_started", subscription=subscription_id, transport=transport_id,
                             agent=media.agent)
        return {"id": subscription_id, "transportId": transport_id}

    async def unsubscribe(self, participant: Participant, subscription_id: str) -> str:
        room = self.controller.room_of(participant)
        record = room.subscriptions.get(SubscriptionId(subscription_id))
        if record is None or record.owner != participant.id:
            raise UnknownSubscription(f"participant {participant.id} has no subscription {subscription_id}")
        self._end(room, record)
        return "ok"

    async def subscription_control(
        self, participant: Participant, subscription_id: str, operation: str, data: Any
    ) -> Any:
        room = self.controller.room_of(participant)
        record = room.subscriptions.get(SubscriptionId(subscription_id))
        if record is None or record.owner != participant.id:
            raise UnknownSubscription(f"participant {participant.id} has no subscription {subscription_id}")
        if operation not in ("pause", "play", "update"):
            raise UnsupportedOperation(f"subscription operation {operation!r} is not supported")
        media = self.media.transports.get(record.transport_id)
        if media is None:
            raise UnknownTransport(f"transport {record.transport_id} is gone")
        await self.media.call(media, "control", transport_id=media.id, session_id=subscription_id,
                              operation=operation, data=data)
        return "ok"

    # -- signaling and progress ------------------------------------------------------------------

    async def signaling(self, participant: Participant, transport_id: str, signaling: Any) -> str:
        media = self.media.transports.get(TransportId(transport_id))
        if media is None or media.owner != participant.id:
            raise UnknownTransport(f"participant {participant.id} has no transport {transport_id}")
        await self.media.call(media, "signaling", transport_id=media.id, signaling=signaling)
        return "ok"

    def progress(self, transport_id: str, session_id: str | None, status: str, data: Any) -> None:
        """An agent's report on a transport or one of its sessions."""
        media = self.media.transports.get(TransportId(transport_id))
        participant = None if media is None else self.controller.participants.get(media.owner)
        if media is None or participant is None or participant.left:
            self.controller.log.debug("progress_ignored", transport=transport_id, session=session_id, status=status)
            return
        room = self.controller.room_of(participant)
        note: dict[str, Any] = {"id": transport_id, "status": status}
        if session_id is not None:
            note["sessionId"] = session_id
        if status == "soac":
            note["data"] = data
            room.notify(participant, "progress", note)
        elif status == "ready":
            room.notify(participant, "progress", note)
            self._ready(room, session_id)
        elif status == "error":
            note["data"] = data if data is not None else "media session failed"
            room.notify(participant, "progress", note)
            self._failed(room, media, session_id)
        else:
            raise InvalidRequest(f"unknown progress status {status!r}")

    def _ready(self, room: Room, session_id: str | None) -> None:
        if session_id is None:
            return
        stream = room.streams.get(StreamId(session_id))
        if stream is not None and not stream.ready:
            room.announce_stream(stream)
            return
        subscription = room.subscriptions.get(SubscriptionId(session_id))
        if subscription is not None:
            subscription.ready = True

    def _failed(self, room: Room, media: MediaTransport, session_id: str | None) -> None:
        sessions = [session_id] if session_id is not None else sorted(media.sessions)
        for session in sessions:
            record = room.streams.get(StreamId(session)) or room.subscriptions.get(SubscriptionId(session))
            if record is not None:
                self._end(room, record)

    # -- teardown --------------------------------------------------------------------------------

    def drop_owned(self, room: Room, participant: Participant) -> None:
        """End every subscription and publication of a leaving participant."""
        for subscription_id in list(participant.subscriptions):
            subscription = room.subscriptions.get(subscription_id)
            if subscription is not None:
                self._end(room, subscription)
        for stream_id in list(participant.streams):
            stream = room.streams.get(stream_id)
            if stream is not None:
                self._end(room, stream)

    def _end(self, room: Room, record: StreamRecord | SubscriptionRecord) -> None:
        """Forget the record (``stream remove`` for an announced stream) and tell the agent."""
        ended: list[tuple[Literal["publish", "subscribe"], StreamRecord | SubscriptionRecord]] = []
        if isinstance(record, StreamRecord):
            ended.append(("publish", record))
            ended.extend(("subscribe", sub) for sub in room.drop_stream(record))
        else:
            room.drop_subscription(record)
            ended.append(("subscribe", record))
        for kind, item in ended:
            media = self.media.transports.get(item.transport_id)
            if media is not None:
                self.controller.spawn(self.media.stop_session(media, kind, item.id), name=f"{kind}-end:{item.id}")
        self.controller.settle(room)

    def agent_lost(self, agent: WorkerId) -> None:
        """A media agent is gone: its sessions end with ``progress error``; the participants stay."""
        for media in self.media.agent_lost(agent):
            participant = self.controller.participants.get(media.owner)
            room = None if participant is None else self.controller.rooms.get(participant.room_id)
            if participant is None or room is None:
                continue
            for session in sorted(media.sessions):
                record = room.streams.get(StreamId(session)) or room.subscriptions.get(SubscriptionId(session))
                if record is None:
                    continue
                if isinstance(record, StreamRecord):
                    for sub in room.drop_stream(record):
                        self._end(room, sub)
                else:
                    room.drop_subscription(record)
                room.notify(participant, "progress", {"id": media.id, "sessionId": session, "status": "error",
                                                      "data": "media agent lost"})
            self.controller.log.warning("media_agent_lost", agent=agent, transport=media.id,
                                        participant=media.owner)
