"""The frames of the file journal (:mod:`journal.logfile`): their layout, encoding and scanning.

A frame is ``length (u32) | crc32 (u32) | kind (u8) | epoch (u64) | offset (u64) | room length (u16) |
room (UTF-8) | body``, little-endian; ``length`` counts the bytes after the crc, and the crc covers them.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Kind", "Frame", "encode", "scan", "Torn", "Corrupt", "HEAD_SIZE", "PREFIX", "PREFIX_SIZE", "FIELDS"]

#: ``length`` and ``crc``.
PREFIX = _PREFIX = struct.Struct("<II")
PREFIX_SIZE = PREFIX.size
#: What the crc covers before the room and the body.
FIELDS = _FIELDS = struct.Struct("<BQQH")
HEAD_SIZE = _PREFIX.size + _FIELDS.size
#: A frame longer than this is taken for a torn or corrupt length field.
MAX_FRAME = 1 << 30


class Kind(enum.IntEnum):
    #: A record: ``offset`` is its offset, ``epoch`` the epoch it was appended under.
    RECORD = 1
    #: A claim: ``epoch`` became the room's current one (``offset`` unused, 0).
    CLAIM = 2
    #: A snapshot as of ``offset``, saved under ``epoch``.
    SNAPSHOT = 3
    #: The room was forgotten (``epoch`` its current one, ``offset`` its last offset then).
    FORGET = 4
    #: The room's state carried forward to the head of a new segment (or imported): ``epoch``, ``offset`` =
    #: its last offset, ``body`` = ``b"\x01"`` if it is listed (``b"\x00"`` if not), then the last offset
    #: at its latest forget (u64).
    STATE = 5


def encode(kind: int, room: bytes, epoch: int, offset: int, body: bytes) -> bytes:
    """One frame's bytes (``room`` already UTF-8)."""
    rest = _FIELDS.pack(kind, epoch, offset, len(room)) + room + body
    return _PREFIX.pack(len(rest), zlib.crc32(rest)) + rest


@dataclass(slots=True, frozen=True)
class Frame:
    kind: int
    room: str
    epoch: int
    offset: int
    #: Where the frame starts in its segment, and where its body starts and ends.
    position: int
    body_start: int
    end: int


class Torn(Exception):
    """A frame cut short or failing its crc at ``position``, reaching the end of the data: a write
    that did not complete."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"torn frame at byte {position}: {reason}")
        self.position = position


class Corrupt(Exception):
    """A frame failing its crc (or unreadable) with more data after it: not a torn write."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"corrupt frame at byte {position}: {reason}")
        self.position = position


def scan(data: bytes | memoryview) -> Iterator[Frame]:
    """The frames of one segment's bytes, in order.

    :raises Torn: the data ends in a frame that is cut short, or whose crc fails while it reaches the
        end of the data (or all that follows it is zero bytes): what a write cut by a crash leaves.
    :raises Corrupt: a frame fails its crc, or does not parse, with data after it.
    """
    view = memoryview(data)
    size = len(view)
    position = 0
    while position < size:
        if size - position < HEAD_SIZE:
            raise Torn(position, f"{size - position} bytes left, a frame head takes {HEAD_SIZE}")
        length, crc = _PREFIX.unpack_from(view, position)
        start = position + _PREFIX.size
        end = start + length
        if length < _FIELDS.size or length > MAX_FRAME or end > size:
            if not any(view[position:]):
                raise Torn(position, "zero bytes to the end")
            if end > size or length > MAX_FRAME:
                raise Torn(position, f"length {length} reaches past the end ({size - start} bytes left)")
            raise Corrupt(position, f"length {length} is shorter than a frame head")
        if zlib.crc32(view[start:end]) != crc:
            if end == size or not any(view[position:]):
                raise Torn(position, "crc mismatch in the last frame")
            raise Corrupt(position, "crc mismatch")
        kind, epoch, offset, room_length = _FIELDS.unpack_from(view, start)
        room_start = start + _FIELDS.size
        body_start = room_start + room_length
        if body_start > end:
            raise Corrupt(position, "room longer than its frame")
        try:
            room = bytes(view[room_start:body_start]).decode()
        except UnicodeDecodeError as exc:
            raise Corrupt(position, "room is not UTF-8") from exc
        yield Frame(kind, room, epoch, offset, position, body_start, end)
        position = end
