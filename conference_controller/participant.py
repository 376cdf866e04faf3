"""A participant's session at its controller: portal, connection state, ticket, outbox, dedupe."""

from __future__ import annotations

import asyncio
import enum
import sys
import time
from collections.abc import Set
from typing import Any

import msgspec

from .dedupe import Deduper
from .errors import TicketMismatch
from .ids import ParticipantId, RoomId, StreamId, SubscriptionId, WorkerId
from .logs import EventLog
from .messages import Permission
from .outbox import Outbox
from .settings import ControllerSettings

__all__ = ["Participant", "SessionState"]


class SessionState(enum.Enum):
    CONNECTED = "connected"
    #: The portal lost the socket (or the portal itself was lost): notifications wait in the outbox.
    HELD = "held"


class Participant:
    """One participant of one room.  Tickets are compared here and never logged.

    A controller holds one per participant, most of them idle: slots, and what many never use (the
    dedupe window, the stream and subscription sets, a bound log) is made when first needed.
    """

    __slots__ = (
        "id", "user", "role", "permission", "room_id", "portal", "origin", "extension", "state", "hold_deadline",
        "hold_timer", "outbox", "left", "_dedupe", "_streams", "_subscriptions", "_room_log", "_settings",
        "_ticket_id", "_previous_ticket_id", "_previous_valid_until",
    )

    def __init__(
        self,
        *,
        id: ParticipantId,
        user: str,
        role: str,
        permission: Permission,
        room_id: RoomId,
        portal: WorkerId,
        origin: dict[str, Any],
        ticket_id: str,
        extension: bool,
        settings: ControllerSettings,
        log: EventLog,
    ) -> None:
        self.id = id
        self.user = user
        self.role = role
        self.permission = permission
        self.room_id = room_id
        self.portal = _shared(portal)
        self.origin = origin
        self.extension = extension
        self.state = SessionState.CONNECTED
        self.hold_deadline: float | None = None
        self.hold_timer: asyncio.TimerHandle | None = None
        self.outbox = Outbox(settings.outbox_max_messages, settings.outbox_max_age)
        self.left = False
        self._dedupe: Deduper | None = None
        self._streams: set[StreamId] | None = None
        self._subscriptions: set[SubscriptionId] | None = None
        self._room_log = log
        self._settings = settings
        self._ticket_id = ticket_id
        self._previous_ticket_id: str | None = None
        self._previous_valid_until = 0.0

    def __repr__(self) -> str:
        return f"Participant(id={self.id!r}, room={self.room_id!r}, portal={self.portal!r}, state={self.state.value})"

    @property
    def connected(self) -> bool:
        return self.state is SessionState.CONNECTED

    @property
    def log(self) -> EventLog:
        return self._room_log.bind(participant=self.id)

    @property
    def dedupe(self) -> Deduper:
        if self._dedupe is None:
            self._dedupe = Deduper(self._settings.dedupe_window)
        return self._dedupe

    # -- publications and subscriptions (ids; the records are the room's) -------------------------

    @property
    def streams(self) -> Set[StreamId]:
        return self._streams if self._streams is not None else frozenset()

    @property
    def subscriptions(self) -> Set[SubscriptionId]:
        return self._subscriptions if self._subscriptions is not None else frozenset()

    def add_stream(self, stream: StreamId) -> None:
        if self._streams is None:
            self._streams = set()
        self._streams.add(stream)

    def discard_stream(self, stream: StreamId) -> None:
        if self._streams is not None:
            self._streams.discard(stream)
            if not self._streams:
                self._streams = None

    def add_subscription(self, subscription: SubscriptionId) -> None:
        if self._subscriptions is None:
            self._subscriptions = set()
        self._subscriptions.add(subscription)

    def discard_subscription(self, subscription: SubscriptionId) -> None:
        if self._subscriptions is not None:
            self._subscriptions.discard(subscription)
            if not self._subscriptions:
                self._subscriptions = None

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "user": self.user, "role": self.role}

    def admin_info(self) -> dict[str, Any]:
        return {
            **self.info(),
            "permission": msgspec.to_builtins(self.permission),
            "portal": self.portal,
            "state": self.state.value,
            "extension": self.extension,
            "lastSeq": self.outbox.last_seq,
            "acked": self.outbox.acked,
            "outbox": len(self.outbox),
        }

    # -- tickets ---------------------------------------------------------------------------------

    def is_ticket(self, ticket_id: str) -> bool:
        return ticket_id == self._ticket_id

    def replace_ticket(self, ticket_id: str, new_ticket_id: str) -> None:
        """Make ``new_ticket_id`` the only valid one, given the current ``ticket_id``.

        A repeat of the last replacement (same pair: the caller lost the first answer) is accepted
        and changes nothing; anything else is ``ticket_mismatch``.
        """
        self.check_replacement(ticket_id, new_ticket_id)
        if ticket_id == self._ticket_id:
            self._previous_ticket_id, self._ticket_id = self._ticket_id, new_ticket_id
            self._previous_valid_until = time.monotonic() + self._settings.ticket_retry_window

    def check_replacement(self, ticket_id: str, new_ticket_id: str) -> None:
        """Raise ``ticket_mismatch`` unless :meth:`replace_ticket` would accept the pair.

        The repeat of the last replacement is accepted only within ``ticket_retry_window`` and
        until the client showed it got the answer (:meth:`confirm_ticket`): then a used ticket is dead.
        """
        if ticket_id == self._ticket_id:
            return
        if (
            ticket_id == self._previous_ticket_id
            and new_ticket_id == self._ticket_id
            and time.monotonic() < self._previous_valid_until
        ):
            return
        raise TicketMismatch()

    def confirm_ticket(self) -> None:
        """The client acted on its new session, so it has the new ticket: the used one dies now."""
        self._previous_ticket_id = None

    # -- connection ------------------------------------------------------------------------------

    def hold(self, deadline: float) -> None:
        self.state = SessionState.HELD
        self.hold_deadline = deadline

    def hold_expired(self, now: float | None = None) -> bool:
        if self.state is not SessionState.HELD or self.hold_deadline is None:
            return False
        return (time.monotonic() if now is None else now) >= self.hold_deadline

    def reconnect(self, portal: WorkerId) -> None:
        self.cancel_hold_timer()
        self.portal = _shared(portal)
        self.state = SessionState.CONNECTED
        self.hold_deadline = None

    def cancel_hold_timer(self) -> None:
        if self.hold_timer is not None:
            self.hold_timer.cancel()
            self.hold_timer = None


def _shared(portal: WorkerId) -> WorkerId:
    """The one copy of a portal's id: every participant there names it (each RPC decodes its own)."""
    return WorkerId(sys.intern(portal))
