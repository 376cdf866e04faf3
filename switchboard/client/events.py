"""Events as the client hands them to applications: callbacks and a consumable backlog.

Server notifications (``participant``, ``text``, ``stream``, ``progress``, ``drop``) and the
client's own session events (``disconnected``, ``reconnected``, ``resync-required``, ``closed``) go
through one :class:`EventHub`, in the order the client applied them.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .logs import ClientLog

__all__ = ["Event", "EventHandler", "EventHub", "SESSION_EVENTS"]

_log = ClientLog()

#: Events the client itself produces (never sent by a server).
SESSION_EVENTS = frozenset({"disconnected", "reconnected", "resync-required", "closed"})

_HANDLER_GRACE = 5.0

EventHandler = Callable[["Event"], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Event:
    """One event.

    :ivar name: ``'text'``, ``'participant'``, … or a session event (:data:`SESSION_EVENTS`).
    :ivar data: the payload as the server sent it, without the extension's ``seq`` field.
    :ivar seq: the extension's per-participant sequence number, ``None`` without the extension.
    :ivar replayed: ``True`` when it came in the replay of a relogin rather than live.
    """

    name: str
    data: Any = None
    seq: int | None = None
    replayed: bool = False
    received_at: float = field(default_factory=time.monotonic, compare=False, repr=False)


class EventHub:
    """Runs handlers in event order on one task and keeps a backlog for :meth:`next_event`."""

    def __init__(self, backlog: int) -> None:
        self._handlers: dict[str, list[EventHandler]] = {}
        self._backlog: deque[Event] = deque(maxlen=backlog)
        self._arrived = asyncio.Event()
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None

    def add_handler(self, name: str, handler: EventHandler) -> None:
        self._handlers.setdefault(name, []).append(handler)

    def remove_handler(self, name: str, handler: EventHandler) -> None:
        handlers = self._handlers.get(name, [])
        if handler in handlers:
            handlers.remove(handler)

    def publish(self, event: Event) -> None:
        """Record ``event`` and queue it for the handlers; never blocks."""
        self._backlog.append(event)
        self._queue.put_nowait(event)
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name="switchboard-client-events")
        # Wake every waiter of next_event; later waiters wait on a fresh asyncio.Event.
        self._arrived.set()
        self._arrived = asyncio.Event()

    async def next_event(self, name: str | None, timeout: float | None) -> Event:
        """Remove and return the oldest backlog event named ``name`` (any event when ``None``).

        :raises TimeoutError: when none arrives within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while True:
                found = self._take(name)
                if found is not None:
                    return found
                await self._arrived.wait()

    def drain(self, name: str | None) -> list[Event]:
        """Remove and return every backlog event named ``name`` (all events when ``None``)."""
        taken = [e for e in self._backlog if name is None or e.name == name]
        for event in taken:
            self._backlog.remove(event)
        return taken

    async def close(self) -> None:
        """Let the handlers finish the events already published, then stop the handler task."""
        runner, self._runner = self._runner, None
        if runner is not None:
            self._queue.put_nowait(None)
            if runner is asyncio.current_task():  # closed from inside a handler: it ends after this event
                return
            try:
                await asyncio.wait_for(runner, _HANDLER_GRACE)
            except TimeoutError:
                _log.warning("event_handlers_cancelled", grace=_HANDLER_GRACE)

    def _take(self, name: str | None) -> Event | None:
        for event in self._backlog:
            if name is None or event.name == name:
                self._backlog.remove(event)
                return event
        return None

    async def _run(self) -> None:
        while (event := await self._queue.get()) is not None:
            for handler in (*self._handlers.get(event.name, ()), *self._handlers.get("*", ())):
                try:
                    result = handler(event)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    _log.exception("event_handler_failed", event_name=event.name)
