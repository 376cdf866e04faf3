"""What a holder stream's messages carry, and the holder journal's record offsets.

A holder stream (one per :class:`~journal.holder.HolderJournal` instance, named with its incarnation)
holds messages of kind ``holder`` (header ``k``): a msgpack list of *entries* ``(kind, room, epoch,
body)``, each a record of a room, the start of a claim's window (:data:`START`), a fence written by a
claimer of the room (:data:`FENCE`), or the end of the holder's own window when it forgets the room
(:data:`END`).  End markers of reads (kind ``marker``) are ignored.

A record's offset packs where it is: the journal offset of the claim whose window holds it (its
offset in the room's own stream, so later claims give higher offsets), the journal offset of its
holder message (stream offset + 1) and its index in that message.  That keeps offsets increasing
within a room across claims and holders, and lets ``replay(after=offset)`` start reading right there.
"""

from __future__ import annotations

import msgspec

__all__ = ["START", "RECORD", "FENCE", "END", "HOLDER", "Entry", "MAX_ENTRIES", "CLAIM_LIMIT", "encode", "decode", "offset_of", "parts"]

#: Entry kinds.
START, RECORD, FENCE, END = 0, 1, 2, 3
#: Header ``k`` of a holder message.
HOLDER = "holder"

#: ``(kind, room, epoch, body)``.
Entry = tuple[int, str, int, bytes]

_INDEX_BITS = 10
_POSITION_BITS = 33
_CLAIM_BITS = 20
#: Most entries in one holder message (the index's bits).
MAX_ENTRIES = 1 << _INDEX_BITS
#: Claims must lie below this journal offset of their room's stream (the claim's bits).
CLAIM_LIMIT = 1 << _CLAIM_BITS

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[tuple[int, str, int, bytes]])


def encode(entries: list[Entry]) -> bytes:
    return _encoder.encode(entries)


def decode(body: bytes) -> list[Entry]:
    return _decoder.decode(body)


def offset_of(claim: int, position: int, index: int) -> int:
    """The offset of the record at ``index`` in the holder message at journal offset ``position``, in the
    window of the claim at journal offset ``claim`` of the room's stream.  Within 63 bits: a room's
    stream up to 2^20 messages (claims, forgets, read markers), a holder stream up to 2^33 messages."""
    if not (0 < claim < 1 << _CLAIM_BITS and 0 < position < 1 << _POSITION_BITS and 0 <= index < MAX_ENTRIES):
        raise ValueError(f"holder journal: offset out of range (claim {claim}, position {position}, index {index})")
    return (claim << (_POSITION_BITS + _INDEX_BITS)) | (position << _INDEX_BITS) | index


def parts(offset: int) -> tuple[int, int, int]:
    """``(claim, position, index)`` of a record offset (:func:`offset_of`)."""
    index = offset & (MAX_ENTRIES - 1)
    position = (offset >> _INDEX_BITS) & ((1 << _POSITION_BITS) - 1)
    return offset >> (_POSITION_BITS + _INDEX_BITS), position, index
