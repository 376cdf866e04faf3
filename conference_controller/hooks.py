"""Which room events are webhook events, and the room's hook outbox (pure, called by
:func:`~conference_controller.machine.apply`).

A webhook event gets the room's next hook seq when its room event is applied, so a room rebuilt
from its journal numbers its events exactly as its first holder did, and keeps the ones not yet
delivered (``state.hooks.pending``) until a :class:`~conference_controller.events.HooksSent` says
they are done.  A room opened with ``limits.hook_outbox_max == 0`` (no endpoint configured) keeps none.
"""

from __future__ import annotations

from typing import Any

from webhooks.events import HookEvent, HookOutbox

from .events import Event, HooksSent, Held, Joined, Left, Resumed, RoomClosed, RoomOpened, StreamAdded, StreamRemoved
from .state import RoomState

__all__ = ["hook_of", "record", "hooks_sent"]


def hook_of(state: RoomState, event: Event) -> tuple[str, dict[str, Any]] | None:
    """The webhook type and data of ``event`` (looked at before it is applied), or ``None``."""
    kind = type(event)
    if kind is RoomOpened:
        assert isinstance(event, RoomOpened)
        return "room.started", {"name": event.config.name}
    if kind is RoomClosed:
        return "room.finished", {}
    if kind is Joined:
        assert isinstance(event, Joined)
        return "participant.joined", {"participant": event.participant, "user": event.user, "role": event.role}
    if kind is Left:
        assert isinstance(event, Left)
        left = state.participants.get(event.participant)
        return "participant.left", {"participant": event.participant, "user": left.user if left else "",
                                    "reason": event.reason}
    if kind is Held:
        assert isinstance(event, Held)
        return "participant.held", _who(state, event.participant)
    if kind is Resumed:
        assert isinstance(event, Resumed)
        if event.retry:
            return None
        return "participant.resumed", _who(state, event.participant)
    if kind is StreamAdded:
        assert isinstance(event, StreamAdded)
        return "stream.published", {"stream": event.stream.id, "participant": event.stream.owner}
    if kind is StreamRemoved:
        assert isinstance(event, StreamRemoved)
        stream = state.streams.get(event.stream)
        if stream is None:
            return None
        return "stream.unpublished", {"stream": stream.id, "participant": stream.owner}
    return None


def _who(state: RoomState, participant_id: str) -> dict[str, Any]:
    participant = state.participants.get(participant_id)
    return {"participant": participant_id, "user": participant.user if participant else ""}


def record(state: RoomState, event: Event, hook: tuple[str, dict[str, Any]]) -> None:
    """Give the hook the room's next seq and keep it (after ``event`` was applied)."""
    if isinstance(event, RoomOpened):
        state.hooks = HookOutbox(instance=event.instance)
    limit = state.limits.hook_outbox_max
    if not limit:
        return
    outbox = state.hooks
    outbox.last_seq += 1
    if not outbox.pending:
        outbox.pending = []
    outbox.pending.append(HookEvent(seq=outbox.last_seq, type=hook[0], data=hook[1]))
    if len(outbox.pending) > limit:
        over = len(outbox.pending) - limit
        del outbox.pending[:over]
        outbox.dropped += over


def hooks_sent(state: RoomState, event: HooksSent) -> None:
    pending = state.hooks.pending
    drop = 0
    while drop < len(pending) and pending[drop].seq <= event.seq:
        drop += 1
    if drop:
        del pending[:drop]
