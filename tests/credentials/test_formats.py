"""Join tokens and reconnection tickets: format, signature, expiry, rotation."""

from __future__ import annotations

import base64
import json

import pytest

from credentials import (
    BadSignature,
    Expired,
    JoinToken,
    Keyring,
    MalformedCredential,
    NotYetValid,
    Ticket,
    decode_ticket,
    decode_token,
    encode_ticket,
    encode_token,
    now_ms,
)


def _token(**over: object) -> JoinToken:
    fields = dict(token_id="t1", host="portal.example:8080", secure=False, room="r1", user="alice",
                  role="presenter", code="123", not_after=now_ms() + 60_000, origin={"isp": "isp"})
    fields.update(over)
    return JoinToken(**fields)  # type: ignore[arg-type]


def test_a_token_is_standard_base64_json_with_host_and_a_boolean_secure() -> None:
    text = encode_token(_token(), Keyring(["k"]))
    decoded = json.loads(base64.b64decode(text, validate=True))
    assert decoded["host"] == "portal.example:8080" and decoded["secure"] is False
    assert decoded["tokenId"] == "t1" and isinstance(decoded["signature"], str)


def test_a_token_round_trips_and_a_tampered_one_is_refused() -> None:
    ring = Keyring(["k"])
    text = encode_token(_token(), ring)
    assert decode_token(text, ring).user == "alice"
    fields = json.loads(base64.b64decode(text))
    fields["role"] = "admin"
    forged = base64.b64encode(json.dumps(fields).encode()).decode()
    with pytest.raises(BadSignature):
        decode_token(forged, ring)
    with pytest.raises(BadSignature):
        decode_token(text, Keyring(["other"]))


def test_an_expired_token_is_refused() -> None:
    ring = Keyring(["k"])
    with pytest.raises(Expired):
        decode_token(encode_token(_token(not_after=now_ms() - 1), ring), ring)


@pytest.mark.parametrize("bad", ["", "!!!", base64.b64encode(b"[1]").decode(), 42, None, "a" * 10000,
                                 base64.b64encode(b'{"signature": 1}').decode()])
def test_malformed_tokens_are_refused_with_a_clear_error(bad: object) -> None:
    with pytest.raises(MalformedCredential):
        decode_token(bad, Keyring(["k"]))


def test_keys_rotate_without_breaking_credentials_in_flight() -> None:
    old = encode_token(_token(), Keyring(["k1"]))
    assert decode_token(old, Keyring(["k1", "k2"])).user == "alice"
    new = encode_token(_token(), Keyring(["k1", "k2"]))
    assert decode_token(new, Keyring(["k2"])).user == "alice"


def test_a_ticket_cannot_pass_as_a_token_or_back() -> None:
    ring = Keyring(["k"])
    ticket = encode_ticket(Ticket(participant_id="p", ticket_id="x", room="r", not_before=now_ms(),
                                  not_after=now_ms() + 1000), ring)
    with pytest.raises((BadSignature, MalformedCredential)):
        decode_token(ticket, ring)
    with pytest.raises((BadSignature, MalformedCredential)):
        decode_ticket(encode_token(_token(), ring), ring)


def test_a_ticket_has_a_validity_window() -> None:
    ring = Keyring(["k"])
    now = now_ms()
    ok = encode_ticket(Ticket(participant_id="p", ticket_id="x", room="r", not_before=now, not_after=now + 600_000), ring)
    assert decode_ticket(ok, ring).participant_id == "p"
    assert json.loads(base64.b64decode(ok))["notAfter"] == now + 600_000
    with pytest.raises(Expired):
        decode_ticket(ok, ring, now=now + 600_001)
    with pytest.raises(NotYetValid):
        decode_ticket(ok, ring, now=now - 60_000)
