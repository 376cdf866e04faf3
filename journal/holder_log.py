"""A room's own stream in the holder journal: its claims log, :class:`ClaimsLog`.

``<prefix>room.<room>`` keeps only claims (header ``k`` ``claim`` or ``hold``: epoch ``e``, the
claimer's holder stream ``h``, where its window starts there ``s``/``i``, the last record before it ``l``),
"last" notes (``l``), "forgotten" entries and read markers.  The rule, in stream order: a claim counts iff
its epoch is above the room's; a hold (an append under a newer epoch, or the first one) also when its
epoch is the room's and its holder stream is the current holder's.  A counting claim makes its holder
stream the room's current one; a "forgotten" entry starts a new history (the epoch and the current holder
go on, so the next claimer still fences it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .stream_fold import FORGOTTEN, Message

__all__ = ["CLAIM", "HOLD", "LAST", "Claim", "ClaimsLog"]

CLAIM, HOLD, LAST = "claim", "hold", "last"


@dataclass(slots=True, frozen=True)
class Claim:
    """A counting claim: its journal offset in the room's stream, its epoch, and its window's start."""

    at: int
    epoch: int
    holder: str
    position: int
    index: int


def _int(message: Message, name: str) -> int:
    value = message.headers.get(name, 0)
    return value if isinstance(value, int) else 0


@dataclass(slots=True)
class ClaimsLog:
    """What a room's stream says, folded from its first message up to ``next`` (a stream offset)."""

    epoch: int = 0
    #: The last counting claim, even before a forget: its holder is fenced by the next claimer.
    current: Claim | None = None
    #: The counting claims since the room was last forgotten, in order: its history's windows.
    claims: list[Claim] = field(default_factory=list)
    #: The highest "last record before" noted since the last forget.
    last: int = 0
    #: Where to read on from (stream offset).
    next: int | str = "first"

    def copy(self) -> ClaimsLog:
        return ClaimsLog(self.epoch, self.current, list(self.claims), self.last, self.next)

    def counts(self, kind: str, epoch: int, holder: str) -> bool:
        """Whether a claim (``kind`` claim or hold) by ``holder`` would count now."""
        return epoch > self.epoch or (kind == HOLD and epoch == self.epoch and self.current is not None
                                      and self.current.holder == holder)

    def see(self, message: Message) -> bool:
        """Fold one message; ``True`` for a claim that counts."""
        self.next = message.offset  # journal offset = the next stream offset
        if message.kind == FORGOTTEN:
            self.claims, self.last = [], 0
        elif message.kind == LAST:
            self.last = max(self.last, _int(message, "l"))
        elif message.kind in (CLAIM, HOLD):
            holder = message.headers.get("h")
            if isinstance(holder, str) and self.counts(message.kind, message.epoch, holder):
                self.epoch = message.epoch
                self.current = Claim(message.offset, message.epoch, holder, _int(message, "s"), _int(message, "i"))
                self.claims.append(self.current)
                self.last = max(self.last, _int(message, "l"))
                return True
        return False
