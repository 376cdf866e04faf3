"""The room journal's interface: an append-only log of each room's events, with fencing and snapshots.

The controller encodes a room's events (``conference_controller``'s event union) into opaque
``bytes``; the journal stores and returns them without looking inside.  One *record* is what one
command produced (one or more events), appended as one unit.

Order comes from the journal, never from clocks: :meth:`Journal.append` returns the record's
*offset*, a positive integer increasing within a room (not necessarily contiguous; it keeps increasing
across :meth:`Journal.forget`), and :meth:`Journal.replay` returns a room's records in offset order.

Fencing: every record carries the *epoch* of the room's placement (given by the cluster manager
each time a room is placed on a controller).  :meth:`Journal.claim` makes ``epoch`` the room's
current one; from then on an append (or snapshot) with a lower epoch raises :class:`Fenced`, so a
controller that was frozen while its room moved cannot add to the room's history.  An append under a
higher epoch than the current one makes that epoch current, as a claim would.  Epochs survive
:meth:`Journal.forget`: a room's epoch never goes down.

Durability: ``append`` returns only once the record is durable (fsync'd / confirmed by the broker);
the controller acts on a command's events (answers the client, hands notifications to portals) only
after that.

Snapshots bound replay: ``save_snapshot(room, offset, body)`` stores the room's whole state as of
``offset``; ``replay`` then needs only the records after it.  Records at or below the newest
snapshot's offset may be discarded (retention).
"""

from __future__ import annotations

from typing import Protocol

import msgspec

__all__ = ["Journal", "JournalRecord", "Snapshot", "Fenced", "JournalUnavailable", "WrongJournalKind"]


class JournalRecord(msgspec.Struct, frozen=True):
    """One appended record: what one command changed in one room."""

    offset: int
    epoch: int
    body: bytes


class Snapshot(msgspec.Struct, frozen=True):
    """A room's whole state (opaque ``body``) as of the record at ``offset`` (included)."""

    offset: int
    epoch: int
    body: bytes


class Fenced(Exception):
    """The room is held under a newer epoch than the one presented."""

    def __init__(self, room: str, epoch: int, current: int) -> None:
        super().__init__(f"room {room} is held under epoch {current}; epoch {epoch} is fenced off")
        self.room = room
        self.epoch = epoch
        self.current = current


class JournalUnavailable(Exception):
    """The journal cannot take or give records now (store or broker down); retry later."""


class WrongJournalKind(JournalUnavailable):
    """The room's history was written by a journal of another kind that this one cannot read (a room the
    holder journal wrote, met by the stream journal): refused rather than misread.  Another controller (of
    the right kind) can take the room."""

    code = "journal_kind_mismatch"

    def __init__(self, room: str, kind: str, written_by: str) -> None:
        super().__init__(f"room {room}: its journal was written by the {written_by} journal, which the {kind} "
                         f"journal cannot read ({self.code})")
        self.room = room
        self.kind = kind
        self.written_by = written_by


class Journal(Protocol):
    async def open(self) -> None:
        """Connect / open files.  Idempotent.  A failure leaves nothing open; a closed journal
        cannot be opened again (``RuntimeError``)."""

    async def close(self) -> None:
        """Flush what is pending and release everything.  Idempotent."""

    async def claim(self, room: str, epoch: int) -> int:
        """Make ``epoch`` the room's current epoch (durably) and return the offset of the last record
        before the claim (0 if none, or none since the room was last forgotten; records dropped after a
        snapshot still count).  Raises :class:`Fenced` unless ``epoch`` is higher than the room's
        current epoch: every placement claims an epoch of its own, so two holders never share one
        (a claimer told ``Fenced`` claims ``current + 1``).  A claimed room is listed by
        :meth:`rooms` even before its first record."""

    async def append(self, room: str, epoch: int, body: bytes) -> int:
        """Append one record durably; its offset.  Raises :class:`Fenced` if ``epoch`` is lower than
        the room's current epoch."""

    # A journal may also offer ``submit(room, epoch, body) -> asyncio.Future[int]``: ``append``
    # queued at once, without a coroutine of its own; ``submit_then(room, epoch, body, then) -> bool``:
    # the same with the outcome (offset or exception) handed to ``then`` when the write's transaction
    # ends (``False``: nothing queued, use ``submit``); and ``append_now(room, epoch, body) -> int | None``:
    # ``append`` committed before it returns, or ``None`` (nothing done) when it cannot be now (the
    # controller uses them when they are there).  And ``watch_snapshots(due: Callable[[str], None]) ->
    # Callable[[], None]``: the journal calls ``due(room)`` when a snapshot of the room is due whatever its
    # record count, because the room's replay would read far (the holder journal: its holder stream moved
    # on); the controller then saves one as soon as the room's records are durable.  The function returned
    # stops the calls.  Such a journal may keep that snapshot under a higher offset than the one given, when
    # no record of the room lies between (its replay then starts further on).

    async def replay(self, room: str, after: int = 0) -> list[JournalRecord]:
        """The room's records with offset > ``after``, in offset order, up to the last record
        appended before this call."""

    async def save_snapshot(self, room: str, snapshot: Snapshot) -> None:
        """Keep ``snapshot`` as the room's newest; records at or below its offset may then be dropped.
        A snapshot older (lower offset) than the one kept is ignored.  Raises :class:`Fenced` if
        ``snapshot.epoch`` is lower than the room's current epoch."""

    async def snapshot(self, room: str) -> Snapshot | None:
        """The room's newest snapshot, if any."""

    async def forget(self, room: str) -> None:
        """The room is closed for good: its records and snapshots may be dropped.  A room opened
        again later under the same id starts a new history (its epoch continues to increase)."""

    async def rooms(self) -> list[str]:
        """Rooms with a history (claimed or appended to, and not forgotten since), sorted: what a
        restarted embedded server may rebuild."""
