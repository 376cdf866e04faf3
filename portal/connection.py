"""One socket's state machine (OWT's ``Connection``): exactly one transition at a time.

::

    initialized ──login/relogin──▶ connecting ──ok──▶ connected ──socket lost──▶ waiting_for_reconnecting
         ▲                              │                  │                              │
         └──────────failed──────────────┘◀────logout───────┘                              ▼
                                                                                        closed

Any state goes to ``closed`` when the socket goes away.  A handler that awaited something checks
the state again before acting: a socket that closed meanwhile is never bound to a participant.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .errors import Ack, IllegalRequest, RequestError
from .limits import SocketLimits
from .logs import EventLog
from .session import Session

__all__ = ["State", "Connection", "IllegalTransition", "EarlyRequest"]


class State(enum.Enum):
    INITIALIZED = "initialized"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    WAITING_FOR_RECONNECTING = "waiting_for_reconnecting"
    CLOSED = "closed"


_ALLOWED: dict[State, frozenset[State]] = {
    State.INITIALIZED: frozenset({State.CONNECTING, State.CLOSED}),
    State.CONNECTING: frozenset({State.CONNECTED, State.INITIALIZED, State.CLOSED}),
    State.CONNECTED: frozenset({State.INITIALIZED, State.WAITING_FOR_RECONNECTING, State.CLOSED}),
    State.WAITING_FOR_RECONNECTING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


@dataclass(eq=False)
class EarlyRequest:
    """A request that came before the socket's ``relogin`` (socket.io-client 4.1+ ordering)."""

    action: Callable[[Connection, Any], Awaitable[Ack]]
    payload: Any
    reply: asyncio.Future[Ack] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Connection:
    """One socket's state; there is one per client, so it is kept small (the early list is made when needed)."""

    __slots__ = ("sid", "limits", "_log", "state", "session", "relogging", "_early", "idle_timer")

    def __init__(self, sid: str, limits: SocketLimits, log: EventLog) -> None:
        self.sid = sid
        self.limits = limits
        self._log = log
        self.state = State.INITIALIZED
        self.session: Session | None = None
        #: ``relogin`` is being processed on this socket.
        self.relogging = False
        self._early: list[EarlyRequest] | None = None
        self.idle_timer: asyncio.TimerHandle | None = None

    @property
    def log(self) -> EventLog:
        return self._log.bind(sid=self.sid)

    @property
    def early(self) -> list[EarlyRequest]:
        """The requests held until ``relogin`` settles, in arrival order."""
        return self._early if self._early is not None else []

    def move(self, to: State) -> None:
        if to not in _ALLOWED[self.state]:
            raise IllegalTransition(f"{self.sid}: {self.state.value} → {to.value}")
        self._log.debug("connection_state", sid=self.sid, state=to.value, previous=self.state.value)
        self.state = to

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    def require_session(self) -> Session:
        if self.state is not State.CONNECTED or self.session is None:
            raise IllegalRequest()
        return self.session

    def hold_early(self, action: Callable[[Connection, Any], Awaitable[Ack]], payload: Any) -> EarlyRequest:
        request = EarlyRequest(action, payload)
        if self._early is None:
            self._early = []
        self._early.append(request)
        return request

    async def release_early(self, run: bool) -> None:
        """Apply the held requests in arrival order (``run``, with a participant bound), or refuse them."""
        held, self._early = self._early or (), None
        for request in held:
            if request.reply.done():
                continue
            if not (run and self.state is State.CONNECTED and self.session is not None):
                request.reply.set_result(IllegalRequest().ack())
                continue
            try:
                request.reply.set_result(await request.action(self, request.payload))
            except RequestError as exc:
                request.reply.set_result(exc.ack())

    def cancel_idle_timer(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
