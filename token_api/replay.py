"""Replay protection for MAuth: a ``(service, cnonce)`` pair is accepted once within the window."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["NonceCache"]


class NonceCache:
    """Remembers each ``(service, cnonce)`` pair for ``2 × window`` seconds.

    A timestamp is accepted up to ``window`` seconds away from now, so a request stays replayable
    for at most ``2 × window``: remembering the pair that long closes the gap.  Entries leave in
    insertion order, which is expiry order, so pruning is cheap.
    """

    def __init__(self, window: float, capacity: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._keep = 2 * window
        self._capacity = capacity
        self._clock = clock
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def _prune(self, now: float) -> None:
        while self._seen:
            key, expires = next(iter(self._seen.items()))
            if expires > now:
                return
            del self._seen[key]

    def is_full(self) -> bool:
        self._prune(self._clock())
        return len(self._seen) >= self._capacity

    def add(self, service: str, cnonce: str) -> bool:
        """Record the pair; ``False`` if it was already seen within the window (a replay)."""
        now = self._clock()
        self._prune(now)
        key = (service, cnonce)
        if key in self._seen:
            return False
        self._seen[key] = now + self._keep
        return True
