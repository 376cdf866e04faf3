"""Dead letters: what still failed after its retries, kept for a developer to inspect and replay.

An alert that no attempt delivered to a sink, or a message a component gave up on (a
controller's ``deliver`` to a portal, …).  :class:`LocalDeadLetters` keeps them in memory, bounded
(embedded mode); :class:`alerts.amqp_store.AmqpDeadLetters` on a RabbitMQ dead-letter exchange and
its quorum queue (cluster mode).  Only the alert service writes and reads a store.
"""

from __future__ import annotations

import abc
import time
import uuid
from collections import OrderedDict
from typing import Any, Literal

import msgspec

from .grouping import Alert

__all__ = ["DeadLetter", "DeadLetterStore", "LocalDeadLetters", "new_id"]


def new_id() -> str:
    return uuid.uuid4().hex[:16]


class DeadLetter(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    id: str = msgspec.field(default_factory=new_id)
    #: ``alert``: an alert a sink did not take; ``message``: an RPC a component gave up on.
    origin: Literal["alert", "message"]
    #: One line: what it is.
    description: str
    #: The last attempt's error.
    reason: str
    attempts: int
    #: Who gave it up (a node id).
    source: str = ""
    at: float = msgspec.field(default_factory=time.time)
    #: ``alert``: the sink's name and the alert.
    sink: str = ""
    alert: Alert | None = None
    #: ``message``: the call to make again (``target.method(args)``).
    target: str = ""
    method: str = ""
    args: dict[str, Any] | None = None
    #: The fault telling of it joins this group (a lost portal's undelivered messages join its loss).
    group: str = ""
    #: Times ``retry`` failed on it.
    retries: int = 0

    def summary(self) -> dict[str, Any]:
        """What ``list`` shows of it (no payload)."""
        return {"id": self.id, "origin": self.origin, "description": self.description, "reason": self.reason,
                "attempts": self.attempts, "at": self.at, "source": self.source,
                "to": self.sink if self.origin == "alert" else f"{self.target}.{self.method}",
                "retries": self.retries}


class DeadLetterStore(abc.ABC):
    """Where dead letters are kept, oldest first, at most ``max_count`` (the oldest go)."""

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    @abc.abstractmethod
    async def put(self, letter: DeadLetter) -> None:
        """Keep ``letter``.  :raises StoreUnavailable: it could not be kept."""

    @abc.abstractmethod
    async def list(self) -> list[DeadLetter]: ...

    @abc.abstractmethod
    async def remove(self, letter_id: str) -> bool:
        """Drop one; ``False`` if there is none with that id."""

    @abc.abstractmethod
    async def purge(self) -> int:
        """Drop all; how many there were."""

    async def get(self, letter_id: str) -> DeadLetter | None:
        return next((letter for letter in await self.list() if letter.id == letter_id), None)

    async def replace(self, letter: DeadLetter) -> None:
        """Keep ``letter`` instead of the one with its id (a retry that failed again)."""
        await self.remove(letter.id)
        await self.put(letter)


class StoreUnavailable(Exception):
    """The store cannot be reached (the broker is down)."""


class LocalDeadLetters(DeadLetterStore):
    """In memory, at most ``max_count`` (embedded mode: one process, lost with it)."""

    def __init__(self, max_count: int) -> None:
        self.max_count = max_count
        self._letters: OrderedDict[str, DeadLetter] = OrderedDict()
        #: Dead letters dropped to make room.
        self.dropped = 0

    async def put(self, letter: DeadLetter) -> None:
        self._letters[letter.id] = letter
        while len(self._letters) > self.max_count:
            self._letters.popitem(last=False)
            self.dropped += 1

    async def list(self) -> list[DeadLetter]:
        return list(self._letters.values())

    async def remove(self, letter_id: str) -> bool:
        return self._letters.pop(letter_id, None) is not None

    async def purge(self) -> int:
        count = len(self._letters)
        self._letters.clear()
        return count
