"""A participant's outbox: seq-numbered notifications kept until acknowledged.

Seqs start at 1 and have no holes.  The outbox keeps a contiguous run ``first..last_seq``;
everything below ``first`` was either acknowledged or evicted by the bounds (count, age).  A
resume from ``last_seq`` can be served only when nothing unacknowledged after it was evicted.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

__all__ = ["Message", "Outbox", "OutboxGap"]


class Message(msgspec.Struct, frozen=True):
    seq: int
    event: str
    data: Any
    time: float

    def to_wire(self) -> dict[str, Any]:
        return {"seq": self.seq, "event": self.event, "data": self.data}


class OutboxGap(Exception):
    """Messages ``first..last`` were evicted before they were acknowledged."""

    def __init__(self, first: int, last: int) -> None:
        super().__init__(f"messages {first}..{last} are no longer kept")
        self.first = first
        self.last = last


class Outbox:
    """Bounded by ``max_messages`` and ``max_age`` seconds (on ``clock``).

    There is one per participant and it is empty most of the time (everything acknowledged): the
    deque (about 760 bytes even when empty) exists only while it holds messages.
    """

    __slots__ = ("max_messages", "max_age", "_clock", "_messages", "last_seq", "acked")

    def __init__(self, max_messages: int, max_age: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_messages = max(1, max_messages)
        self.max_age = max_age
        self._clock = clock
        self._messages: deque[Message] | None = None
        self.last_seq = 0
        self.acked = 0

    def __len__(self) -> int:
        return len(self._messages) if self._messages is not None else 0

    @property
    def first(self) -> int:
        """Seq of the oldest kept message (``last_seq + 1`` when empty)."""
        return self._messages[0].seq if self._messages else self.last_seq + 1

    def append(self, event: str, data: Any) -> int:
        self.last_seq += 1
        now = self._clock()
        if self._messages is None:
            self._messages = deque()
        self._messages.append(Message(self.last_seq, event, data, now))
        self._evict(now)
        return self.last_seq

    def ack(self, seq: int) -> None:
        """Everything up to ``seq`` was seen: drop it."""
        seq = min(seq, self.last_seq)
        if seq <= self.acked:
            return
        self.acked = seq
        messages = self._messages
        if messages is None:
            return
        while messages and messages[0].seq <= seq:
            messages.popleft()
        if not messages:
            self._messages = None

    def pending(self) -> list[Message]:
        self._evict(self._clock())
        return list(self._messages or ())

    def since(self, last_seq: int | None) -> list[Message]:
        """Every kept message after ``last_seq`` (``None``: after the last ack), acking the rest.

        Raises :class:`OutboxGap` when unacknowledged messages after ``last_seq`` were evicted.
        """
        self._evict(self._clock())
        seen = self.acked if last_seq is None else min(max(last_seq, self.acked), self.last_seq)
        if seen < self.first - 1:
            raise OutboxGap(seen + 1, self.first - 1)
        self.ack(seen)
        return list(self._messages or ())

    def _evict(self, now: float) -> None:
        messages = self._messages
        if messages is None:
            return
        while len(messages) > self.max_messages:
            messages.popleft()
        horizon = now - self.max_age
        while messages and messages[0].time < horizon:
            messages.popleft()
        if not messages:
            self._messages = None
