"""A participant's session at its controller: portal, connection state, ticket, outbox, dedupe."""

from __future__ import annotations

import asyncio
import enum
import hmac
import sys
import time
from collections.abc import Callable, Set
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
        "_ticket_id", "_previous_ticket_id", "_previous_valid_until", "_retry_key", "_previous_by_refresh", "epoch",
        "_clock",
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.id = id
        self._clock = clock
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
        self.outbox = Outbox(settings.outbox_max_messages, settings.outbox_max_age, clock=clock)
        self.left = False
        self._dedupe: Deduper | None = None
        self._streams: set[StreamId] | None = None
        self._subscriptions: set[SubscriptionId] | None = None
        self._room_log = log
        self._settings = settings
        self._ticket_id = ticket_id
        self._previous_ticket_id: str | None = None
        self._previous_valid_until = 0.0
        #: Hash of the ``retryKey`` the last relogin carried (``None``: it carried none).
        self._retry_key: str | None = None
        #: The last rotation was a refresh (its exact repeat is accepted, it opens no retry).
        self._previous_by_refresh = False
        #: Counts the accepted resumes: the socket of a resume supersedes every socket of an older one.
        self.epoch = 0

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

    def check_resume(self, ticket_id: str, new_ticket_id: str, retry_key: str | None) -> bool:
        """Whether a relogin presenting ``ticket_id`` may rotate to ``new_ticket_id``: ``False`` for a
        relogin with the current ticket, ``True`` for a retry of the last relogin (its answer was
        lost); anything else raises ``ticket_mismatch``.

        A retry presents the ticket the last relogin used and asks for the same successor.  It is
        accepted only within ``ticket_retry_window`` of that relogin, before the client confirmed the
        new ticket (:meth:`confirm_ticket`), and then only from the connection that lost the answer:
        if that relogin carried a retry key, the retry must carry the same one; if it carried none
        (the OWT JavaScript SDK), the participant must have no live socket (held), so a retry can never
        take a live session from whoever holds the new ticket.
        """
        if ticket_id == self._ticket_id:
            return False
        if (
            ticket_id == self._previous_ticket_id
            and new_ticket_id == self._ticket_id
            and not self._previous_by_refresh
            and self._clock() < self._previous_valid_until
        ):
            if self._retry_key is not None:
                if retry_key is not None and hmac.compare_digest(retry_key, self._retry_key):
                    return True
            elif self.state is SessionState.HELD:
                return True
        raise TicketMismatch()

    def rotate(self, ticket_id: str, new_ticket_id: str, retry_key: str | None) -> None:
        """A relogin accepted by :meth:`check_resume`: ``new_ticket_id`` becomes the only valid ticket
        (a retry changes nothing: it asked for the same one), and the used ticket stays good for a
        retry keyed with ``retry_key``."""
        if ticket_id != self._ticket_id:
            return  # a retry
        self._previous_ticket_id, self._ticket_id = self._ticket_id, new_ticket_id
        self._previous_valid_until = self._clock() + self._settings.ticket_retry_window
        self._previous_by_refresh = False
        self._retry_key = retry_key

    def refresh_ticket(self, ticket_id: str, new_ticket_id: str) -> None:
        """Make ``new_ticket_id`` the only valid one, given the current ``ticket_id``.

        A refresh ends any retry of the last relogin.  Its exact repeat (same pair: the caller lost
        the first answer) is accepted and changes nothing; anything else is ``ticket_mismatch``.
        """
        if ticket_id == self._ticket_id:
            self._previous_ticket_id, self._ticket_id = self._ticket_id, new_ticket_id
            self._previous_by_refresh = True
            self._retry_key = None
            return
        if self._previous_by_refresh and ticket_id == self._previous_ticket_id and new_ticket_id == self._ticket_id:
            return
        raise TicketMismatch()

    def confirm_ticket(self) -> None:
        """The client acted on its new session, so it has the new ticket: the used one dies now."""
        self._previous_ticket_id = None
        self._retry_key = None

    # -- connection ------------------------------------------------------------------------------

    def hold(self, deadline: float) -> None:
        self.state = SessionState.HELD
        self.hold_deadline = deadline

    def hold_expired(self, now: float | None = None) -> bool:
        if self.state is not SessionState.HELD or self.hold_deadline is None:
            return False
        return (self._clock() if now is None else now) >= self.hold_deadline

    def reconnect(self, portal: WorkerId) -> None:
        """A resume through ``portal``: it is the participant's only portal, ``epoch`` moves on."""
        self.cancel_hold_timer()
        self.epoch += 1
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
