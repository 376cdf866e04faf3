"""What the file journal (:mod:`journal.logfile`) keeps in memory: each room's state and the index of
its live frames, and how many live frames each segment holds (a segment with none is deleted)."""

from __future__ import annotations

import bisect
from typing import NamedTuple

__all__ = ["Located", "Record", "Kept", "RoomState", "Segments"]


#: Where a frame's body is: its segment, and its first and past-the-last byte there.
Located = tuple[int, int, int]
#: A live record: its offset, its epoch, and where its body is (segment, start, end).
Record = tuple[int, int, int, int, int]


class Kept(NamedTuple):
    """A room's newest snapshot."""

    offset: int
    epoch: int
    where: Located


class Segments:
    """Live frames per segment (records and snapshots still needed); the segments written to before
    the newest one that hold none are *dead*: to be deleted."""

    __slots__ = ("live", "newest", "dead")

    def __init__(self) -> None:
        self.live: dict[int, int] = {}
        self.newest = 0
        self.dead: list[int] = []

    def open(self, number: int) -> None:
        """Segment ``number`` exists; the highest number is the one written to."""
        self.live.setdefault(number, 0)
        if number > self.newest:
            older = self.newest
            self.newest = number
            if older and self.live.get(older) == 0:
                self.dead.append(older)

    def add(self, number: int) -> None:
        self.live[number] += 1

    def release(self, number: int) -> None:
        left = self.live[number] - 1
        self.live[number] = left
        if left == 0 and number != self.newest:
            self.dead.append(number)

    def take_dead(self) -> list[int]:
        """The dead segments, forgotten here (the caller deletes their files)."""
        dead = sorted(set(n for n in self.dead if self.live.get(n) == 0 and n != self.newest))
        for number in dead:
            del self.live[number]
        self.dead = []
        return dead


class RoomState:
    """One room: its current epoch, its last offset (every offset it ever gave, across snapshots and
    forgets), whether it is listed by ``rooms()``, the last offset at its latest forget (its history
    starts after it), and where its live records and its newest snapshot are."""

    __slots__ = ("name", "key", "epoch", "last", "listed", "forgotten_at", "records", "snapshot")

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = name.encode()
        self.epoch = 0
        self.last = 0
        self.listed = False
        self.forgotten_at = 0
        #: Offsets increasing.
        self.records: list[Record] = []
        self.snapshot: Kept | None = None

    def add_record(self, offset: int, epoch: int, where: Located, segments: Segments) -> None:
        segment, start, end = where
        self.records.append((offset, epoch, segment, start, end))
        segments.live[segment] += 1
        self.last = offset
        if epoch > self.epoch:
            self.epoch = epoch
        self.listed = True

    def claimed(self, epoch: int) -> int:
        """``epoch`` is current now: the offset of the room's last record before it (0: none since its
        last forget)."""
        self.epoch = epoch
        self.listed = True
        return self.last if self.last > self.forgotten_at else 0

    def add_snapshot(self, offset: int, epoch: int, where: Located, segments: Segments, *, drop: bool) -> None:
        """A snapshot as of ``offset``: the newest unless an older offset; with ``drop``, the records at
        or below it are let go."""
        kept = self.snapshot
        if kept is not None:
            if offset < kept.offset:
                return
            segments.release(kept.where[0])
        self.snapshot = Kept(offset, epoch, where)
        segments.add(where[0])
        if epoch > self.epoch:
            self.epoch = epoch
        if offset > self.last:
            self.last = offset
        if drop:
            self._drop_records(offset, segments)

    def forgot(self, last: int, segments: Segments) -> None:
        """The room was forgotten (its last offset then ``last``): its history is let go."""
        if last > self.last:
            self.last = last
        self.forgotten_at = self.last
        self.listed = False
        self._drop_history(self.last, segments)

    def carried(self, epoch: int, last: int, listed: bool, forgotten_at: int, segments: Segments) -> None:
        """A ``STATE`` frame: the room's state when its segment was started.  Whatever an older segment
        still holds of a history forgotten since (its forget frame's segment may be gone) is let go."""
        self.epoch = max(self.epoch, epoch)
        self.last = max(self.last, last)
        self.listed = listed
        if forgotten_at > self.forgotten_at:
            self.forgotten_at = forgotten_at
            self._drop_history(forgotten_at, segments)

    def _drop_history(self, upto: int, segments: Segments) -> None:
        self._drop_records(upto, segments)
        kept = self.snapshot
        if kept is not None and kept.offset <= upto:
            segments.release(kept.where[0])
            self.snapshot = None

    def _drop_records(self, upto: int, segments: Segments) -> None:
        records = self.records
        if not records or records[0][0] > upto:
            return
        cut = bisect.bisect_right(records, upto, key=lambda record: record[0])
        for record in records[:cut]:
            segments.release(record[2])
        del records[:cut]

    def records_after(self, after: int) -> list[Record]:
        records = self.records
        if not records or records[0][0] > after:
            return list(records)
        return records[bisect.bisect_right(records, after, key=lambda record: record[0]):]

    def save(self) -> tuple[int, int, bool, int, int]:
        """What :meth:`restore` needs to undo a group of writes that failed (records, claims)."""
        return self.epoch, self.last, self.listed, self.forgotten_at, len(self.records)

    def restore(self, saved: tuple[int, int, bool, int, int], segments: Segments) -> None:
        self.epoch, self.last, self.listed, self.forgotten_at, count = saved
        for record in self.records[count:]:
            segments.release(record[2])
        del self.records[count:]
