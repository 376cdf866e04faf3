"""The journal in memory: the exact semantics of :mod:`journal.base`, nothing durable.  For tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from .base import Fenced, JournalRecord, JournalUnavailable, Snapshot

__all__ = ["MemoryJournal"]


@dataclass(slots=True)
class _Room:
    epoch: int = 0
    #: Offset of the last record of the current history (0: none since the room was last forgotten).
    last: int = 0
    listed: bool = False
    records: list[JournalRecord] = field(default_factory=list)
    snapshot: Snapshot | None = None


class MemoryJournal:
    """Every room in a dict.  Offsets come from one counter for all rooms, so they keep increasing
    within a room across :meth:`forget`.  Records at or below a saved snapshot are dropped at once,
    as the most forgetful durable journal would, so tests cannot lean on them."""

    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}
        self._offset = 0
        self._open = False
        self._closed = False

    async def open(self) -> None:
        if self._closed:
            raise RuntimeError("this MemoryJournal was closed; make a new one")
        self._open = True

    async def close(self) -> None:
        self._open = False
        self._closed = True

    async def claim(self, room: str, epoch: int) -> int:
        state = self._held(room, epoch)
        if epoch == state.epoch:
            raise Fenced(room, epoch, state.epoch)
        state.epoch = epoch
        state.listed = True
        return state.last

    async def append(self, room: str, epoch: int, body: bytes) -> int:
        state = self._held(room, epoch)
        self._offset += 1
        state.epoch = epoch
        state.listed = True
        state.last = self._offset
        state.records.append(JournalRecord(offset=self._offset, epoch=epoch, body=bytes(body)))
        return self._offset

    async def replay(self, room: str, after: int = 0) -> list[JournalRecord]:
        self._check_open()
        state = self._rooms.get(room)
        return [] if state is None else [record for record in state.records if record.offset > after]

    async def save_snapshot(self, room: str, snapshot: Snapshot) -> None:
        state = self._held(room, snapshot.epoch)
        if state.snapshot is not None and snapshot.offset < state.snapshot.offset:
            return
        state.snapshot = snapshot
        state.records = [record for record in state.records if record.offset > snapshot.offset]

    async def snapshot(self, room: str) -> Snapshot | None:
        self._check_open()
        state = self._rooms.get(room)
        return None if state is None else state.snapshot

    async def forget(self, room: str) -> None:
        self._check_open()
        state = self._rooms.get(room)
        if state is not None:
            self._rooms[room] = _Room(epoch=state.epoch)

    async def rooms(self) -> list[str]:
        self._check_open()
        return sorted(room for room, state in self._rooms.items() if state.listed)

    def _held(self, room: str, epoch: int) -> _Room:
        """The room's state, once ``epoch`` is checked against its current one."""
        self._check_open()
        state = self._rooms.setdefault(room, _Room())
        if epoch < state.epoch:
            raise Fenced(room, epoch, state.epoch)
        return state

    def _check_open(self) -> None:
        if not self._open:
            raise JournalUnavailable("the memory journal is not open")
