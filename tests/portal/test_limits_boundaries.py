"""The exact edges of a socket's limits: the size bound is inclusive, requests in flight are counted
one by one."""

from __future__ import annotations

import pytest

from portal.errors import TooLarge, TooManyPending
from portal.limits import SocketLimits, payload_size


def test_a_payload_of_exactly_max_bytes_is_admitted_one_byte_more_is_too_large() -> None:
    limits = SocketLimits(rate=100.0, burst=100, max_pending=10, max_bytes=payload_size({"m": "x" * 10}))
    limits.admit({"m": "x" * 10})
    with pytest.raises(TooLarge):
        limits.admit({"m": "x" * 11})


def test_requests_in_flight_are_counted_and_released_one_by_one() -> None:
    limits = SocketLimits(rate=100.0, burst=100, max_pending=3, max_bytes=1000)
    for _ in range(3):
        limits.admit(None)
    assert limits.pending == 3
    with pytest.raises(TooManyPending):
        limits.admit(None)
    limits.done()
    assert limits.pending == 2
    limits.admit(None)
    assert limits.pending == 3


def test_a_payload_json_cannot_encode_counts_as_zero_bytes() -> None:
    # (it is refused elsewhere as malformed, never as too large)
    assert payload_size(object()) == 0
    assert payload_size({"m": "é"}) == len('{"m":"é"}'.encode())
