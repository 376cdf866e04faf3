"""The room's rules, without I/O: ``decide_*`` checks a command and returns the events it makes;
:func:`apply` is the only writer of a :class:`~conference_controller.state.RoomState`.

A ``decide_*`` function changes nothing: it raises the coded error of a command that cannot be
done, or returns its events (``[]``: nothing to do).  A command that fails *and* changes the room
(a relogin after the hold ran out: the participant leaves, then ``hold_expired``) raises
:class:`Rejected` with both.  The controller (the shell) appends the events to the journal, applies
them, then acts on them (deliver, arm timers, tell media agents).  Replay applies the same events
with the same :func:`apply`, so a room rebuilt from the journal equals the live one.

Times are passed in (``at``: the caller's monotonic clock), never read here.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Any

import msgspec

from contracts.controller import ParticipantInit, Permission, PublishInfo, SubscribeInfo
from rpc import ServiceError

from .errors import (
    AlreadyJoined,
    HoldExpired,
    InvalidRequest,
    InvalidRole,
    PermissionDenied,
    ResyncRequired,
    RoomClosed as RoomClosedError,
    RoomFull,
    TicketMismatch,
    UnknownParticipant,
    UnknownStream,
    UnknownSubscription,
    UnknownTarget,
    UnsupportedOperation,
)
from .events import (
    Acked,
    Answered,
    Event,
    Held,
    HooksSent,
    Joined,
    Left,
    Notified,
    PermissionChanged,
    Resumed,
    RoomClosed,
    RoomOpened,
    StreamAdded,
    StreamReady,
    StreamRemoved,
    SubscriptionAdded,
    SubscriptionReady,
    SubscriptionRemoved,
    TakenOver,
    TicketRefreshed,
    TrackStatus,
    TransportLost,
    TransportPlaced,
)
from .hooks import hook_of, hooks_sent, record
from contracts.rooms import RoomConfig
from .state import (
    Limits,
    Message,
    ParticipantState,
    RoomState,
    StreamState,
    SubscriptionState,
    Ticket,
    Track,
    TransportState,
)


__all__ = ["Rejected", "new_room", "check_open", "apply_all", "apply", "member", "decide_open", "decide_takeover", "decide_join", "decide_leave", "decide_hold", "decide_hold_over", "check_resume", "decide_resume", "replay_of", "decide_refresh", "decide_ack", "decide_text", "decide_server_text", "SERVER_SENDER", "decide_notify", "decide_answer", "decide_permission", "decide_close", "check_publish", "decide_transport", "transport_of", "decide_publish", "decide_unpublish", "decide_end_stream", "decide_stream_control", "stream_of_track", "check_subscribe", "decide_subscribe", "decide_unsubscribe", "decide_end_subscription", "decide_progress", "decide_agent_lost", "join_result", "admin_info"]

_TRACK_OPERATIONS = {"pause": "inactive", "play": "active"}


class Rejected(Exception):
    """A command that failed with ``error`` after changing the room by ``events``."""

    def __init__(self, events: list[Event], error: ServiceError) -> None:
        super().__init__(str(error))
        self.events = events
        self.error = error


# -- apply: the only writer ----------------------------------------------------------------------


def new_room(room: str) -> RoomState:
    """An empty state for ``room`` that its :class:`RoomOpened` (the first record) fills in."""
    return RoomState(id=room, config=RoomConfig(id=room))


def apply_all(state: RoomState, events: Iterable[Event]) -> None:
    for event in events:
        apply(state, event)


def apply(state: RoomState, event: Event) -> None:
    """Write ``event`` into ``state``."""
    state.applied += 1
    kind = type(event)
    if kind is Notified:
        _notified(state, event)  # type: ignore[arg-type]
    elif kind is Acked:
        _acked(state, event)  # type: ignore[arg-type]
    elif kind is Answered:
        _answered(state, event)  # type: ignore[arg-type]
    elif kind is HooksSent:
        hooks_sent(state, event)  # type: ignore[arg-type]
    elif kind in _HOOKED:
        hook = hook_of(state, event)
        _APPLY[kind](state, event)
        if hook is not None:
            record(state, event, hook)
    else:
        _APPLY[kind](state, event)


def _notified(state: RoomState, event: Notified) -> None:
    limit = state.limits.outbox_max_messages
    for participant_id, seq in event.targets:
        participant = state.participants.get(participant_id)
        if participant is None:
            continue
        outbox = participant.outbox
        outbox.last_seq = seq
        if not outbox.messages:
            outbox.messages = []
        outbox.messages.append(Message(seq, event.event, event.data, event.at))
        if len(outbox.messages) > limit:
            del outbox.messages[: len(outbox.messages) - limit]


def _ack_through(participant: ParticipantState, seq: int) -> None:
    outbox = participant.outbox
    seq = min(seq, outbox.last_seq)
    if seq <= outbox.acked:
        return
    outbox.acked = seq
    messages = outbox.messages
    drop = 0
    while drop < len(messages) and messages[drop].seq <= seq:
        drop += 1
    if drop:
        del messages[:drop]


def _acked(state: RoomState, event: Acked) -> None:
    participant = state.participants.get(event.participant)
    if participant is None:
        return
    _ack_through(participant, event.seq)
    if event.confirm:
        participant.ticket.previous = None
        participant.ticket.retry_key = None


def _answered(state: RoomState, event: Answered) -> None:
    participant = state.participants.get(event.participant)
    if participant is None:
        return
    if not participant.answers:
        participant.answers = {}
    answers = participant.answers
    answers.pop(event.request, None)
    answers[event.request] = event.result
    while len(answers) > state.limits.dedupe_window:
        del answers[next(iter(answers))]


def _opened(state: RoomState, event: RoomOpened) -> None:
    state.config = event.config
    state.limits = event.limits
    state.epoch = event.epoch
    state.controller = event.controller
    state.closed = False


def _taken_over(state: RoomState, event: TakenOver) -> None:
    """The new holder knows no socket: every participant is held until its portal resumes it (a
    portal that is alive re-attaches at once, a client whose portal died relogs), and every hold,
    retry window and message age restarts from ``at`` on the new holder's clock."""
    state.epoch = event.epoch
    state.controller = event.controller
    limits = state.limits
    for participant in state.participants.values():
        participant.connected = False
        participant.hold_deadline = event.at + limits.reconnection_timeout
        if participant.ticket.previous is not None:
            participant.ticket.previous_until = event.at + limits.ticket_retry_window
        outbox = participant.outbox
        if outbox.messages:
            outbox.messages = [Message(m.seq, m.event, m.data, event.at) for m in outbox.messages]


