"""Snapshots forced by how far a holder stream moved: :class:`SnapshotsDue`.

A room's replay reads its window of a holder stream from where it starts (the claim's START, or the room's
snapshot) to its end, every other room's messages included.  A room that writes little, in a holder stream
that many rooms keep busy, would make its replay read all of that whatever its own record count.  So the
journal follows, for each room it holds, the holder-stream position it last *armed* it at (when it took the
room, and when a snapshot of it was saved); once its own tail has read ``holder_snapshot_after`` messages
past that, it tells its watchers (the controller: :meth:`~journal.holder.HolderJournal.watch_snapshots`) the
room's snapshot is due, and arms it again (so a room nobody snapshots is asked again later, not at every
message).

A room told so may be snapshotted even when it wrote nothing since: the snapshot then carries an offset
*raised* to the last holder message the tail has read (:meth:`raised`), since no record of the room lies
between its last one and there; its replay starts there.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from .logs import EventLog

from .holder_entries import MAX_ENTRIES, offset_of, parts
from .holder_tail import Holding

__all__ = ["SnapshotsDue"]


class SnapshotsDue:
    """Which rooms this journal holds are due for a snapshot because its holder stream moved on."""

    def __init__(self, holdings: dict[str, Holding], after: int, log: EventLog) -> None:
        self._holdings = holdings
        self.after = after
        self._log = log
        #: ``(position armed at, room, holding)``, in about increasing position (checked from the left).
        self._armed: deque[tuple[int, str, Holding]] = deque()
        #: The position each held room was last armed at (older entries of ``_armed`` are stale).
        self._at: dict[str, int] = {}
        #: Rooms told due and not snapshotted since: their next snapshot may be raised (:meth:`raised`).
        self._told: set[str] = set()
        self._watchers: list[Callable[[str], None]] = []
        #: Journal offset of the last message of the holder stream its tail read (0: none yet).
        self.position = 0
        #: How many times a room was told due.
        self.told = 0

    def watch(self, due: Callable[[str], None]) -> Callable[[], None]:
        """Call ``due(room)`` when a room's snapshot is due; the function returned stops that."""
        self._watchers.append(due)

        def stop() -> None:
            if due in self._watchers:
                self._watchers.remove(due)

        return stop

    def arm(self, room: str, position: int | None = None) -> None:
        """Count the room's replay from ``position`` (default: the last message read) on."""
        holding = self._holdings.get(room)
        if holding is None:
            return
        at = self.position if position is None else position
        self._at[room] = at
        self._armed.append((at, room, holding))

    def saved(self, room: str, offset: int) -> None:
        """A snapshot of the room as of ``offset`` was saved: its replay starts there (if in the window held)."""
        holding = self._holdings.get(room)
        self._told.discard(room)
        if holding is not None:
            claim, position, _ = parts(offset)
            self.arm(room, position if claim == holding.claim else None)

    def raised(self, room: str, epoch: int, offset: int) -> int:
        """The offset to keep a snapshot of the room under: ``offset``, or, for a room told due whose last
        record is the one at ``offset`` (nothing of it since), the end of the last holder message read."""
        holding = self._holdings.get(room)
        if (room not in self._told or holding is None or holding.epoch != epoch or holding.last != offset
                or self.position <= 0):
            return offset
        return max(offset, offset_of(holding.claim, self.position, MAX_ENTRIES - 1))

    def passed(self, position: int) -> None:
        """The tail read the holder message at journal offset ``position``."""
        self.position = position
        armed = self._armed
        while armed and position - armed[0][0] >= self.after:
            at, room, holding = armed.popleft()
            if self._holdings.get(room) is not holding or self._at.get(room) != at:
                if room not in self._holdings:
                    self.released(room)
                continue  # let go, or armed again since
            self._at[room] = position
            armed.append((position, room, holding))
            self._told.add(room)
            self.told += 1
            self._log.info("journal_snapshot_due", room=room, since=at, position=position)
            for due in list(self._watchers):
                try:
                    due(room)
                except Exception as exc:  # noqa: BLE001 - a watcher's failure must not stop the tail
                    self._log.warning("journal_snapshot_due_failed", room=room, error=repr(exc))

    def reset(self) -> None:
        """The journal holds no room any more and follows a new holder stream (from its first message)."""
        self._armed.clear()
        self._at.clear()
        self._told.clear()
        self.position = 0

    def released(self, room: str) -> None:
        self._at.pop(room, None)
        self._told.discard(room)
