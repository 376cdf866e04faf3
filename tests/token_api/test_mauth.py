"""MAuth header parsing and signing, the nonce cache and the failure limiter (no I/O)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.fake_clock import FakeClock
from token_api.mauth import MalformedHeader, parse_header, sign, signature_matches
from token_api.ratelimit import FailureLimiter
from token_api.replay import NonceCache

from .conftest import mauth_header


def test_the_signature_is_base64_of_the_hex_hmac_as_owt_computes_it() -> None:
    # printf "1,2" | openssl dgst -sha256 -hmac key -r | cut -d" " -f1 | tr -d "\n" | base64 (hex, then base64 of the hex text)
    assert sign("key", "1,2") == (
        "YzA5YmM2NDBhY2RiNTEyN2YwMjQyYWIwY2UxM2U5ZTlmZTJhOTk1NjdlZGQ4YTY2NDU2MmI2MGQxZTM1YmFlNA=="
    )


def test_an_owt_header_parses_with_padding_kept() -> None:
    header = mauth_header("svc", "k", cnonce="42", timestamp=1700000000000, username="alice", role="viewer")
    credentials = parse_header(header)
    assert (credentials.service_id, credentials.cnonce, credentials.timestamp) == ("svc", "42", 1700000000000)
    assert credentials.signature.endswith("==")
    assert credentials.user == "alice" and credentials.role == "viewer"
    assert signature_matches(credentials, "k")
    assert not signature_matches(credentials, "other")


def test_spaces_and_quotes_are_tolerated() -> None:
    header = mauth_header("svc", "k", cnonce="7", timestamp=5)
    spaced = "  " + header.replace(",", " ,  ").replace("mauth_cnonce=7", 'mauth_cnonce="7"')
    assert signature_matches(parse_header(spaced), "k")


@pytest.mark.parametrize(
    "header",
    ["", "Basic abc", "MAuth ", "MAuth realm=x,mauth_signature_method=HMAC_SHA256", "MAuth a=b," + "x" * 5000],
)
def test_malformed_headers_are_refused(header: str) -> None:
    with pytest.raises(MalformedHeader):
        parse_header(header)


def test_a_nonce_is_accepted_once_within_twice_the_window() -> None:
    clock = FakeClock(100.0)
    cache = NonceCache(window=10, capacity=100, clock=clock)
    assert cache.add("svc", "1")
    assert not cache.add("svc", "1")
    assert cache.add("other", "1")
    clock.now += 19.9
    assert not cache.add("svc", "1")
    clock.now += 0.2
    assert cache.add("svc", "1")


def test_the_nonce_cache_reports_full_until_entries_expire() -> None:
    clock = FakeClock(100.0)
    cache = NonceCache(window=1, capacity=2, clock=clock)
    cache.add("s", "1")
    cache.add("s", "2")
    assert cache.is_full()
    clock.now += 2.1
    assert not cache.is_full() and len(cache) == 0


def test_failures_past_the_limit_make_an_address_wait_until_the_oldest_leaves_the_window() -> None:
    clock = FakeClock(100.0)
    limiter = FailureLimiter(limit=3, window=10, max_addresses=10, clock=clock)
    for _ in range(2):
        limiter.failed("1.2.3.4")
    assert limiter.retry_after("1.2.3.4") == 0
    clock.now += 4
    limiter.failed("1.2.3.4")
    assert limiter.retry_after("1.2.3.4") == 6
    assert limiter.retry_after("5.6.7.8") == 0
    clock.now += 6.01
    assert limiter.retry_after("1.2.3.4") == 0


def test_the_limiter_tracks_a_bounded_number_of_addresses() -> None:
    limiter = FailureLimiter(limit=1, window=10, max_addresses=2, clock=FakeClock(100.0))
    for address in ("a", "b", "c"):
        limiter.failed(address)
    assert limiter.retry_after("a") == 0
    assert limiter.retry_after("b") > 0 and limiter.retry_after("c") > 0


_SAFE = st.text(alphabet=st.characters(codec="ascii", exclude_characters=',="\\', min_codepoint=33), min_size=1,
                max_size=40)


@given(service=_SAFE, cnonce=_SAFE, timestamp=st.integers(0, 10**15), key=st.text(min_size=1, max_size=40),
       user=st.none() | st.text(min_size=1, max_size=30), role=_SAFE, spaced=st.booleans())
def test_any_header_built_like_owt_parses_and_verifies(
    service: str, cnonce: str, timestamp: int, key: str, user: str | None, role: str, spaced: bool
) -> None:
    header = mauth_header(service, key, cnonce=cnonce, timestamp=timestamp, username=user, role=role,
                          separator=" , " if spaced else ",")
    credentials = parse_header(header)
    assert (credentials.service_id, credentials.cnonce, credentials.timestamp) == (service, cnonce, timestamp)
    assert signature_matches(credentials, key)
    if user is not None:
        assert credentials.user == user and credentials.role == role


@given(st.text(max_size=300))
def test_parsing_arbitrary_text_only_ever_raises_malformed_header(text: str) -> None:
    for header in (text, "MAuth " + text):
        try:
            parse_header(header)
        except MalformedHeader:
            pass
