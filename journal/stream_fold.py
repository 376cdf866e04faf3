"""The messages of a room's stream and the fencing rule applied to them in stream order: :class:`Fold`.

A message's kind is header ``k``, its epoch header ``e`` (a snapshot's offset header ``o``); its
journal offset is its stream offset (``x-stream-offset``) plus one.  A claim of epoch ``e`` counts iff
``e`` is above the highest epoch counted before it, a record iff ``e`` is at least that (a record of a
higher epoch raises it, as a claim would); a "forgotten" entry starts a new history, the epoch going on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aio_pika.abc import AbstractIncomingMessage

from .base import JournalUnavailable
from .stream_appends import Seen

__all__ = ["RECORD", "CLAIM", "MARKER", "SNAPSHOT", "OPENED", "FORGOTTEN", "Message", "message_of", "message", "Fold"]

#: Message kinds (header ``k``).
RECORD, CLAIM, MARKER, SNAPSHOT = "record", "claim", "marker", "snapshot"
OPENED, FORGOTTEN = "opened", "forgotten"


@dataclass(slots=True, frozen=True)
class Message:
    offset: int  # journal offset: stream offset + 1
    kind: str
    epoch: int
    headers: dict[str, Any]
    body: bytes


def message_of(headers: dict[str, Any], body: bytes) -> Message:
    epoch = headers.get("e", 0)
    offset = headers.get("x-stream-offset")
    if not isinstance(offset, int):
        raise JournalUnavailable(f"journal: a delivery without its stream offset (headers {headers!r})")
    return Message(
        offset=offset + 1,
        kind=str(headers.get("k", "")),
        epoch=epoch if isinstance(epoch, int) else 0,
        headers=headers,
        body=body,
    )


def message(delivery: AbstractIncomingMessage) -> Message:
    return message_of(dict(delivery.headers), delivery.body)


class Fold:
    """The fencing rule applied in stream order, from a known point (``epoch`` in force, ``last`` record).

    The message at offset ``last`` itself (where a read starts when it resumes after a known record)
    only confirms the epoch in force there."""

    def __init__(self, epoch: int = 0, last: int = 0) -> None:
        self.epoch = epoch
        self.last = last

    def see(self, message: Message) -> Seen:
        before = self.last
        if message.kind == FORGOTTEN and message.offset > self.last:
            self.last = 0  # a new history starts; the epoch goes on
            return Seen(message.offset, False, self.epoch, before)
        if message.offset <= self.last:
            if message.kind in (RECORD, CLAIM):
                self.epoch = max(self.epoch, message.epoch)
            return Seen(message.offset, False, self.epoch, before)
        # a claim needs an epoch of its own (two holders never share one); a record the epoch in force
        counts = (message.kind == CLAIM and message.epoch > self.epoch) or (
            message.kind == RECORD and message.epoch >= self.epoch)
        if counts:
            self.epoch = message.epoch
            if message.kind == RECORD:
                self.last = message.offset
        return Seen(message.offset, counts, self.epoch, before)
