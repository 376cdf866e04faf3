"""The fencing rule in a holder stream, applied in stream order by every reader: :class:`HolderFold`
for the writer's own tail (every room), :class:`Window` for a reader of one claim's records.

Per room, a holder stream's entries (:mod:`journal.holder_entries`) follow this rule: a START of epoch
``e`` (the holder's claim) or a FENCE of epoch ``e`` (another journal's claim) counts iff ``e`` is above
the room's epoch in this stream; a START opens the room's window, a FENCE closes it; an END (the holder
forgets the room) of the room's epoch closes an open window too, and then a START of that same epoch counts
again (the holder holds the room again after the forget, a new history); a RECORD counts iff the window is
open and its epoch is the window's.  The writer waits until its tail has read its own
message back, so its verdict on a record is the one every later reader reaches.
"""

from __future__ import annotations

from dataclasses import dataclass

from .base import JournalRecord
from .holder_entries import END, FENCE, HOLDER, RECORD, START, decode, offset_of
from .stream_fold import Message

__all__ = ["Held", "HolderFold", "Window"]


@dataclass(slots=True)
class Held:
    """One room in one holder stream: its epoch there, whether its window is open, and whether the holder
    ended it itself (an END: a START of the same epoch opens it again)."""

    epoch: int = 0
    open: bool = False
    ended: bool = False


class HolderFold:
    """Every room of one holder stream, from the stream's first message."""

    def __init__(self) -> None:
        self.rooms: dict[str, Held] = {}

    def see(self, kind: int, room: str, epoch: int) -> bool:
        """Whether the entry counts (a START or FENCE that moved the room's epoch, a RECORD kept)."""
        held = self.rooms.get(room)
        if held is None:
            held = self.rooms[room] = Held()
        if kind == RECORD:
            return held.open and epoch == held.epoch
        if kind == END:
            if held.open and epoch == held.epoch:
                held.open, held.ended = False, True
                return True
            return False
        if epoch > held.epoch or (kind == START and epoch == held.epoch and held.ended):
            held.epoch, held.open, held.ended = epoch, kind == START, False
            return True
        return False

    def opened(self, room: str, epoch: int) -> bool:
        """Whether the room's window is open here under ``epoch``."""
        held = self.rooms.get(room)
        return held is not None and held.open and held.epoch == epoch

    def epoch(self, room: str) -> int:
        held = self.rooms.get(room)
        return held.epoch if held is not None else 0


class Window:
    """One room's records in the window of one claim (at journal offset ``claim`` of the room's stream,
    epoch ``epoch``): from its START at (``position``, ``index``) — or, with ``inside``, from just after
    the record there — up to the next START of the room (a later claim by the same holder), an END (the
    holder forgot the room) or a FENCE of a higher epoch, which end it."""

    def __init__(self, room: str, claim: int, epoch: int, position: int, index: int, *, inside: bool = False,
                 keep: bool = True, last: int = 0) -> None:
        self.room = room
        self.claim = claim
        self.epoch = epoch
        self.position = position
        self.index = index
        self.inside = inside
        self.keep = keep
        self.open = inside
        self.ended = False
        self.records: list[JournalRecord] = []
        #: The offset of the last record that counts (0: none yet; ``last``: one known before the start).
        self.last = self._known = last

    def begin(self) -> Window:
        """Read again from the start (a scan that starts over)."""
        self.open, self.ended, self.records, self.last = self.inside, False, [], self._known
        return self

    def __call__(self, message: Message) -> bool:
        """See one message of the holder stream; ``True`` once the window has ended."""
        if self.ended or message.offset < self.position:
            return self.ended
        if message.kind != HOLDER:
            if not self.open and message.offset > self.position:
                self.open = True  # see :meth:`see`
            return False
        return self.see(message.offset, [(index, kind, epoch, body) for index, (kind, room, epoch, body)
                                         in enumerate(decode(message.body)) if room == self.room])

    def see(self, offset: int, entries: list[tuple[int, int, int, bytes]]) -> bool:
        """See the room's entries ``(index, kind, epoch, body)`` of the holder message at journal offset
        ``offset`` (a message without any may be left out); ``True`` once the window has ended."""
        if self.ended or offset < self.position:
            return self.ended
        if not self.open and offset > self.position:
            # retention dropped the window's START: what is left of it counts (a suffix, as with the stream
            # journal's retention; a snapshot must cover the rest)
            self.open = True
        here = offset == self.position
        for index, kind, epoch, body in entries:
            if here and (index <= self.index if self.inside else index < self.index):
                continue
            if not self.open:
                self.open = kind == START and epoch == self.epoch
            elif kind == RECORD:
                if epoch == self.epoch:
                    self.last = offset_of(self.claim, offset, index)
                    if self.keep:
                        self.records.append(JournalRecord(offset=self.last, epoch=epoch, body=body))
            elif (kind in (START, END) and epoch >= self.epoch) or (kind == FENCE and epoch > self.epoch):
                # a START of the same epoch: the same holder held the room again after a forget
                self.ended = True
                return True
        return False
