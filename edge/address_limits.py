"""Rate limits per client address: a token bucket for each, in a bounded table.

IPv6 clients are limited per ``/64`` (one subscriber's usual allocation), so that walking through
the addresses of one network does not multiply the limit.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["AddressRateLimiter", "limit_key"]


def limit_key(address: str) -> str:
    """The key an address is counted under: itself, or its ``/64`` for IPv6."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return address


class AddressRateLimiter:
    """At most ``burst`` at once and ``rate`` per second sustained, per address.

    At most ``max_addresses`` buckets are kept; the address seen least recently is forgotten first
    (it starts again with a full bucket).
    """

    __slots__ = ("_rate", "_burst", "_max_addresses", "_clock", "_buckets")

    def __init__(self, rate: float, burst: int, max_addresses: int, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1 or max_addresses < 1:
            raise ValueError("a rate limit needs a positive rate, burst and address count")
        self._rate = rate
        self._burst = float(burst)
        self._max_addresses = max_addresses
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, address: str) -> int:
        """``0`` if ``address`` may go ahead (and count it), else whole seconds until it may."""
        key = limit_key(address)
        now = self._clock()
        tokens, stamp = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - stamp) * self._rate)
        wait = 0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = max(1, math.ceil((1.0 - tokens) / self._rate))
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_addresses:
            self._buckets.popitem(last=False)
        return wait