def _joined(state: RoomState, event: Joined) -> None:
    if not state.participants:
        state.participants = {}
    state.participants[event.participant] = ParticipantState(
        id=event.participant, user=event.user, role=event.role, permission=event.permission, portal=event.portal,
        origin=event.origin, extension=event.extension, ticket=Ticket(current=event.ticket),
    )


def _left(state: RoomState, event: Left) -> None:
    state.participants.pop(event.participant, None)


def _held(state: RoomState, event: Held) -> None:
    participant = state.participants[event.participant]
    participant.connected = False
    participant.hold_deadline = event.deadline


def _resumed(state: RoomState, event: Resumed) -> None:
    participant = state.participants[event.participant]
    _ack_through(participant, event.seen)
    ticket = participant.ticket
    if not event.retry:
        ticket.previous, ticket.current = ticket.current, event.new_ticket
        ticket.previous_until = event.previous_until
        ticket.by_refresh = False
        ticket.retry_key = event.retry_key
    participant.epoch += 1
    participant.portal = event.portal
    participant.connected = True
    participant.hold_deadline = None


def _refreshed(state: RoomState, event: TicketRefreshed) -> None:
    ticket = state.participants[event.participant].ticket
    ticket.previous, ticket.current = ticket.current, event.new_ticket
    ticket.by_refresh = True
    ticket.retry_key = None


def _permission_changed(state: RoomState, event: PermissionChanged) -> None:
    state.participants[event.participant].permission = event.permission


def _transport_placed(state: RoomState, event: TransportPlaced) -> None:
    if not state.transports:
        state.transports = {}
    state.transports[event.transport] = TransportState(id=event.transport, agent=event.agent, owner=event.owner)


def _transport_lost(state: RoomState, event: TransportLost) -> None:
    state.transports.pop(event.transport, None)


def _add_session(state: RoomState, transport_id: str, session: str) -> None:
    transport = state.transports.get(transport_id)
    if transport is not None and session not in transport.sessions:
        transport.sessions = [*transport.sessions, session]


