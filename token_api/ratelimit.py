"""Rate limiting of failed authentications per client address (OWT had none, issue §6.12)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = ["FailureLimiter"]


class FailureLimiter:
    """At most ``limit`` failures per address within ``window`` seconds; then the address waits.

    ``retry_after(address)`` is ``0`` while the address may try, otherwise the whole seconds until
    its oldest counted failure leaves the window.  At most ``max_addresses`` are tracked; the one
    least recently failing is forgotten first.
    """

    def __init__(
        self, limit: int, window: float, max_addresses: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = limit
        self._window = window
        self._max_addresses = max_addresses
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, address: str, now: float) -> deque[float] | None:
        times = self._failures.get(address)
        if times is None:
            return None
        while times and times[0] <= now - self._window:
            times.popleft()
        if not times:
            del self._failures[address]
            return None
        return times

    def retry_after(self, address: str) -> int:
        now = self._clock()
        times = self._recent(address, now)
        if times is None or len(times) < self._limit:
            return 0
        return max(1, math.ceil(times[0] + self._window - now))

    def failed(self, address: str) -> None:
        now = self._clock()
        times = self._recent(address, now)
        if times is None:
            times = deque(maxlen=self._limit)
            self._failures[address] = times
            while len(self._failures) > self._max_addresses:
                self._failures.popitem(last=False)
        else:
            self._failures.move_to_end(address)
        times.append(now)
