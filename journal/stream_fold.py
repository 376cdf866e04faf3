"""The messages of a room's stream and the fencing rule applied to them in stream order: :class:`Fold`.

A message's kind is header ``k``, its epoch header ``e`` (a snapshot's offset header ``o``), the token
of its writer's claim header ``t``; its journal offset is its stream offset (``x-stream-offset``) plus
one.

A claim of epoch ``e`` counts iff ``e`` is above the highest epoch counted before it; it then is the
claim *in force*, and its token (8 random bytes, hex) names it.  A record with a token counts iff that
token and its epoch are the claim in force's: a writer's record never counts in another claim's
history, whatever its epoch, and records before any claim (a stream deleted by the sweeper and
declared again by a stale writer) never count.  A record without a token (written before tokens
existed) follows the epoch rule alone: it counts iff its epoch is at least the highest counted, unless
a claim with a token holds that very epoch (a record of a higher epoch raises it, as a claim would).
A "forgotten" entry starts a new history, the epoch going on, no claim in force; a "continued" entry
(the first of a stream the sweeper deleted, written by a claimer that knew the room's last epoch)
raises the epoch to its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from .base import JournalUnavailable
from .stream_appends import Seen

__all__ = ["RECORD", "CLAIM", "MARKER", "SNAPSHOT", "OPENED", "FORGOTTEN", "SWEPT", "CONTINUED", "Message", "message_of", "message", "Fold"]

#: Message kinds (header ``k``).
RECORD, CLAIM, MARKER, SNAPSHOT = "record", "claim", "marker", "snapshot"
OPENED, FORGOTTEN = "opened", "forgotten"
#: Rooms directory: the room's stream was deleted by the sweeper (headers ``e``, ``o``: its last epoch and offset).
SWEPT = "swept"
#: Room stream: a stream declared again after a sweep goes on above the epoch in header ``e``.
CONTINUED = "continued"


@dataclass(slots=True, frozen=True)
class Message:
    offset: int  # journal offset: stream offset + 1
    kind: str
    epoch: int
    headers: dict[str, Any]
    body: bytes
    #: The token of the claim its writer held (``None``: a message without one).
    token: str | None = None


def message_of(headers: dict[str, Any], body: bytes) -> Message:
    epoch = headers.get("e", 0)
    token = headers.get("t")
    offset = headers.get("x-stream-offset")
    if not isinstance(offset, int):
        raise JournalUnavailable(f"journal: a delivery without its stream offset (headers {headers!r})")
    return Message(
        offset=offset + 1,
        kind=str(headers.get("k", "")),
        epoch=epoch if isinstance(epoch, int) else 0,
        headers=headers,
        body=body,
        token=token if isinstance(token, str) else None,
    )


def message(delivery: AbstractIncomingMessage) -> Message:
    return message_of(dict(delivery.headers), delivery.body)


class Fold:
    """The fencing rule applied in stream order, from a known point (``epoch`` in force, ``last`` record,
    ``token`` of the claim in force).

    The message at offset ``last`` itself (where a read starts when it resumes after a known record)
    only confirms the epoch in force there, and the claim in force: the token that record carries."""

    def __init__(self, epoch: int = 0, last: int = 0, token: str | None = None) -> None:
        self.epoch = epoch
        self.last = last
        #: The token of the claim in force (``None``: none, or one written without a token).
        self.token = token

    def see(self, message: Message) -> Seen:
        before = self.last
        kind = message.kind
        if kind == FORGOTTEN and message.offset > self.last:
            self.last = 0  # a new history starts; the epoch goes on
            self.token = None
            return Seen(message.offset, False, self.epoch, before)
        if kind == CONTINUED:
            if message.epoch > self.epoch:
                self.epoch, self.token = message.epoch, None
            return Seen(message.offset, False, self.epoch, before)
        if message.offset <= self.last:
            if kind in (RECORD, CLAIM):
                self.epoch = max(self.epoch, message.epoch)
                if kind == RECORD and message.offset == self.last:
                    self.token = message.token
            return Seen(message.offset, False, self.epoch, before)
        if kind == CLAIM:
            # a claim needs an epoch of its own (two holders never share one)
            counts = message.epoch > self.epoch
            if counts:
                self.epoch, self.token = message.epoch, message.token
        elif kind == RECORD:
            if message.token is not None:  # the claim in force's writer, under its epoch
                counts = message.token == self.token and message.epoch == self.epoch
            else:  # written before tokens: the epoch rule alone, unless a claim with a token holds the epoch
                counts = message.epoch > self.epoch or (message.epoch == self.epoch and self.token is None)
                if counts:
                    self.epoch, self.token = message.epoch, None
            if counts:
                self.last = message.offset
        else:
            counts = False
        return Seen(message.offset, counts, self.epoch, before)
