"""The conference controller's RPC service (served by
:class:`conference_controller.service.ControllerService` under the controller's worker id).

Its argument objects, results and error details as msgspec structs, and :class:`ControllerClient`,
the only place outside tests that names its methods.  The wire shapes are those of
``docs/interfaces.md`` (Conference controller).  Unknown fields of an argument object are accepted
(clients and the token API may send more than the controller reads); missing or mistyped ones fail
with ``bad_arguments``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import msgspec

from rpc import LocalTransport, RpcError

from .client import ServiceClient

__all__ = [
    "ControllerClient",
    "ParticipantInit",
    "MediaPermission",
    "Permission",
    "TrackType",
    "TrackSource",
    "PublishTrack",
    "PublishMedia",
    "TransportSpec",
    "PublishInfo",
    "SubscribeTrack",
    "SubscribeMedia",
    "SubscribeInfo",
    "PatchOp",
    "ParticipantInfo",
    "JoinedRoom",
    "JoinResult",
    "Replayed",
    "ResumeResult",
    "TakeOverResult",
    "MediaAnswer",
    "MigrateResult",
    "SentText",
    "ResyncDetails",
    "StreamInfo",
    "RoomSummary",
    "ParticipantDetails",
]

TrackType = Literal["audio", "video"]
TrackSource = Literal["mic", "camera", "screen-cast", "file", "raw-file", "encoded-file", "mixed"]

#: A published stream as participants see it (OWT's StreamInfo: ``{id, type, media, info, data?}``).
StreamInfo = dict[str, Any]
#: A room of ``get_rooms``: ``{id, name, participants, streams, subscriptions, participantLimit}``.
RoomSummary = dict[str, Any]
#: A participant of ``get_participants``: ``{id, user, role, permission, portal, state, extension,
#: lastSeq, acked, outbox}``.
ParticipantDetails = dict[str, Any]


# -- arguments ---------------------------------------------------------------------------------


class ParticipantInit(msgspec.Struct):
    """``join``'s ``participant``: who joins, through which portal, from which origin."""

    id: str
    user: str
    role: str
    portal: str
    origin: dict[str, Any] = {}


class MediaPermission(msgspec.Struct, frozen=True):
    audio: bool = False
    video: bool = False


class Permission(msgspec.Struct, frozen=True):
    """What a participant may publish and subscribe (immutable: the participants of a role share one)."""

    publish: MediaPermission = msgspec.field(default_factory=MediaPermission)
    subscribe: MediaPermission = msgspec.field(default_factory=MediaPermission)

    def allows(self, action: Literal["publish", "subscribe"], kind: str) -> bool:
        media: MediaPermission = getattr(self, action)
        return bool(getattr(media, kind, False))


class PublishTrack(msgspec.Struct):
    type: TrackType
    source: TrackSource
    mid: str | None = None


class PublishMedia(msgspec.Struct):
    tracks: list[PublishTrack]


class TransportSpec(msgspec.Struct):
    type: str = "webrtc"
    id: str | None = None


class PublishInfo(msgspec.Struct):
    """``publish``'s ``info``."""

    media: PublishMedia | None = None
    attributes: dict[str, Any] | None = None
    data: bool = False
    transport: TransportSpec | None = None


class SubscribeTrack(msgspec.Struct):
    type: TrackType
    from_: str = msgspec.field(name="from")
    mid: str | None = None
    parameters: dict[str, Any] | None = None
    format: dict[str, Any] | None = None


class SubscribeMedia(msgspec.Struct):
    tracks: list[SubscribeTrack]


class SubscribeInfo(msgspec.Struct):
    """``subscribe``'s ``info``."""

    media: SubscribeMedia | None = None
    transport: TransportSpec | None = None
    data: Any = None


class PatchOp(msgspec.Struct):
    """One operation of ``control_participant``'s ``patch`` (JSON patch: ``replace`` of a permission path)."""

    op: str
    path: str
    value: Any = None


# -- results -----------------------------------------------------------------------------------


class ParticipantInfo(msgspec.Struct):
    id: str
    user: str
    role: str


class JoinedRoom(msgspec.Struct):
    id: str
    views: list[str]
    participants: list[ParticipantInfo]
    streams: list[StreamInfo]


class JoinResult(msgspec.Struct):
    """``join``: the joiner's permission and the room as it sees it (the joiner among the participants).
    The controller always sends both; a caller reads a missing one as its default."""

    permission: Permission | None = None
    room: JoinedRoom | None = None


class Replayed(msgspec.Struct):
    """A notification handed back by ``resume`` (one the client had not acknowledged)."""

    seq: int
    event: str
    data: Any = None


