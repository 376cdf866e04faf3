"""The index of the file journal (:mod:`journal.logfile`): every room's state as of the end of a
sealed segment, so that opening the journal reads it and scans only the segments after it.

When the newest segment is full and the next one is started, the journal writes ``<number>.idx`` for
the segment just sealed (on its writer thread, after the roll): each room's epoch, last offset,
listing, last offset at its latest forget, its newest snapshot's place and its live records' places,
all in segments up to that one.  The file is written as ``<number>.idx.tmp`` and renamed into place,
then older indexes are deleted.  It is a cache: nothing is lost without it.  Opening takes the newest
index of a sealed segment that reads back whole (its crc holds, and the segment, if still there, has
the size it had then), then scans the segments after it; a missing, torn or unusable index, or one
whose places name a segment that is gone, falls back to scanning every segment.

Layout: ``MAGIC | payload length (u32) | crc32 of payload (u32) | payload``, the payload msgpack:
``[segment, its size, [[room, epoch, last, listed, forgotten_at, snapshot or nil, records], ...]]``,
``snapshot`` = ``[offset, epoch, segment, start, end]``, ``records`` the bytes of ``<QQQQQ`` per
record (offset, epoch, segment, start, end).
"""

from __future__ import annotations

import itertools
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import msgspec

from .logfile_state import Kept, Record, RoomState

__all__ = ["MAGIC", "IndexUnusable", "Sealed", "RoomCopy", "copy_rooms", "write_index", "read_index", "index_path",
           "index_numbers", "live_counts"]

MAGIC = b"SBJIDX1\n"
_HEADER = struct.Struct("<II")
_RECORD = struct.Struct("<QQQQQ")
SUFFIX = ".idx"
TMP_SUFFIX = ".idx.tmp"

#: One room's state as copied on the loop's thread: name, epoch, last, listed, forgotten_at, the
#: newest snapshot, the live records (a copy of the list).
RoomCopy = tuple[str, int, int, bool, int, Kept | None, list[Record]]


class IndexUnusable(Exception):
    """The index cannot be used (torn, corrupt, or not matching the segments): scan instead."""


@dataclass(slots=True)
class Sealed:
    """What an index holds: the segment it was written for, that segment's size then, the rooms."""

    segment: int
    size: int
    rooms: dict[str, RoomState]


def index_path(directory: Path, segment: int) -> Path:
    return directory / f"{segment:012d}{SUFFIX}"


def index_numbers(directory: Path) -> list[int]:
    """The segments with an index in ``directory``, newest first."""
    numbers = []
    for path in directory.glob(f"*{SUFFIX}"):
        stem = path.name[:-len(SUFFIX)]
        if stem.isdigit():
            numbers.append(int(stem))
    return sorted(numbers, reverse=True)


def copy_rooms(rooms: dict[str, RoomState]) -> list[RoomCopy]:
    """On the loop's thread: what :func:`write_index` needs, unaffected by later writes."""
    return [(state.name, state.epoch, state.last, state.listed, state.forgotten_at, state.snapshot,
             state.records.copy()) for state in rooms.values()]


def write_index(directory: Path, segment: int, size: int, rooms: list[RoomCopy]) -> Path:
    """Write the index of ``segment`` (``size`` bytes long when sealed), then delete older ones and
    any left half-written.  Not fsync'd: a torn index fails its crc and is not used.

    :raises OSError: it could not be written (the previous one, if any, stays)."""
    pack = _RECORD.pack
    payload = msgspec.msgpack.encode([segment, size, [
        [name, epoch, last, listed, forgotten_at,
         None if kept is None else [kept.offset, kept.epoch, *kept.where],
         b"".join(itertools.starmap(pack, records))]
        for name, epoch, last, listed, forgotten_at, kept, records in rooms]])
    final = index_path(directory, segment)
    partial = final.with_name(final.name[:-len(SUFFIX)] + TMP_SUFFIX)
    try:
        with open(partial, "wb") as out:
            out.write(MAGIC + _HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    for older in index_numbers(directory):
        if older < segment:
            index_path(directory, older).unlink(missing_ok=True)
    for leftover in directory.glob(f"*{TMP_SUFFIX}"):
        if leftover != partial:
            leftover.unlink(missing_ok=True)
    return final


def read_index(directory: Path, segment: int) -> Sealed:
    """The rooms as of the end of ``segment``, from its index.

    :raises IndexUnusable: the index is torn or corrupt, or its segment changed since.
    :raises OSError: it could not be read.
    """
    path = index_path(directory, segment)
    data = path.read_bytes()
    start = len(MAGIC) + _HEADER.size
    if len(data) < start or not data.startswith(MAGIC):
        raise IndexUnusable(f"{path}: no index header ({len(data)} bytes)")
    length, crc = _HEADER.unpack_from(data, len(MAGIC))
    payload = memoryview(data)[start:]
    if len(payload) != length or zlib.crc32(payload) != crc:
        raise IndexUnusable(f"{path}: torn or corrupt ({len(payload)} bytes of {length}, crc)")
    try:
        number, size, entries = msgspec.msgpack.decode(payload)
        rooms: dict[str, RoomState] = {}
        for name, epoch, last, listed, forgotten_at, kept, blob in entries:
            state = rooms[name] = RoomState(name)
            state.epoch, state.last, state.listed, state.forgotten_at = epoch, last, listed, forgotten_at
            if kept is not None:
                offset, kept_epoch, where_segment, where_start, where_end = kept
                state.snapshot = Kept(offset, kept_epoch, (where_segment, where_start, where_end))
            state.records = list(_RECORD.iter_unpack(blob))
    except (ValueError, TypeError, struct.error, msgspec.DecodeError) as exc:
        raise IndexUnusable(f"{path}: unreadable: {exc}") from exc
    if number != segment:
        raise IndexUnusable(f"{path}: written for segment {number}")
    return Sealed(segment=number, size=size, rooms=rooms)


def live_counts(rooms: dict[str, RoomState]) -> dict[int, int]:
    """Live frames (records and snapshots) per segment, as the rooms' states say."""
    counts: dict[int, int] = {}
    for state in rooms.values():
        for record in state.records:
            counts[record[2]] = counts.get(record[2], 0) + 1
        if state.snapshot is not None:
            segment = state.snapshot.where[0]
            counts[segment] = counts.get(segment, 0) + 1
    return counts
