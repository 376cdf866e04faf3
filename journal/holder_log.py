"""A room's own stream in the holder journal: its claims log, :class:`ClaimsLog`.

``<prefix>room.<room>`` keeps only claims (header ``k`` ``claim`` or ``hold``: epoch ``e``, the
claimer's holder stream ``h``, where its window starts there ``s``/``i``, the last record before it ``l``),
"last" notes (``l``), "forgotten" entries and read markers.  A claim or a "last" note may say which claims' windows
its writer ended (``f``: their journal offsets): a window no entry says was ended stays *open*, and the next
claimer ends every open window, not only the current holder's (a claimer that died between its claim and
fencing a claim that raced it leaves that one open).  The rule, in stream order: a claim counts iff
its epoch is above the room's; a hold (an append under a newer epoch, or the first one) also when its
epoch is the room's and its holder stream is the current holder's.  A counting claim makes its holder
stream the room's current one; a "forgotten" entry starts a new history (the epoch and the current holder
go on, so the next claimer still fences it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .stream_fold import FORGOTTEN, Message

__all__ = ["CLAIM", "HOLD", "LAST", "Claim", "ClaimsLog", "ended_header", "ended_claims"]

CLAIM, HOLD, LAST = "claim", "hold", "last"


@dataclass(slots=True, frozen=True)
class Claim:
    """A counting claim: its journal offset in the room's stream, its epoch, and its window's start."""

    at: int
    epoch: int
    holder: str
    position: int
    index: int


def ended_header(claims: list[Claim]) -> str:
    """Header ``f``: the journal offsets of claims whose windows the writer ended (a string: a stream keeps no
    array header)."""
    return ",".join(str(claim.at) for claim in claims)


def ended_claims(headers: dict[str, object]) -> set[int]:
    """The claims' offsets header ``f`` names (:func:`ended_header`)."""
    value = headers.get("f")
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return set()
    return {int(part) for part in value.split(",") if part.isdigit()}


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
    #: Counting claims whose windows no entry says were ended (``f``), in order, across forgets: the next
    #: claimer ends each of them.
    open: list[Claim] = field(default_factory=list)
    #: Where to read on from (stream offset).
    next: int | str = "first"

    def copy(self) -> ClaimsLog:
        return ClaimsLog(self.epoch, self.current, list(self.claims), self.last, list(self.open), self.next)

    def counts(self, kind: str, epoch: int, holder: str) -> bool:
        """Whether a claim (``kind`` claim or hold) by ``holder`` would count now."""
        return epoch > self.epoch or (kind == HOLD and epoch == self.epoch and self.current is not None
                                      and self.current.holder == holder)

    def see(self, message: Message) -> bool:
        """Fold one message; ``True`` for a claim that counts."""
        self.next = message.offset  # journal offset = the next stream offset
        if self.open and "f" in message.headers:
            ended = ended_claims(message.headers)
            self.open = [claim for claim in self.open if claim.at not in ended]
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
                self.open.append(self.current)
                self.last = max(self.last, _int(message, "l"))
                return True
        return False