def _end_session(state: RoomState, transport_id: str, session: str) -> None:
    """The session is over on its transport; a transport with no session left is forgotten."""
    transport = state.transports.get(transport_id)
    if transport is None:
        return
    transport.sessions = [s for s in transport.sessions if s != session]
    if not transport.sessions:
        del state.transports[transport_id]


def _stream_added(state: RoomState, event: StreamAdded) -> None:
    stream = event.stream
    if not state.streams:
        state.streams = {}
    state.streams[stream.id] = stream
    owner = state.participants.get(stream.owner)
    if owner is not None:
        owner.streams = [*owner.streams, stream.id]
    _add_session(state, stream.transport_id, stream.id)


def _stream_ready(state: RoomState, event: StreamReady) -> None:
    state.streams[event.stream].ready = True


def _track_status(state: RoomState, event: TrackStatus) -> None:
    for track in state.streams[event.stream].tracks:
        if track.type == event.kind:
            track.status = event.status


def _stream_removed(state: RoomState, event: StreamRemoved) -> None:
    stream = state.streams.pop(event.stream, None)
    if stream is None:
        return
    owner = state.participants.get(stream.owner)
    if owner is not None:
        owner.streams = [s for s in owner.streams if s != stream.id]
    _end_session(state, stream.transport_id, stream.id)


def _subscription_added(state: RoomState, event: SubscriptionAdded) -> None:
    subscription = event.subscription
    if not state.subscriptions:
        state.subscriptions = {}
    state.subscriptions[subscription.id] = subscription
    owner = state.participants.get(subscription.owner)
    if owner is not None:
        owner.subscriptions = [*owner.subscriptions, subscription.id]
    _add_session(state, subscription.transport_id, subscription.id)


def _subscription_ready(state: RoomState, event: SubscriptionReady) -> None:
    state.subscriptions[event.subscription].ready = True


def _subscription_removed(state: RoomState, event: SubscriptionRemoved) -> None:
    subscription = state.subscriptions.pop(event.subscription, None)
    if subscription is None:
        return
    owner = state.participants.get(subscription.owner)
    if owner is not None:
        owner.subscriptions = [s for s in owner.subscriptions if s != subscription.id]
    _end_session(state, subscription.transport_id, subscription.id)


def _closed(state: RoomState, event: RoomClosed) -> None:
    state.closed = True


_APPLY: dict[type, Any] = {
    RoomOpened: _opened,
    TakenOver: _taken_over,
    Joined: _joined,
    Left: _left,
    Held: _held,
    Resumed: _resumed,
    TicketRefreshed: _refreshed,
    PermissionChanged: _permission_changed,
    TransportPlaced: _transport_placed,
    TransportLost: _transport_lost,
    StreamAdded: _stream_added,
    StreamReady: _stream_ready,
    TrackStatus: _track_status,
    StreamRemoved: _stream_removed,
    SubscriptionAdded: _subscription_added,
    SubscriptionReady: _subscription_ready,
    SubscriptionRemoved: _subscription_removed,
    RoomClosed: _closed,
}
#: Room events that may be webhook events (:mod:`~conference_controller.hooks`).
_HOOKED = frozenset({RoomOpened, RoomClosed, Joined, Left, Held, Resumed, StreamAdded, StreamRemoved})


# -- decide: every check, no change ---------------------------------------------------------------


class _Seqs:
    """The next seq of each participant while one command makes several notifications."""

    def __init__(self, state: RoomState) -> None:
        self.state = state
        self.given: dict[str, int] = {}

    def notify(self, targets: Iterable[str], event: str, data: Any, at: float) -> Notified:
        pairs = []
        for participant_id in targets:
            seq = self.given.get(participant_id)
            if seq is None:
                seq = self.state.participants[participant_id].outbox.last_seq
            seq += 1
            self.given[participant_id] = seq
            pairs.append((participant_id, seq))
        return Notified(targets=pairs, event=event, data=data, at=at)


def check_open(state: RoomState) -> None:
    """``room_closed`` for a room that is closed."""
    if state.closed:
        raise RoomClosedError(f"room {state.id} is closed")


