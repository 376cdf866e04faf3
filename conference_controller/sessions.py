"""Media sessions of a controller's rooms: publications, subscriptions, signaling, agent progress.

The rules and records are the room core's (:mod:`~conference_controller.machine`); this module
makes the agent calls (through :class:`~conference_controller.media.MediaGateway`) around them.
An agent call that awaits in the middle of a command splits it in two commits: the session is
recorded before the agent is asked (so a report that arrives first finds it), and ended again if
the agent refuses.  A publication is announced (``stream add`` to everyone) when its agent reports
it ``ready``.  Every ``decide_*`` runs right before its commit, with no await in between, so the
seqs it gives are the next ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from contracts.controller import PublishInfo, SubscribeInfo

from . import machine
from .errors import MediaError, UnknownParticipant, UnknownSubscription, UnknownTransport, UnsupportedOperation
from .events import Event, StreamRemoved, SubscriptionRemoved
from .ids import RoomId, WorkerId
from contracts.media import SessionStatus
from .room import Room
from .state import ParticipantState

if TYPE_CHECKING:
    from .controller import Controller

__all__ = ["MediaSessions"]

_Outcome = tuple[Any, list[Event]]


class MediaSessions:
    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.media = controller.media

    def _at(self) -> float:
        return self.controller.clock()

    async def _agent(self, room: Room, participant: ParticipantState, transport_id: str) -> str:
        """The agent of the participant's transport: the one it has, or a newly scheduled one."""
        known = machine.transport_of(room.state, participant.id, transport_id)
        if known is not None:
            return known.agent
        agent = await self.media.place(transport_id, participant.origin)
        if participant.id not in room.participants or room.closed:
            raise UnknownParticipant(f"participant {participant.id} left")
        return agent

    # -- publications ----------------------------------------------------------------------------

    async def publish(
        self, room: Room, participant: ParticipantState, stream_id: str, transport_id: str, info: PublishInfo
    ) -> _Outcome:
        machine.check_publish(room.state, participant.id, stream_id, info)
        agent = await self._agent(room, participant, transport_id)
        await self.controller.commit(room, machine.decide_publish(room.state, participant.id, stream_id, transport_id,
                                                                  agent, info))
        try:
            await self.media.start_session(agent, "publish", transport_id, stream_id, participant.id,
                                           msgspec.to_builtins(info))
        except MediaError:
            await self.controller.commit(room, machine.decide_end_stream(room.state, stream_id, self._at(),
                                                                         tell_agent=False))
            raise
        if participant.id not in room.participants:
            await self.controller.commit(room, machine.decide_end_stream(room.state, stream_id, self._at(),
                                                                         tell_agent=True))
            raise MediaError(f"participant {participant.id} left during publish")
        room.log.info("publication_started", participant=participant.id, stream=stream_id, transport=transport_id,
                      agent=agent)
        return {"id": stream_id, "transportId": transport_id}, []

    async def unpublish(self, room: Room, participant: ParticipantState, stream_id: str) -> _Outcome:
        return "ok", machine.decide_unpublish(room.state, participant.id, stream_id, self._at())

    async def stream_control(
        self, room: Room, participant: ParticipantState, stream_id: str, operation: str, data: Any
    ) -> _Outcome:
        machine.decide_stream_control(room.state, participant.id, stream_id, operation, data, self._at())
        stream = room.state.streams[stream_id]
        transport = room.state.transports.get(stream.transport_id)
        if transport is not None:
            await self.media.control(transport.agent, transport.id, stream_id, operation, data)
        return "ok", machine.decide_stream_control(room.state, participant.id, stream_id, operation, data, self._at())

    # -- subscriptions ---------------------------------------------------------------------------

    async def subscribe(
        self, room: Room, participant: ParticipantState, subscription_id: str, transport_id: str, info: SubscribeInfo
    ) -> _Outcome:
        machine.check_subscribe(room.state, participant.id, subscription_id, info)
        agent = await self._agent(room, participant, transport_id)
        await self.controller.commit(room, machine.decide_subscribe(room.state, participant.id, subscription_id,
                                                                    transport_id, agent, info))
        try:
            await self.media.start_session(agent, "subscribe", transport_id, subscription_id, participant.id,
                                           msgspec.to_builtins(info))
        except MediaError:
            await self.controller.commit(room, machine.decide_end_subscription(room.state, subscription_id,
                                                                               tell_agent=False))
            raise
        if participant.id not in room.participants or subscription_id not in room.state.subscriptions:
            await self.controller.commit(room, machine.decide_end_subscription(room.state, subscription_id,
                                                                               tell_agent=True))
            raise MediaError(f"subscription {subscription_id} ended during setup")
        room.log.info("subscription_started", participant=participant.id, subscription=subscription_id,
                      transport=transport_id, agent=agent)
        return {"id": subscription_id, "transportId": transport_id}, []

    async def unsubscribe(self, room: Room, participant: ParticipantState, subscription_id: str) -> _Outcome:
        return "ok", machine.decide_unsubscribe(room.state, participant.id, subscription_id)

    async def subscription_control(
        self, room: Room, participant: ParticipantState, subscription_id: str, operation: str, data: Any
    ) -> _Outcome:
        subscription = room.state.subscriptions.get(subscription_id)
        if subscription is None or subscription.owner != participant.id:
            raise UnknownSubscription(f"participant {participant.id} has no subscription {subscription_id}")
        if operation not in ("pause", "play", "update"):
            raise UnsupportedOperation(f"subscription operation {operation!r} is not supported")
        transport = room.state.transports.get(subscription.transport_id)
        if transport is None:
            raise UnknownTransport(f"transport {subscription.transport_id} is gone")
        await self.media.control(transport.agent, transport.id, subscription_id, operation, data)
        return "ok", []

    # -- signaling and progress ------------------------------------------------------------------

    async def signaling(self, room: Room, participant: ParticipantState, transport_id: str, signaling: Any) -> _Outcome:
        transport = room.state.transports.get(transport_id)
        if transport is None or transport.owner != participant.id:
            raise UnknownTransport(f"participant {participant.id} has no transport {transport_id}")
        await self.media.signaling(transport.agent, transport.id, signaling)
        return "ok", []

    async def progress(self, transport_id: str, session_id: str | None, status: str, data: Any) -> None:
        """An agent's report on a transport or one of its sessions."""
        room = next((r for r in self.controller.rooms.values() if transport_id in r.state.transports), None)
        if room is None:
            self.controller.log.debug("progress_ignored", transport=transport_id, session=session_id, status=status)
            return
        await self.controller.commit(room, machine.decide_progress(room.state, transport_id, session_id, status, data,
                                                                   self._at()))

    # -- teardown --------------------------------------------------------------------------------

    def ended(self, room: Room, event: StreamRemoved | SubscriptionRemoved) -> None:
        """A session ended (durably): tell its agent, if the event names one (best effort)."""
        if event.agent is None:
            return
        if isinstance(event, StreamRemoved):
            kind, session = "publish", event.stream
        else:
            kind, session = "subscribe", event.subscription
        self.controller.spawn(self.media.stop_session(event.agent, kind, event.transport, session),
                              name=f"{kind}-end:{session}")

    async def reclaim(self, room: Room) -> None:
        """After a takeover: every agent with a transport of the room is told that those sessions
        report here now (``controller_moved``), and what it answers settles what the previous holder
        may have missed — a session it has ready that the room has not is made ready (announced), one
        it does not have ends with ``progress error``.  An agent that does not answer is as lost."""
        agents: dict[str, list[str]] = {}
        for transport in room.state.transports.values():
            agents.setdefault(transport.agent, []).append(transport.id)
        for agent, transports in sorted(agents.items()):
            try:
                known: dict[str, SessionStatus] | None = await self.media.moved(agent, transports)
            except MediaError as exc:
                room.log.warning("media_agent_not_reclaimed", agent=agent, transports=len(transports), error=str(exc))
                known = None
            if self.controller.rooms.get(RoomId(room.id)) is not room or room.failed is not None or room.closed:
                return  # the room moved on (or ended) meanwhile: its next holder reclaims
            if known is None:
                await self.controller.commit(room, machine.decide_agent_lost(room.state, agent, self._at()))
                continue
            for transport_id in transports:
                placed = room.state.transports.get(transport_id)
                for session in list(placed.sessions) if placed is not None else []:
                    if room.failed is not None:
                        return
                    status = known.get(session)
                    if status is None:
                        await self.controller.commit(room, machine.decide_progress(
                            room.state, transport_id, session, "error", "media session lost", self._at()))
                    elif status == "ready" and not _ready(room, session):
                        await self.controller.commit(room, machine.decide_progress(
                            room.state, transport_id, session, "ready", None, self._at()))
            room.log.info("media_reclaimed", agent=agent, transports=len(transports), sessions=len(known))

    async def agent_lost(self, agent: WorkerId) -> None:
        """A media agent is gone: its sessions end with ``progress error``; the participants stay."""
        for room in list(self.controller.rooms.values()):
            lost = [t for t in room.state.transports.values() if t.agent == agent]
            if not lost:
                continue
            await self.controller.commit(room, machine.decide_agent_lost(room.state, agent, self._at()))
            for transport in lost:
                self.controller.log.warning("media_agent_lost", agent=agent, transport=transport.id,
                                            participant=transport.owner)


def _ready(room: Room, session: str) -> bool:
    stream = room.state.streams.get(session)
    if stream is not None:
        return stream.ready
    subscription = room.state.subscriptions.get(session)
    return subscription is not None and subscription.ready
