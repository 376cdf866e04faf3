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

**Rooms the stream journal wrote** (:class:`~journal.stream.StreamJournal`, ``journal.kind = "stream"``: its
records and claims in this same stream, no ``h``) are read, not skipped, so a cluster can switch from
``stream`` to ``holder`` with live rooms.  Its messages follow the stream journal's rule
(:class:`~journal.stream_fold.Fold`): its claim counts iff its epoch is above the room's, its record iff its
epoch is the room's while the stream journal holds the room, or above the room's (which takes the room, as
a claim would).  What it holds is a *room-stream window* (a :class:`Claim` whose holder is
:data:`ROOM_STREAM`): its records are the stream journal's records in this stream, of its epoch, up to the
next counting claim.  Such a window needs no fence: the next claim, written into this very stream, is one
the stream journal's own fold counts (a hold is written as a claim, ``t`` ``hold``, for that), so the old
holder's next append there is refused.  A record's offset there is the stream journal's own (the stream
offset + 1), below every holder-window offset, so the stream journal's snapshots stay valid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .stream_fold import FORGOTTEN, RECORD, Message

__all__ = ["CLAIM", "HOLD", "LAST", "ROOM_STREAM", "Claim", "ClaimsLog", "claim_headers", "ended_header",
           "ended_claims"]

CLAIM, HOLD, LAST = "claim", "hold", "last"
#: The holder of a room-stream window: the stream journal, its records in the room's own stream.
ROOM_STREAM = ""


@dataclass(slots=True, frozen=True)
class Claim:
    """A counting claim: its journal offset in the room's stream, its epoch, and its window's start."""

    at: int
    epoch: int
    holder: str
    position: int
    index: int


def claim_headers(kind: str, epoch: int, holder: str, position: int, index: int, last: int,
                  ended: list[Claim]) -> dict[str, object]:
    """The headers of a claim (``kind`` claim or hold) in a room's stream.  A hold is written as a claim
    (``t`` ``hold``): the stream journal's fold then counts it too, and a stream-journal holder is fenced."""
    headers: dict[str, object] = {"k": CLAIM, "e": epoch, "h": holder, "s": position, "i": index, "l": last,
                                  "f": ended_header(ended)}
    if kind == HOLD:
        headers["t"] = HOLD
    return headers


def _kind(message: Message) -> str:
    if message.kind == CLAIM and message.headers.get("t") in (HOLD, HOLD.encode()):
        return HOLD
    return message.kind


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
        kind = _kind(message)
        if kind == FORGOTTEN:
            self.claims, self.last = [], 0
        elif kind == LAST:
            self.last = max(self.last, _int(message, "l"))
        elif kind in (CLAIM, HOLD):
            holder = message.headers.get("h")
            if isinstance(holder, bytes):
                holder = holder.decode()
            if holder is None and kind == CLAIM:  # the stream journal's claim
                if message.epoch > self.epoch:
                    self._room_stream(message)
                    return True
            elif isinstance(holder, str) and holder and self.counts(kind, message.epoch, holder):
                self.epoch = message.epoch
                self.current = Claim(message.offset, message.epoch, holder, _int(message, "s"), _int(message, "i"))
                self.claims.append(self.current)
                self.open.append(self.current)
                self.last = max(self.last, _int(message, "l"))
                return True
        elif kind == RECORD:  # the stream journal's record
            current = self.current
            held = current is not None and current.holder == ROOM_STREAM and message.epoch == self.epoch
            if message.epoch > self.epoch or held or (current is None and message.epoch == self.epoch):
                if not (held and current in self.claims):  # it takes the room, or starts its new history
                    self._room_stream(message)
                self.last = max(self.last, message.offset)
        return False

    def _room_stream(self, message: Message) -> None:
        """The stream journal took the room (its claim, or a record of a newer epoch), or its record starts a
        new history after a forget: a room-stream window from ``message`` on."""
        self.epoch = message.epoch
        self.current = Claim(message.offset, message.epoch, ROOM_STREAM, message.offset, 0)
        self.claims.append(self.current)

    def window_end(self, claim: Claim) -> int | None:
        """The journal offset where ``claim``'s window (one of :attr:`claims`) ends in the room's stream: the
        next counting claim's (``None``: none yet)."""
        at = self.claims.index(claim)
        return self.claims[at + 1].at if at + 1 < len(self.claims) else None
