"""A room at this controller: its state (plain data) and what runs for it here.

The state (:class:`~conference_controller.state.RoomState`) is written only by
:func:`~conference_controller.machine.apply`, through :meth:`Controller.commit`.  What is not state
lives here: the grace timer, the hold timers, the lookups in progress that keep the room open, the
requests in flight (for the dedupe of concurrent repeats) and the journal writes not yet durable.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from webhooks.events import HookEvent

from . import machine
from .events import Event
from .logs import EventLog
from .state import ParticipantState, RoomState

__all__ = ["Room", "Landed"]


class Landed:
    """The outcome of a journal append handed over by the journal itself (``submit_then``), read by
    :meth:`~conference_controller.controller.Controller._drain` as it would read an append's future.
    Its :meth:`land` is the callback the journal is given: it keeps the outcome and drains the room
    (no closure per append)."""

    __slots__ = ("landed", "offset", "error", "_drain", "_room")

    def __init__(self, drain: Callable[[Room], None], room: Room) -> None:
        self.landed = False
        self.offset = 0
        self.error: Exception | None = None
        self._drain = drain
        self._room = room

    def land(self, outcome: int | Exception) -> None:
        if isinstance(outcome, Exception):
            self.error = outcome
        else:
            self.offset = outcome
        self.landed = True
        self._drain(self._room)


class Room:
    __slots__ = ("state", "log", "grace_timer", "hold_timers", "inflight", "pending", "_users", "failed",
                 "last_offset", "since_snapshot", "deferred", "deferred_timer")

    def __init__(self, state: RoomState, log: EventLog) -> None:
        self.state = state
        self.log = log.bind(room=state.id)
        self.grace_timer: asyncio.TimerHandle | None = None
        self.hold_timers: dict[str, asyncio.TimerHandle] = {}
        #: Requests being carried out, by (participant, request id): a repeat waits for the first.
        self.inflight: dict[tuple[str, str], asyncio.Future[Any]] = {}
        #: Journal appends not yet durable, in append order, each with what to act on once it is (its
        #: events and the webhook events they made), its waiter and the snapshot due with it.
        self.pending: deque[tuple[asyncio.Future[int] | Landed, list[Event], list[HookEvent],
                                  asyncio.Future[None], bytes | None]] = deque()
        #: Offset of the room's last durable record, and records appended since its last snapshot.
        self.last_offset = 0
        self.since_snapshot = 0
        #: Events applied here whose record may wait (receipt acks): they go into the journal with the
        #: room's next record, or on their own once ``deferred_timer`` fires.
        self.deferred: list[Event] = []
        self.deferred_timer: asyncio.TimerHandle | None = None
        self._users = 0
        #: The journal refused or lost a write: the state here may be ahead of it; no more commits.
        self.failed: BaseException | None = None

    def __repr__(self) -> str:
        return f"Room(id={self.state.id!r}, participants={len(self.state.participants)}, closed={self.closed})"

    @property
    def id(self) -> str:
        return self.state.id

    @property
    def closed(self) -> bool:
        return self.state.closed

    @property
    def participants(self) -> dict[str, ParticipantState]:
        return self.state.participants

    @property
    def idle(self) -> bool:
        """Nobody in it, nothing published or subscribed, nobody about to join."""
        return self.state.idle and not self._users

    def use(self) -> None:
        """Keep the room open until :meth:`release` (the caller is about to use it)."""
        machine.check_open(self.state)
        self._users += 1
        self.cancel_grace()

    def release(self) -> None:
        self._users = max(0, self._users - 1)

    def cancel_grace(self) -> None:
        if self.grace_timer is not None:
            self.grace_timer.cancel()
            self.grace_timer = None

    def cancel_hold_timer(self, participant: str) -> None:
        timer = self.hold_timers.pop(participant, None)
        if timer is not None:
            timer.cancel()

    def take_deferred(self) -> list[Event]:
        """The deferred events, now to be written (the list is emptied, its timer stopped)."""
        events, self.deferred = self.deferred, []
        if self.deferred_timer is not None:
            self.deferred_timer.cancel()
            self.deferred_timer = None
        return events

    def cancel_timers(self) -> None:
        self.cancel_grace()
        self.take_deferred()
        for timer in self.hold_timers.values():
            timer.cancel()
        self.hold_timers.clear()
