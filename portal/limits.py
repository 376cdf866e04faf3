"""Per-socket limits: request size, request rate (token bucket) and requests in flight."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from .errors import RateLimited, TooLarge, TooManyPending

__all__ = ["TokenBucket", "SocketLimits", "payload_size"]

_encoder = msgspec.json.Encoder()


def payload_size(payload: Any) -> int:
    """Bytes of ``payload`` as JSON (what the client sent, give or take whitespace)."""
    try:
        return len(_encoder.encode(payload))
    except (TypeError, msgspec.EncodeError):
        return 0


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up."""

    __slots__ = ("rate", "burst", "_clock", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class SocketLimits:
    """What one socket may send; ``admit`` raises the refusal, ``done`` closes an admitted request."""

    __slots__ = ("bucket", "max_pending", "max_bytes", "pending")

    def __init__(self, *, rate: float, burst: int, max_pending: int, max_bytes: int) -> None:
        self.bucket = TokenBucket(rate, burst)
        self.max_pending = max_pending
        self.max_bytes = max_bytes
        self.pending = 0

    def admit(self, payload: Any) -> None:
        if not self.bucket.take():
            raise RateLimited()
        if self.pending >= self.max_pending:
            raise TooManyPending()
        if payload is not None and payload_size(payload) > self.max_bytes:
            raise TooLarge()
        self.pending += 1

    def done(self) -> None:
        self.pending = max(0, self.pending - 1)