def member(state: RoomState, participant_id: str) -> ParticipantState:
    participant = state.participants.get(participant_id)
    if participant is None:
        raise UnknownParticipant(f"participant {participant_id} has not joined")
    return participant


def decide_open(room: str, config: RoomConfig, limits: Limits, epoch: int, controller: str,
                instance: str = "") -> list[Event]:
    return [RoomOpened(room=room, config=config, limits=limits, epoch=epoch, controller=controller,
                       instance=instance)]


def decide_takeover(state: RoomState, controller: str, epoch: int, at: float) -> list[Event]:
    return [TakenOver(controller=controller, epoch=epoch, at=at)]


def decide_join(state: RoomState, init: ParticipantInit, ticket: str, extension: bool, at: float) -> list[Event]:
    """Admit a participant (limit and role checked) and tell the others."""
    check_open(state)
    if init.id in state.participants:
        raise AlreadyJoined(f"participant {init.id} has already joined room {state.id}")
    limit = state.config.participant_limit
    if limit > 0 and len(state.participants) >= limit:
        raise RoomFull(f"room {state.id} is full ({limit} participants)")
    role = state.config.role(init.role)
    if role is None:
        raise InvalidRole(f"role {init.role!r} is not defined in room {state.id}")
    joined = Joined(participant=init.id, user=init.user, role=role.role, permission=role.permission(),
                    portal=init.portal, origin=init.origin, ticket=ticket, extension=extension)
    events: list[Event] = [joined]
    others = [p for p in state.participants if p != init.id]
    if others:
        info = {"id": init.id, "user": init.user, "role": role.role}
        events.append(_Seqs(state).notify(others, "participant", {"action": "join", "data": info}, at))
    return events


def decide_leave(state: RoomState, participant_id: str, reason: str, at: float) -> list[Event]:
    """Remove the participant: its subscriptions and streams first, then ``participant leave``."""
    participant = state.participants.get(participant_id)
    if participant is None:
        return []
    seqs = _Seqs(state)
    events: list[Event] = []
    # ended already: a subscription of the participant to its own stream is not ended again with it
    ended: set[str] = set(participant.subscriptions)
    for subscription in participant.subscriptions:
        events.extend(_end_subscription(state, subscription, tell_agent=True))
    for stream in participant.streams:
        events.extend(_end_stream(state, stream, seqs, at, ended, tell_agent=True))
    events.append(Left(participant=participant_id, reason=reason))
    others = [p for p in state.participants if p != participant_id]
    if others:
        events.append(seqs.notify(others, "participant", {"action": "leave", "data": participant_id}, at))
    return events


def _agent_of(state: RoomState, transport_id: str) -> str | None:
    transport = state.transports.get(transport_id)
    return None if transport is None else transport.agent


def _end_subscription(state: RoomState, subscription_id: str, *, tell_agent: bool) -> list[Event]:
    subscription = state.subscriptions.get(subscription_id)
    if subscription is None:
        return []
    agent = _agent_of(state, subscription.transport_id) if tell_agent else None
    return [SubscriptionRemoved(subscription=subscription_id, transport=subscription.transport_id, agent=agent)]


def _end_stream(
    state: RoomState, stream_id: str, seqs: _Seqs, at: float, ended: set[str], *, tell_agent: bool,
    tell_subscriptions: bool = True,
) -> list[Event]:
    """The stream's end (``stream remove`` to everyone if it was announced) and of every
    subscription to it (each not already in ``ended``)."""
    stream = state.streams.get(stream_id)
    if stream is None:
        return []
    agent = _agent_of(state, stream.transport_id) if tell_agent else None
    events: list[Event] = [StreamRemoved(stream=stream_id, transport=stream.transport_id, agent=agent)]
    if stream.ready and state.participants:
        events.append(seqs.notify(state.participants, "stream", {"id": stream_id, "status": "remove"}, at))
    for subscription in state.subscriptions.values():
        if stream_id in subscription.streams and subscription.id not in ended:
            ended.add(subscription.id)
            events.extend(_end_subscription(state, subscription.id, tell_agent=tell_subscriptions))
    return events


def decide_hold(state: RoomState, participant_id: str, portal: str, at: float) -> list[Event]:
    """The portal lost the socket: keep the participant for ``reconnection_timeout`` (a report from
    a portal that is not the participant's, or about a held one, changes nothing)."""
    participant = state.participants.get(participant_id)
    if participant is None or participant.portal != portal or not participant.connected:
        return []
    return [Held(participant=participant_id, deadline=at + state.limits.reconnection_timeout)]


