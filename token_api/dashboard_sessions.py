"""Browser sessions of the status page: who logged in with an admin key, held in this process.

A login (the admin key, checked by the cluster manager) makes a session: a random id, the admin key
the page's calls carry, and a CSRF token the page's POSTs must echo.  The browser holds only the id,
signed (``itsdangerous``, with a key made at start-up and never written anywhere) in an HttpOnly,
SameSite=Strict cookie; the admin key never leaves the server.  Sessions end after ``lifetime``
seconds, at logout, or when more than ``limit`` exist (the oldest first); they live in this token
API process only, so a restart or another token API process asks for the key again.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from itsdangerous import BadSignature, Signer

__all__ = ["DashboardSession", "DashboardSessions"]


@dataclass(frozen=True, slots=True)
class DashboardSession:
    id: str
    admin_key: str
    #: What the page's POSTs carry in ``X-CSRF-Token``.
    csrf: str
    created: float

    def csrf_matches(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class DashboardSessions:
    """At most ``limit`` sessions of ``lifetime`` seconds (``clock``: monotonic seconds)."""

    def __init__(self, lifetime: float, limit: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._lifetime = lifetime
        self._limit = limit
        self._clock = clock
        self._signer = Signer(secrets.token_bytes(32), salt="switchboard.dashboard.session")
        self._sessions: OrderedDict[str, DashboardSession] = OrderedDict()

    def open(self, admin_key: str) -> tuple[str, DashboardSession]:
        """A new session for ``admin_key``; returns the cookie value and the session."""
        self._expire()
        session = DashboardSession(secrets.token_urlsafe(32), admin_key, secrets.token_urlsafe(32), self._clock())
        self._sessions[session.id] = session
        while len(self._sessions) > self._limit:
            self._sessions.popitem(last=False)
        return self._signer.sign(session.id).decode(), session

    def find(self, cookie: str | None) -> DashboardSession | None:
        """The live session a cookie names, or ``None`` (no cookie, a bad signature, ended)."""
        if not cookie:
            return None
        try:
            session_id = self._signer.unsign(cookie).decode()
        except BadSignature:
            return None
        self._expire()
        return self._sessions.get(session_id)

    def close(self, cookie: str | None) -> None:
        session = self.find(cookie)
        if session is not None:
            self._sessions.pop(session.id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self) -> None:
        now = self._clock()
        while self._sessions:
            oldest = next(iter(self._sessions.values()))
            if now - oldest.created <= self._lifetime:
                return
            self._sessions.popitem(last=False)