class ResumeResult(msgspec.Struct):
    """``resume``: what was missed (in order), the highest seq so far, the participant's resume
    count and its origin preference (from its join token).  The controller always sends them all; a
    caller reads a missing one as its default."""

    messages: list[Replayed] = []
    last_seq: int | None = None
    epoch: int | None = None
    origin: dict[str, Any] | None = None


class TakeOverResult(msgspec.Struct):
    room: str
    epoch: int
    participants: int


class MediaAnswer(msgspec.Struct):
    """``publish`` / ``subscribe``: the stream or subscription id and its transport."""

    id: str
    transport_id: str = msgspec.field(name="transportId")


class MigrateResult(msgspec.Struct):
    rooms: int


class SentText(msgspec.Struct):
    to: str
    delivered_to: int


# -- error details -----------------------------------------------------------------------------


class ResyncDetails(msgspec.Struct):
    """Details of ``resync_required``: the seqs the participant missed and that are gone."""

    missing_from: int
    missing_to: int


#: Told how :meth:`ControllerClient.text_then` ended: ``(answer, None)`` or ``(None, error)``.
TextThen = Callable[[str | None, Exception | None], None]


def _text_args(participant: str, to: str, message: Any, portal: str, request_id: str | None) -> dict[str, Any]:
    args = {"participant": participant, "to": to, "message": message, "portal": portal}
    if request_id is not None:
        args["request_id"] = request_id
    return args


def _args(**args: Any) -> dict[str, Any]:
    """The arguments as sent: optional ones left out when ``None`` (the method's default)."""
    return {name: value for name, value in args.items() if value is not None}