def decide_hold_over(state: RoomState, participant_id: str, at: float) -> list[Event]:
    """The hold timer fired: a participant still held leaves."""
    participant = state.participants.get(participant_id)
    if participant is None or participant.connected:
        return []
    return decide_leave(state, participant_id, "hold_expired", at)


def check_resume(participant: ParticipantState, ticket_id: str, new_ticket_id: str, retry_key: str | None,
                 at: float) -> bool:
    """Whether a relogin presenting ``ticket_id`` may rotate to ``new_ticket_id``: ``False`` for a
    relogin with the current ticket, ``True`` for a retry of the last relogin (its answer was lost);
    anything else raises ``ticket_mismatch``.

    A retry presents the ticket the last relogin used and asks for the same successor.  It is
    accepted only within ``ticket_retry_window`` of that relogin, before the client confirmed the new
    ticket, and then only from the connection that lost the answer: if that relogin carried a retry
    key, the retry must carry the same one; if it carried none (the OWT JavaScript SDK), the
    participant must have no live socket (held), so a retry can never take a live session from
    whoever holds the new ticket.
    """
    ticket = participant.ticket
    if ticket_id == ticket.current:
        return False
    if (
        ticket_id == ticket.previous
        and new_ticket_id == ticket.current
        and not ticket.by_refresh
        and at < ticket.previous_until
    ):
        if ticket.retry_key is not None:
            if retry_key is not None and hmac.compare_digest(retry_key, ticket.retry_key):
                return True
        elif not participant.connected:
            return True
    raise TicketMismatch()


def decide_resume(
    state: RoomState, participant_id: str, ticket_id: str, new_ticket_id: str, portal: str, last_seq: int | None,
    retry_key: str | None, at: float,
) -> list[Event]:
    """A relogin through ``portal``: rotate the ticket and acknowledge what the client saw.  After
    the hold ran out, or with unacknowledged messages gone, the participant leaves (:class:`Rejected`)."""
    participant = member(state, participant_id)
    retry = check_resume(participant, ticket_id, new_ticket_id, retry_key, at)
    if not participant.connected and participant.hold_deadline is not None and at >= participant.hold_deadline:
        raise Rejected(decide_leave(state, participant_id, "hold_expired", at),
                       HoldExpired(f"participant {participant_id} was held too long"))
    outbox = participant.outbox
    seen = outbox.acked if last_seq is None else min(max(last_seq, outbox.acked), outbox.last_seq)
    first = _first_kept(state, participant, at)
    if seen < first - 1:
        raise Rejected(decide_leave(state, participant_id, "resync_required", at),
                       ResyncRequired(seen + 1, first - 1))
    return [Resumed(participant=participant_id, portal=portal, seen=seen, retry=retry, new_ticket=new_ticket_id,
                    retry_key=None if retry else retry_key,
                    previous_until=0.0 if retry else at + state.limits.ticket_retry_window)]


def _first_kept(state: RoomState, participant: ParticipantState, at: float) -> int:
    """Seq of the oldest message still kept at ``at`` (older than ``outbox_max_age``: gone)."""
    outbox = participant.outbox
    horizon = at - state.limits.outbox_max_age
    for message in outbox.messages:
        if message.at >= horizon:
            return message.seq
    return outbox.last_seq + 1


def replay_of(participant: ParticipantState) -> list[Message]:
    """What a resumed participant gets again: everything kept after what it saw."""
    return list(participant.outbox.messages)


def decide_refresh(state: RoomState, participant_id: str, ticket_id: str, new_ticket_id: str) -> list[Event]:
    """Make ``new_ticket_id`` the only valid one, given the current ``ticket_id``.  A refresh ends any
    retry of the last relogin; its exact repeat (the caller lost the first answer) changes nothing;
    anything else is ``ticket_mismatch``."""
    ticket = member(state, participant_id).ticket
    if ticket_id == ticket.current:
        return [TicketRefreshed(participant=participant_id, new_ticket=new_ticket_id)]
    if ticket.by_refresh and ticket_id == ticket.previous and new_ticket_id == ticket.current:
        return []
    raise TicketMismatch()


