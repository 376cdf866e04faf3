"""Participants this portal serves: one :class:`Session` per participant with a socket here."""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .logs import EventLog

__all__ = ["Phase", "Notification", "Session", "Sessions"]


class Phase(enum.Enum):
    #: ``login``/``relogin`` in flight: notifications are buffered, emitted right after the ack.
    PENDING = "pending"
    #: Bound to a live socket: notifications are emitted at once.
    LIVE = "live"
    #: Left, held elsewhere, or dropped: nothing more is emitted from here.
    ENDED = "ended"


@dataclass(slots=True)
class Notification:
    event: str
    data: Any
    seq: int | None = None


@dataclass(eq=False, slots=True)
class Session:
    """One participant at this portal (it may move to another socket or portal with relogin).

    Kept small, one per participant: the log, the buffer and the lock are made when first needed.
    """

    id: str
    room: str
    #: The portal's log; :attr:`log` adds the participant and the room to its events.
    portal_log: EventLog
    controller: str = ""
    user: str = ""
    role: str = ""
    #: The join token's portal task (laid down when the participant leaves from here).
    token_code: str = ""
    #: Events carry ``seq`` and the client acks them itself.
    extension: bool = False
    #: The participant's ``{isp, region}`` from its join token (where its alternatives are chosen).
    origin: Any = None
    #: The latest ticket id this portal issued or accepted.
    ticket_id: str = ""
    sid: str | None = None
    phase: Phase = Phase.PENDING
    #: Notifications that came while ``PENDING`` (``None`` while there are none).
    buffer: list[Notification] | None = None
    #: Highest seq emitted to the client on this session (older ones are duplicates).
    last_seq: int = 0
    #: The controller's count of resumes when this session was made (0 for a login): a ``displace``
    #: with a higher epoch closes it.
    epoch: int = 0
    #: Highest ``displace`` epoch that arrived while this session's relogin was in flight.
    displaced_by: int = 0
    #: Set while the session moves to another controller (its controller was lost, or its room
    #: moved); done when the move ended.  Requests made meanwhile wait for it (see :class:`Relay`).
    moving: asyncio.Future[None] | None = None
    _lock: asyncio.Lock | None = field(default=None, init=False, repr=False)

    @property
    def live(self) -> bool:
        return self.phase is Phase.LIVE and self.sid is not None

    @property
    def log(self) -> EventLog:
        return self.portal_log.bind(participant=self.id, room=self.room)

    @property
    def lock(self) -> asyncio.Lock:
        """Serialises ticket rotation (refresh) and the end of the session."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def start_move(self) -> None:
        """The session's controller was lost or its room moved: requests wait until :meth:`end_move`."""
        if self.moving is None:
            self.moving = asyncio.get_running_loop().create_future()

    def end_move(self) -> None:
        """The move ended (moved, dropped or given up): waiting requests go on."""
        moving, self.moving = self.moving, None
        if moving is not None and not moving.done():
            moving.set_result(None)

    def hold_back(self, note: Notification) -> None:
        """Keep ``note`` until the login or relogin ack went out (see :meth:`SocketDelivery.flush`)."""
        if self.buffer is None:
            self.buffer = []
        self.buffer.append(note)


class Sessions:
    """Participant id → :class:`Session`, plus the holds still in flight (a relogin waits for them)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        self.holds: dict[str, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._by_id.values()))

    def get(self, participant: str) -> Session | None:
        return self._by_id.get(participant)

    def add(self, session: Session) -> None:
        self._by_id[session.id] = session

    def remove(self, session: Session) -> None:
        """Forget ``session`` (only if it is still the registered one for its participant)."""
        session.phase = Phase.ENDED
        if self._by_id.get(session.id) is session:
            del self._by_id[session.id]

    def of_controller(self, controller: str) -> list[Session]:
        return [s for s in self._by_id.values() if s.controller == controller]
