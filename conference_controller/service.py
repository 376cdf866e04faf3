"""The controller's RPC surface (service name = the controller's worker id).

Each method's parameters are annotated with the types of :mod:`contracts.controller` (its wire
contract: the transport converts the arguments to them and answers ``bad_arguments`` on a wrong
shape, :func:`rpc.base.dispatch`); callers use :class:`contracts.controller.ControllerClient`.  The work is done by
:class:`~conference_controller.controller.Controller` and
:class:`~conference_controller.sessions.MediaSessions`.  Client requests that carry a
``request_id`` go through the participant's dedupe window.  See ``docs/interfaces.md``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from contracts.controller import (
    JoinResult,
    MigrateResult,
    ParticipantDetails,
    ParticipantInfo,
    ParticipantInit,
    PatchOp,
    PublishInfo,
    ResumeResult,
    RoomSummary,
    SentText,
    StreamInfo,
    SubscribeInfo,
    TakeOverResult,
)
from rpc import rpc_method

from . import machine
from .errors import Unauthorized, UnknownStream
from .events import Event
from .ids import ParticipantId, RoomId, WorkerId
from .permissions import apply_patch
from .room import Room
from .state import ParticipantState

if TYPE_CHECKING:
    from .controller import Controller

__all__ = ["ControllerService", "ADMIN_METHODS"]

_Outcome = tuple[Any, list[Event]]

#: The controller's RPC methods meant for operators; each needs ``admin_key``.
ADMIN_METHODS = frozenset({"get_rooms", "get_participants", "control_participant", "drop_participant", "migrate",
                           "get_streams", "remove_stream", "send_text"})


class ControllerService:
    """Participant session calls (from portals), media agent reports, admin calls."""

    def __init__(self, controller: Controller) -> None:
        self._controller = controller

    def _participant(self, participant: str) -> tuple[Room, ParticipantState]:
        return self._controller.participant_room(participant)

    def _served(self, participant: str, portal: str) -> tuple[Room, ParticipantState]:
        """The participant of a call relayed by ``portal``, which must be its current portal."""
        room, found = self._participant(participant)
        self._controller.check_portal(room, found, portal)
        return room, found

    async def _once(
        self, served: tuple[Room, ParticipantState], request_id: str | None, action: Callable[[], Awaitable[_Outcome]]
    ) -> Any:
        room, participant = served
        return await self._controller.once(room, participant, request_id, action)

    # -- session ---------------------------------------------------------------------------------

    @rpc_method
    async def join(
        self, room: str, participant: ParticipantInit, ticket_id: str, extension: bool = False
    ) -> JoinResult:
        """``participant`` joins ``room`` through its portal (``participant.portal``) with its first
        reconnection ticket ``ticket_id``; ``extension``: a client of the protocol extension."""
        return msgspec.convert(await self._controller.join(RoomId(room), participant, ticket_id, extension), JoinResult)

    @rpc_method
    async def leave(self, participant: str, portal: str) -> str:
        room, found = self._served(participant, portal)
        await self._controller.leave(room, found.id, reason="leave")
        return "ok"

    @rpc_method
    async def hold(self, participant: str, portal: str) -> str:
        room, found = self._participant(participant)
        await self._controller.hold(room, found.id, portal)
        return "ok"

    @rpc_method
    async def resume(
        self, participant: str, ticket_id: str, new_ticket_id: str, portal: str, last_seq: int | None = None,
        retry_key: str | None = None, room: str | None = None,
    ) -> ResumeResult:
        resumed = await self._controller.resume(participant, ticket_id, new_ticket_id, WorkerId(portal), last_seq,
                                                retry_key, room)
        return msgspec.convert(resumed, ResumeResult)

    @rpc_method
    async def take_over(self, room: str) -> TakeOverResult:
        """The cluster moved ``room`` here (its controller was lost, or drained): rebuild it from the
        journal now, so its held participants' holds run here too.  ``unknown_room``: nothing to
        rebuild.  Called by the cluster manager; a room here already is answered as it is."""
        found = await self._controller.take_over(RoomId(room))
        return TakeOverResult(room=found.id, epoch=found.state.epoch, participants=len(found.participants))

    @rpc_method
    async def refresh_ticket(self, participant: str, ticket_id: str, new_ticket_id: str, portal: str) -> str:
        room, found = self._served(participant, portal)
        await self._controller.commit(room, machine.decide_refresh(room.state, found.id, ticket_id, new_ticket_id))
        return "ok"

    @rpc_method
    async def ack(self, participant: str, seq: int, portal: str) -> None:
        await self._ack({participant: seq}, portal, frozenset())

    @rpc_method
    async def ack_many(self, acks: dict[str, int], portal: str, unconfirmed: list[str] | None = None) -> None:
        """``ack`` for several participants at once: ``{participant: highest delivered seq}``.

        ``unconfirmed``: participants whose acks the portal made itself on emitting (plain OWT
        clients, which never ack): their outbox is trimmed, but nothing shows the client read its
        relogin answer, so the retry window of the ticket it used stays open."""
        await self._ack(acks, portal, frozenset(unconfirmed or ()))

    async def _ack(self, acks: dict[str, int], portal: str, made_by_portal: frozenset[str]) -> None:
        """Only the participant's current portal knows what its socket saw: a stale portal's acks
        neither trim the outbox nor confirm the ticket; only the client's own acks confirm it.
        The acks of one room go into the journal as one record, which may wait for the room's next
        one (:meth:`Controller.commit_deferred`)."""
        by_room: dict[Room, list[Event]] = {}
        rooms = self._controller.participants
        for participant, seq in acks.items():
            room = rooms.get(ParticipantId(participant))
            if room is None:
                continue
            events = machine.decide_ack(room.state, participant, seq, portal, by_client=participant not in made_by_portal)
            if events:
                by_room.setdefault(room, []).extend(events)
        for room, events in by_room.items():
            self._controller.commit_deferred(room, events)

    @rpc_method(resumable=True)
    async def text(
        self, participant: str, to: str, message: Any, portal: str, request_id: str | None = None
    ) -> Any:
        """Answered ``ok`` once the text's record is durable: with a :class:`~rpc.Later` for the
        commit (:meth:`Controller.once_later`: no coroutine waits for the journal) unless the same
        request id is running already (then it waits for that first attempt).  ``resumable``: after a
        suspension it awaits only the controller's futures."""
        served = self._served(participant, portal)
        room, sender = served
        controller = self._controller

        def decide() -> _Outcome:
            return "ok", machine.decide_text(room.state, sender.id, to, message, controller.clock())

        if request_id is not None and (sender.id, request_id) in room.inflight:  # its first attempt runs
            async def send() -> _Outcome:
                return decide()

            return str(await self._once(served, request_id, send))
        return controller.once_later(room, sender, request_id, decide)

    # -- media -----------------------------------------------------------------------------------

    @rpc_method
    async def publish(
        self, participant: str, stream_id: str, transport_id: str, info: PublishInfo, portal: str,
        request_id: str | None = None,
    ) -> Any:
        """Answered with a :class:`~contracts.controller.MediaAnswer`'s shape (kept as built: a
        repeated ``request_id`` gets the journaled answer)."""
        served = self._served(participant, portal)
        sessions = self._controller.sessions
        return await self._once(served, request_id,
                                lambda: sessions.publish(*served, stream_id, transport_id, info))

    @rpc_method
    async def unpublish(self, participant: str, stream_id: str, portal: str, request_id: str | None = None) -> Any:
        served = self._served(participant, portal)
        return await self._once(served, request_id, lambda: self._controller.sessions.unpublish(*served, stream_id))

    @rpc_method
    async def subscribe(
        self, participant: str, subscription_id: str, transport_id: str, info: SubscribeInfo, portal: str,
        request_id: str | None = None,
    ) -> Any:
        """Answered like :meth:`publish`."""
        served = self._served(participant, portal)
        sessions = self._controller.sessions
        return await self._once(served, request_id,
                                lambda: sessions.subscribe(*served, subscription_id, transport_id, info))

    @rpc_method
    async def unsubscribe(
        self, participant: str, subscription_id: str, portal: str, request_id: str | None = None
    ) -> Any:
        served = self._served(participant, portal)
        return await self._once(served, request_id,
                                lambda: self._controller.sessions.unsubscribe(*served, subscription_id))

    @rpc_method
    async def stream_control(
        self, participant: str, stream_id: str, operation: str, portal: str, data: Any = None,
        request_id: str | None = None,
    ) -> Any:
        served = self._served(participant, portal)
        return await self._once(served, request_id,
                                lambda: self._controller.sessions.stream_control(*served, stream_id, operation, data))

    @rpc_method
    async def subscription_control(
        self, participant: str, subscription_id: str, operation: str, portal: str, data: Any = None,
        request_id: str | None = None,
    ) -> Any:
        served = self._served(participant, portal)
        sessions = self._controller.sessions
        return await self._once(served, request_id,
                                lambda: sessions.subscription_control(*served, subscription_id, operation, data))

    @rpc_method
    async def session_signaling(
        self, participant: str, transport_id: str, signaling: Any, portal: str, request_id: str | None = None
    ) -> Any:
        served = self._served(participant, portal)
        return await self._once(served, request_id,
                                lambda: self._controller.sessions.signaling(*served, transport_id, signaling))

    @rpc_method
    async def on_session_progress(
        self, transport_id: str, status: str, session_id: str | None = None, data: Any = None
    ) -> str:
        """Called (or cast) by media agents: ``status`` is ``soac``, ``ready`` or ``error``."""
        await self._controller.sessions.progress(transport_id, session_id, status, data)
        return "ok"

    # -- admin (each call carries ``admin_key``) ------------------------------------------------

    def _authorize(self, method: str, admin_key: object) -> None:
        if not self._controller.admin_keys.accepts(admin_key):
            self._controller.log.warning("admin_refused", method=method,
                                         reason="missing_key" if not admin_key else "wrong_key")
            raise Unauthorized()

    @rpc_method
    async def get_rooms(self, admin_key: str = "") -> list[RoomSummary]:
        self._authorize("get_rooms", admin_key)
        return [room.state.summary() for room in self._controller.rooms.values() if not room.closed]

    @rpc_method
    async def get_participants(self, room: str, admin_key: str = "") -> list[ParticipantDetails]:
        self._authorize("get_participants", admin_key)
        found = self._controller.room(room)
        return [machine.admin_info(participant) for participant in found.participants.values()]

    @rpc_method
    async def control_participant(
        self, room: str, participant: str, patch: list[PatchOp], admin_key: str = ""
    ) -> ParticipantDetails:
        self._authorize("control_participant", admin_key)
        member = self._controller.member(room, participant)
        permission = apply_patch(member.permission, patch)
        found = self._controller.room(room)
        await self._controller.commit(found, machine.decide_permission(found.state, participant, permission))
        found.log.info("permission_changed", participant=participant)
        return machine.admin_info(self._controller.member(room, participant))

    @rpc_method
    async def migrate(self, admin_key: str = "") -> MigrateResult:
        """Move every room to other controllers (the cluster manager asks it of a drained one)."""
        self._authorize("migrate", admin_key)
        return MigrateResult(rooms=self._controller.migrate())

    @rpc_method
    async def drop_participant(self, room: str, participant: str, admin_key: str = "") -> ParticipantInfo:
        self._authorize("drop_participant", admin_key)
        member = self._controller.member(room, participant)
        await self._controller.drop(self._controller.room(room), member, reason="dropped by the administrator")
        return ParticipantInfo(id=member.id, user=member.user, role=member.role)

    @rpc_method
    async def get_streams(self, room: str, admin_key: str = "") -> list[StreamInfo]:
        """The room's published streams (ready ones), as the participants see them."""
        self._authorize("get_streams", admin_key)
        found = self._controller.room(room)
        return [stream.to_info() for stream in found.state.streams.values() if stream.ready]

    @rpc_method
    async def remove_stream(self, room: str, stream: str, admin_key: str = "") -> StreamInfo:
        """End a publication whoever owns it (its media agent is told; subscribers are told it ended)."""
        self._authorize("remove_stream", admin_key)
        found = self._controller.room(room)
        removed = found.state.streams.get(stream)
        if removed is None or not removed.ready:
            raise UnknownStream(f"no stream {stream} in room {found.state.id}")
        info = removed.to_info()
        await self._controller.commit(found, machine.decide_end_stream(found.state, stream,
                                                                       self._controller.clock(), tell_agent=True))
        found.log.info("stream_removed", stream=stream, owner=removed.owner)
        return info

    @rpc_method
    async def send_text(self, room: str, to: str, message: Any, admin_key: str = "") -> SentText:
        """A text from the server (``from: "server"``) to everyone (``to="all"``) or one participant,
        delivered like any text: in order, exactly once to extension clients."""
        self._authorize("send_text", admin_key)
        found = self._controller.room(room)
        await self._controller.commit(found, machine.decide_server_text(found.state, to, message,
                                                                        self._controller.clock()))
        return SentText(to=to, delivered_to=len(found.state.participants) if to == "all" else 1)