def decide_ack(state: RoomState, participant_id: str, seq: int, portal: str, *, by_client: bool) -> list[Event]:
    """Only the participant's current portal knows what its socket saw: a stale portal's acks neither
    trim the outbox nor confirm the ticket; only the client's own acks confirm it."""
    participant = state.participants.get(participant_id)
    if participant is None or participant.portal != portal:
        return []
    outbox = participant.outbox
    confirm = by_client and (participant.ticket.previous is not None or participant.ticket.retry_key is not None)
    if min(seq, outbox.last_seq) <= outbox.acked and not confirm:
        return []
    return [Acked(participant=participant_id, seq=seq, confirm=confirm)]


def decide_text(state: RoomState, participant_id: str, to: str, message: Any, at: float) -> list[Event]:
    check_open(state)
    member(state, participant_id)
    if to == "all":
        return [_Seqs(state).notify(state.participants, "text", {"from": participant_id, "to": "all",
                                                                 "message": message}, at)]
    if to not in state.participants:
        raise UnknownTarget(f"target participant does not exist: {to}")
    return [_Seqs(state).notify([to], "text", {"from": participant_id, "to": "me", "message": message}, at)]


#: The ``from`` of a text the server sends (management API); participant ids never take this form.
SERVER_SENDER = "server"


def decide_server_text(state: RoomState, to: str, message: Any, at: float) -> list[Event]:
    """A text from the server (an application's bot or moderator) to everyone or one participant."""
    check_open(state)
    if to == "all":
        return [_Seqs(state).notify(state.participants, "text", {"from": SERVER_SENDER, "to": "all",
                                                                 "message": message}, at)]
    if to not in state.participants:
        raise UnknownTarget(f"target participant does not exist: {to}")
    return [_Seqs(state).notify([to], "text", {"from": SERVER_SENDER, "to": "me", "message": message}, at)]


def decide_notify(state: RoomState, participant_id: str, event: str, data: Any, at: float) -> list[Event]:
    """One notification to one participant (nothing if it is gone)."""
    if participant_id not in state.participants:
        return []
    return [_Seqs(state).notify([participant_id], event, data, at)]


def decide_answer(state: RoomState, participant_id: str, request: str | None, result: Any) -> list[Event]:
    if request is None or participant_id not in state.participants:
        return []
    return [Answered(participant=participant_id, request=request, result=msgspec.to_builtins(result))]


def decide_permission(state: RoomState, participant_id: str, permission: Permission) -> list[Event]:
    member(state, participant_id)
    return [PermissionChanged(participant=participant_id, permission=permission)]


def decide_close(state: RoomState) -> list[Event]:
    """Close a room nobody uses (nothing if it is in use or closed already)."""
    if state.closed or not state.idle:
        return []
    return [RoomClosed()]


# -- media ----------------------------------------------------------------------------------------


def check_publish(state: RoomState, participant_id: str, stream_id: str, info: PublishInfo) -> None:
    check_open(state)
    participant = member(state, participant_id)
    if info.media is None or not info.media.tracks:
        raise InvalidRequest("publish needs media.tracks")
    for track in info.media.tracks:
        if not participant.permission.allows("publish", track.type):
            raise PermissionDenied(f"role {participant.role} may not publish {track.type}")
    if stream_id in state.streams:
        raise InvalidRequest(f"stream {stream_id} exists already")


def decide_transport(state: RoomState, participant_id: str, transport_id: str, agent: str) -> list[Event]:
    """Record a transport placed on ``agent`` (nothing if it is known already)."""
    member(state, participant_id)
    known = state.transports.get(transport_id)
    if known is not None:
        if known.owner != participant_id:
            raise PermissionDenied(f"transport {transport_id} belongs to another participant")
        return []
    return [TransportPlaced(transport=transport_id, agent=agent, owner=participant_id)]


def transport_of(state: RoomState, participant_id: str, transport_id: str) -> TransportState | None:
    """The participant's transport ``transport_id`` if it is placed already (another's: refused)."""
    known = state.transports.get(transport_id)
    if known is not None and known.owner != participant_id:
        raise PermissionDenied(f"transport {transport_id} belongs to another participant")
    return known


