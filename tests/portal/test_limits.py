"""The per-socket limits: the token bucket refills at ``rate_limit_per_second`` up to the burst,
and a socket's limits refuse what is over them (unit level, on a fake clock)."""

from __future__ import annotations

import pytest

from portal.errors import RateLimited, TooLarge, TooManyPending
from portal.limits import SocketLimits, TokenBucket
from tests.support.fake_clock import FakeClock


def _taken(bucket: TokenBucket, attempts: int) -> int:
    return sum(bucket.take() for _ in range(attempts))


def test_a_full_bucket_gives_its_burst_then_refuses() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, clock=FakeClock())
    assert _taken(bucket, 10) == 3


def test_the_bucket_refills_at_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert _taken(bucket, 3) == 3
    clock.advance(0.4)  # 0.8 of a token: not yet one
    assert not bucket.take()
    clock.advance(0.1)  # now exactly one
    assert bucket.take() and not bucket.take()
    clock.advance(1.0)  # two more
    assert _taken(bucket, 5) == 2


def test_the_refill_never_saves_more_than_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10.0, burst=2, clock=clock)
    assert _taken(bucket, 2) == 2
    clock.advance(3600)
    assert _taken(bucket, 10) == 2


def test_a_fractional_rate_refills_slowly() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=0.5, burst=1, clock=clock)
    assert bucket.take() and not bucket.take()
    clock.advance(1.9)
    assert not bucket.take()
    clock.advance(0.1)
    assert bucket.take()


def test_socket_limits_refuse_rate_pending_and_size_in_that_order() -> None:
    limits = SocketLimits(rate=1.0, burst=2, max_pending=1, max_bytes=10)
    limits.admit({"a": 1})
    with pytest.raises(TooManyPending):
        limits.admit(None)
    with pytest.raises(RateLimited):
        limits.admit(None)  # the burst of 2 is spent (the refused one took a token too)
    limits.done()
    limits.bucket = TokenBucket(rate=1.0, burst=5, clock=FakeClock())
    with pytest.raises(TooLarge):
        limits.admit({"payload": "x" * 20})
    assert limits.pending == 0
    limits.admit("short")
    assert limits.pending == 1
    limits.done()
    limits.done()
    assert limits.pending == 0