class ControllerClient(ServiceClient):
    """Calls the controller serving as ``target`` (its worker id).

    Each method is the caller's side of the method of the same name of
    :class:`conference_controller.service.ControllerService` (same parameters; ``timeout``, where
    present, bounds the call, default the transport's ``call_timeout``)."""

    __slots__ = ()

    # -- session -------------------------------------------------------------------------------

    async def join(self, *, room: str, participant: ParticipantInit, ticket_id: str, extension: bool = False,
                   timeout: float | None = None) -> JoinResult:
        """See :meth:`conference_controller.service.ControllerService.join`."""
        args = {"room": room, "participant": msgspec.to_builtins(participant), "ticket_id": ticket_id,
                "extension": extension}
        return msgspec.convert(await self._transport.call(self._target, "join", args, timeout=timeout), JoinResult)

    async def leave(self, *, participant: str, portal: str, timeout: float | None = None) -> str:
        """See :meth:`conference_controller.service.ControllerService.leave`."""
        args = {"participant": participant, "portal": portal}
        return msgspec.convert(await self._transport.call(self._target, "leave", args, timeout=timeout), str)

    async def hold(self, *, participant: str, portal: str, timeout: float | None = None) -> str:
        """See :meth:`conference_controller.service.ControllerService.hold`."""
        args = {"participant": participant, "portal": portal}
        return msgspec.convert(await self._transport.call(self._target, "hold", args, timeout=timeout), str)

    async def resume(
        self, *, participant: str, ticket_id: str, new_ticket_id: str, portal: str, last_seq: int | None = None,
        retry_key: str | None = None, room: str | None = None, timeout: float | None = None,
    ) -> ResumeResult:
        """See :meth:`conference_controller.service.ControllerService.resume`."""
        args = {"participant": participant, "ticket_id": ticket_id, "new_ticket_id": new_ticket_id,
                "portal": portal, "last_seq": last_seq, "room": room}
        if retry_key is not None:
            args["retry_key"] = retry_key
        return msgspec.convert(await self._transport.call(self._target, "resume", args, timeout=timeout),
                               ResumeResult)

    async def take_over(self, *, room: str, timeout: float | None = None) -> TakeOverResult:
        """See :meth:`conference_controller.service.ControllerService.take_over`."""
        answer = await self._transport.call(self._target, "take_over", {"room": room}, timeout=timeout)
        return msgspec.convert(answer, TakeOverResult)

    async def refresh_ticket(self, *, participant: str, ticket_id: str, new_ticket_id: str, portal: str,
                             timeout: float | None = None) -> str:
        """See :meth:`conference_controller.service.ControllerService.refresh_ticket`."""
        args = {"participant": participant, "ticket_id": ticket_id, "new_ticket_id": new_ticket_id, "portal": portal}
        return msgspec.convert(await self._transport.call(self._target, "refresh_ticket", args, timeout=timeout), str)

    async def ack(self, *, participant: str, seq: int, portal: str) -> None:
        """A cast.  See :meth:`conference_controller.service.ControllerService.ack`."""
        await self._transport.cast(self._target, "ack", {"participant": participant, "seq": seq, "portal": portal})

    async def ack_many(self, *, acks: dict[str, int], portal: str, unconfirmed: list[str] | None = None) -> None:
        """A cast.  See :meth:`conference_controller.service.ControllerService.ack_many`."""
        await self._transport.cast(self._target, "ack_many", _args(acks=acks, portal=portal, unconfirmed=unconfirmed))

    async def text(self, *, participant: str, to: str, message: Any, portal: str, request_id: str | None = None,
                   timeout: float | None = None) -> str:
        """See :meth:`conference_controller.service.ControllerService.text`."""
        args = _text_args(participant, to, message, portal, request_id)
        return msgspec.convert(await self._transport.call(self._target, "text", args, timeout=timeout), str)

    def text_then(self, *, participant: str, to: str, message: Any, portal: str, then: TextThen,
                  request_id: str | None = None, timeout: float | None = None) -> None:
        """:meth:`text` without a coroutine, over the in-process transport only
        (:meth:`~rpc.local.LocalTransport.call_then`): ``then(answer, None)``, or ``then(None, error)``
        with what :meth:`text` would raise (an :class:`~rpc.RpcError`, or the exception of an answer
        that is no ``str``), once the call ends.  Raises, without calling ``then``, for arguments that
        cannot be sent."""
        transport = self._transport
        if not isinstance(transport, LocalTransport):
            raise TypeError(f"text_then needs the in-process transport, not {type(transport).__name__}")

        def answered(result: Any, error: RpcError | None) -> None:
            if error is not None:
                then(None, error)
                return
            try:
                answer = msgspec.convert(result, str)
            except msgspec.ValidationError as exc:
                then(None, exc)
                return
            then(answer, None)

        # _text_args, written out: a Python call fewer per relayed text.
        args = {"participant": participant, "to": to, "message": message, "portal": portal}
        if request_id is not None:
            args["request_id"] = request_id
        transport.call_then(self._target, "text", args, answered, timeout)

    # -- media ---------------------------------------------------------------------------------

    async def publish(self, *, participant: str, stream_id: str, transport_id: str, info: PublishInfo, portal: str,
                      request_id: str | None = None, timeout: float | None = None) -> MediaAnswer:
        """See :meth:`conference_controller.service.ControllerService.publish`."""
        args = _args(participant=participant, stream_id=stream_id, transport_id=transport_id,
                     info=msgspec.to_builtins(info), portal=portal, request_id=request_id)
        return msgspec.convert(await self._transport.call(self._target, "publish", args, timeout=timeout), MediaAnswer)

    async def unpublish(self, *, participant: str, stream_id: str, portal: str, request_id: str | None = None,
                        timeout: float | None = None) -> str:
        """See :meth:`conference_controller.service.ControllerService.unpublish`."""
        args = _args(participant=participant, stream_id=stream_id, portal=portal, request_id=request_id)
        return msgspec.convert(await self._transport.call(self._target, "unpublish", args, timeout=timeout), str)

    async def subscribe(self, *, participant: str, subscription_id: str, transport_id: str, info: SubscribeInfo,
                        portal: str, request_id: str | None = None, timeout: float | None = None) -> MediaAnswer:
        """See :meth:`conference_controller.service.ControllerService.subscribe`."""
        args = _args(participant=participant, subscription_id=subscription_id, transport_id=transport_id,
                     info=msgspec.to_builtins(info), portal=portal, request_id=request_id)
        answer = await self._transport.call(self._target, "subscribe", args, timeout=timeout)
        return msgspec.convert(answer, MediaAnswer)

    async def unsubscribe(self, *, participant: str, subscription_id: str, portal: str,
                          request_id: str | None = None, timeout: float | None = None) -> str:
        """See :meth:`conference_controller.service.ControllerService.unsubscribe`."""
        args = _args(participant=participant, subscription_id=subscription_id, portal=portal, request_id=request_id)
        return msgspec.convert(await self._transport.call(self._target, "unsubscribe", args, timeout=timeout), str)

    async def stream_control(self, *, participant: str, stream_id: str, operation: str, portal: str,
                             data: Any = None, request_id: str | None = None, timeout: float | None = None) -> str:
        """See :meth:`conference_controller.service.ControllerService.stream_control`."""
        args = {"participant": participant, "stream_id": stream_id, "operation": operation, "portal": portal,
                "data": data}
        if request_id is not None:
            args["request_id"] = request_id
        return msgspec.convert(await self._transport.call(self._target, "stream_control", args, timeout=timeout), str)

    async def subscription_control(
        self, *, participant: str, subscription_id: str, operation: str, portal: str, data: Any = None,
        request_id: str | None = None, timeout: float | None = None,
    ) -> str:
        """See :meth:`conference_controller.service.ControllerService.subscription_control`."""
        args = {"participant": participant, "subscription_id": subscription_id, "operation": operation,
                "portal": portal, "data": data}
        if request_id is not None:
            args["request_id"] = request_id
        answer = await self._transport.call(self._target, "subscription_control", args, timeout=timeout)
        return msgspec.convert(answer, str)

    async def session_signaling(self, *, participant: str, transport_id: str, signaling: Any, portal: str,
                                request_id: str | None = None, timeout: float | None = None) -> str:
        """See :meth:`conference_controller.service.ControllerService.session_signaling`."""
        args = {"participant": participant, "transport_id": transport_id, "signaling": signaling, "portal": portal}
        if request_id is not None:
            args["request_id"] = request_id
        answer = await self._transport.call(self._target, "session_signaling", args, timeout=timeout)
        return msgspec.convert(answer, str)

    async def on_session_progress(self, *, transport_id: str, status: str, session_id: str | None = None,
                                  data: Any = None, timeout: float | None = None) -> str:
        """See :meth:`conference_controller.service.ControllerService.on_session_progress`."""
        args = {"transport_id": transport_id, "status": status, "session_id": session_id, "data": data}
        answer = await self._transport.call(self._target, "on_session_progress", args, timeout=timeout)
        return msgspec.convert(answer, str)

    # -- admin (each call carries ``admin_key``) ------------------------------------------------

    async def get_rooms(self, *, admin_key: str = "", timeout: float | None = None) -> list[RoomSummary]:
        """See :meth:`conference_controller.service.ControllerService.get_rooms`."""
        answer = await self._transport.call(self._target, "get_rooms", {"admin_key": admin_key}, timeout=timeout)
        return msgspec.convert(answer, list[RoomSummary])

    async def get_participants(self, *, room: str, admin_key: str = "",
                               timeout: float | None = None) -> list[ParticipantDetails]:
        """See :meth:`conference_controller.service.ControllerService.get_participants`."""
        args = {"room": room, "admin_key": admin_key}
        return msgspec.convert(await self._transport.call(self._target, "get_participants", args, timeout=timeout),
                               list[ParticipantDetails])

    async def control_participant(self, *, room: str, participant: str, patch: list[PatchOp], admin_key: str = "",
                                  timeout: float | None = None) -> ParticipantDetails:
        """See :meth:`conference_controller.service.ControllerService.control_participant`."""
        args = {"room": room, "participant": participant, "patch": msgspec.to_builtins(patch), "admin_key": admin_key}
        answer = await self._transport.call(self._target, "control_participant", args, timeout=timeout)
        return msgspec.convert(answer, ParticipantDetails)

    async def drop_participant(self, *, room: str, participant: str, admin_key: str = "",
                               timeout: float | None = None) -> ParticipantInfo:
        """See :meth:`conference_controller.service.ControllerService.drop_participant`."""
        args = {"room": room, "participant": participant, "admin_key": admin_key}
        answer = await self._transport.call(self._target, "drop_participant", args, timeout=timeout)
        return msgspec.convert(answer, ParticipantInfo)

    async def migrate(self, *, admin_key: str = "", timeout: float | None = None) -> MigrateResult:
        """See :meth:`conference_controller.service.ControllerService.migrate`."""
        answer = await self._transport.call(self._target, "migrate", {"admin_key": admin_key}, timeout=timeout)
        return msgspec.convert(answer, MigrateResult)

    async def cast_migrate(self, *, admin_key: str = "") -> None:
        """:meth:`migrate` as a cast (nobody waits for its answer)."""
        await self._transport.cast(self._target, "migrate", {"admin_key": admin_key})

    async def get_streams(self, *, room: str, admin_key: str = "", timeout: float | None = None) -> list[StreamInfo]:
        """See :meth:`conference_controller.service.ControllerService.get_streams`."""
        args = {"room": room, "admin_key": admin_key}
        return msgspec.convert(await self._transport.call(self._target, "get_streams", args, timeout=timeout),
                               list[StreamInfo])

    async def remove_stream(self, *, room: str, stream: str, admin_key: str = "",
                            timeout: float | None = None) -> StreamInfo:
        """See :meth:`conference_controller.service.ControllerService.remove_stream`."""
        args = {"room": room, "stream": stream, "admin_key": admin_key}
        answer = await self._transport.call(self._target, "remove_stream", args, timeout=timeout)
        return msgspec.convert(answer, StreamInfo)

    async def send_text(self, *, room: str, to: str, message: Any, admin_key: str = "",
                        timeout: float | None = None) -> SentText:
        """See :meth:`conference_controller.service.ControllerService.send_text`."""
        args = {"room": room, "to": to, "message": message, "admin_key": admin_key}
        return msgspec.convert(await self._transport.call(self._target, "send_text", args, timeout=timeout), SentText)