def decide_publish(
    state: RoomState, participant_id: str, stream_id: str, transport_id: str, agent: str, info: PublishInfo
) -> list[Event]:
    """The publication is known (not announced) before its agent answers."""
    check_publish(state, participant_id, stream_id, info)
    events = decide_transport(state, participant_id, transport_id, agent)
    tracks = []
    for index, track in enumerate(info.media.tracks if info.media is not None else []):
        tracks.append(Track(id=f"{stream_id}-{track.mid if track.mid is not None else index}", type=track.type,
                            source=track.source, mid=track.mid))
    stream = StreamState(id=stream_id, owner=participant_id, transport_id=transport_id, info=info, tracks=tracks)
    return [*events, StreamAdded(stream=stream)]


def decide_unpublish(state: RoomState, participant_id: str, stream_id: str, at: float) -> list[Event]:
    stream = state.streams.get(stream_id)
    if stream is None or stream.owner != participant_id:
        raise UnknownStream(f"participant {participant_id} has no stream {stream_id}")
    return _end_stream(state, stream_id, _Seqs(state), at, set(), tell_agent=True)


def decide_end_stream(state: RoomState, stream_id: str, at: float, *, tell_agent: bool) -> list[Event]:
    """A publication's end for another reason than its owner (setup failed, agent error)."""
    return _end_stream(state, stream_id, _Seqs(state), at, set(), tell_agent=tell_agent)


def decide_stream_control(
    state: RoomState, participant_id: str, stream_id: str, operation: str, data: Any, at: float
) -> list[Event]:
    check_open(state)
    stream = state.streams.get(stream_id)
    if stream is None:
        raise UnknownStream(f"no stream {stream_id} in room {state.id}")
    if stream.owner != participant_id:
        raise PermissionDenied(f"stream {stream_id} belongs to another participant")
    status = _TRACK_OPERATIONS.get(operation)
    if status is None:
        raise UnsupportedOperation(f"stream operation {operation!r} is not supported")
    if data not in ("audio", "video") or data not in stream.kinds:
        raise InvalidRequest(f"stream {stream_id} has no {data!r} track")
    events: list[Event] = [TrackStatus(stream=stream_id, kind=data, status=status)]
    if stream.ready and state.participants:
        update = {"id": stream_id, "status": "update", "data": {"field": f"{data}.status", "value": status}}
        events.append(_Seqs(state).notify(state.participants, "stream", update, at))
    return events


def stream_of_track(state: RoomState, source: str) -> StreamState:
    """The ready stream that ``source`` (a stream id or a track id) names."""
    stream = state.streams.get(source)
    if stream is None:
        stream = next((s for s in state.streams.values() if s.has_track(source)), None)
    if stream is None or not stream.ready:
        raise UnknownStream(f"no stream {source} in room {state.id}")
    return stream


def check_subscribe(state: RoomState, participant_id: str, subscription_id: str, info: SubscribeInfo) -> list[str]:
    """The streams the subscription takes tracks from (every check made)."""
    check_open(state)
    participant = member(state, participant_id)
    if info.media is None or not info.media.tracks:
        raise InvalidRequest("subscribe needs media.tracks")
    streams: list[str] = []
    for track in info.media.tracks:
        if not participant.permission.allows("subscribe", track.type):
            raise PermissionDenied(f"role {participant.role} may not subscribe to {track.type}")
        source = stream_of_track(state, track.from_)
        if track.type not in source.kinds:
            raise UnknownStream(f"stream {source.id} has no {track.type} track")
        if source.id not in streams:
            streams.append(source.id)
    if subscription_id in state.subscriptions:
        raise InvalidRequest(f"subscription {subscription_id} exists already")
    return streams


def decide_subscribe(
    state: RoomState, participant_id: str, subscription_id: str, transport_id: str, agent: str, info: SubscribeInfo
) -> list[Event]:
    streams = check_subscribe(state, participant_id, subscription_id, info)
    events = decide_transport(state, participant_id, transport_id, agent)
    subscription = SubscriptionState(id=subscription_id, owner=participant_id, transport_id=transport_id, info=info,
                                     streams=streams)
    return [*events, SubscriptionAdded(subscription=subscription)]


def decide_unsubscribe(state: RoomState, participant_id: str, subscription_id: str) -> list[Event]:
    subscription = state.subscriptions.get(subscription_id)
    if subscription is None or subscription.owner != participant_id:
        raise UnknownSubscription(f"participant {participant_id} has no subscription {subscription_id}")
    return _end_subscription(state, subscription_id, tell_agent=True)


