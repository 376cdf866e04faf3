"""A participant's session at its controller: portal, connection state, ticket, outbox, dedupe."""

from __future__ import annotations

import asyncio
import enum
import time
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
    """One participant of one room.  Tickets are compared here and never logged."""

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
        self.portal = portal
        self.origin = origin
        self.extension = extension
        self.state = SessionState.CONNECTED
        self.hold_deadline: float | None = None
        self.hold_timer: asyncio.TimerHandle | None = None
        self.outbox = Outbox(settings.outbox_max_messages, settings.outbox_max_age)
        self.dedupe = Deduper(settings.dedupe_window)
        self.streams: set[StreamId] = set()
        self.subscriptions: set[SubscriptionId] = set()
        self.left = False
        self.log = log.bind(participant=id)
        self._ticket_id = ticket_id
        self._previous_ticket_id: str | None = None
        self._previous_valid_until = 0.0
        self._ticket_retry_window = settings.ticket_retry_window

    def __repr__(self) -> str:
        return f"Participant(id={self.id!r}, room={self.room_id!r}, portal={self.portal!r}, state={self.state.value})"

    @property
    def connected(self) -> bool:
        return self.state is SessionState.CONNECTED

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
            self._previous_valid_until = time.monotonic() + self._ticket_retry_window

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
        self.portal = portal
        self.state = SessionState.CONNECTED
        self.hold_deadline = None

    def cancel_hold_timer(self) -> None:
        if self.hold_timer is not None:
            self.hold_timer.cancel()
            self.hold_timer = None