def decide_end_subscription(state: RoomState, subscription_id: str, *, tell_agent: bool) -> list[Event]:
    return _end_subscription(state, subscription_id, tell_agent=tell_agent)


def decide_progress(
    state: RoomState, transport_id: str, session_id: str | None, status: str, data: Any, at: float
) -> list[Event]:
    """An agent's report on a transport or one of its sessions (``soac``, ``ready`` or ``error``)."""
    transport = state.transports.get(transport_id)
    if transport is None or transport.owner not in state.participants:
        return []
    note: dict[str, Any] = {"id": transport_id, "status": status}
    if session_id is not None:
        note["sessionId"] = session_id
    seqs = _Seqs(state)
    if status == "soac":
        note["data"] = data
        return [seqs.notify([transport.owner], "progress", note, at)]
    if status == "ready":
        events: list[Event] = [seqs.notify([transport.owner], "progress", note, at)]
        if session_id is None:
            return events
        stream = state.streams.get(session_id)
        if stream is not None and not stream.ready:
            events.append(StreamReady(stream=session_id))
            # Everyone, the publisher included, hears of the stream once it is ready.
            events.append(seqs.notify(state.participants, "stream",
                                      {"id": session_id, "status": "add", "data": stream.to_info()}, at))
        elif session_id in state.subscriptions and not state.subscriptions[session_id].ready:
            events.append(SubscriptionReady(subscription=session_id))
        return events
    if status == "error":
        note["data"] = data if data is not None else "media session failed"
        events = [seqs.notify([transport.owner], "progress", note, at)]
        sessions = [session_id] if session_id is not None else list(transport.sessions)
        ended: set[str] = set()
        for session in sessions:
            if session in state.streams:
                events.extend(_end_stream(state, session, seqs, at, ended, tell_agent=True))
            elif session in state.subscriptions and session not in ended:
                ended.add(session)
                events.extend(_end_subscription(state, session, tell_agent=True))
        return events
    raise InvalidRequest(f"unknown progress status {status!r}")


def decide_agent_lost(state: RoomState, agent: str, at: float) -> list[Event]:
    """A media agent is gone: its sessions end with ``progress error`` to their owners (the
    participants stay); the agent is not told (subscriptions on other agents are)."""
    seqs = _Seqs(state)
    events: list[Event] = []
    ended: set[str] = set()
    for transport in [t for t in state.transports.values() if t.agent == agent]:
        for session in sorted(transport.sessions):
            if session in state.streams:
                events.extend(_end_stream(state, session, seqs, at, ended, tell_agent=False))
            elif session in state.subscriptions and session not in ended:
                ended.add(session)
                events.extend(_end_subscription(state, session, tell_agent=False))
            else:
                continue
            if transport.owner in state.participants:
                events.append(seqs.notify([transport.owner], "progress",
                                          {"id": transport.id, "sessionId": session, "status": "error",
                                           "data": "media agent lost"}, at))
        events.append(TransportLost(transport=transport.id))
    # The lost agent is told nothing (a subscription there ended with a stream elsewhere included).
    return [msgspec.structs.replace(e, agent=None) if isinstance(e, (StreamRemoved, SubscriptionRemoved))
            and e.agent == agent else e for e in events]


def join_result(state: RoomState, participant: ParticipantState) -> dict[str, Any]:
    permission = participant.permission
    return {
        "permission": {
            "publish": {"audio": permission.publish.audio, "video": permission.publish.video},
            "subscribe": {"audio": permission.subscribe.audio, "video": permission.subscribe.video},
        },
        "room": {
            "id": state.id,
            "views": state.config.view_labels(),
            "participants": [p.info() for p in state.participants.values()],
            "streams": [s.to_info() for s in state.streams.values() if s.ready],
        },
    }


def admin_info(participant: ParticipantState) -> dict[str, Any]:
    return {
        **participant.info(),
        "permission": msgspec.to_builtins(participant.permission),
        "portal": participant.portal,
        "state": "connected" if participant.connected else "held",
        "extension": participant.extension,
        "lastSeq": participant.outbox.last_seq,
        "acked": participant.outbox.acked,
        "outbox": len(participant.outbox.messages),
    }
