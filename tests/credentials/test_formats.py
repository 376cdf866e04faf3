"""Join tokens and reconnection tickets: format, signature, expiry, rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import pytest

from credentials import (
    BadSignature,
    CredentialError,
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
    new_id,
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


# -- the wire format, byte for byte ----------------------------------------------------------------


def _hmac_sha256_signature(payload: bytes, key: str, salt: str) -> str:
    """The signature as specified, computed without the code under test: HMAC-SHA256 under
    SHA-256(salt + "signer" + key), URL-safe base64 without padding."""
    derived = hashlib.sha256(salt.encode() + b"signer" + key.encode()).digest()
    digest = hmac.new(derived, payload, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def test_a_ticket_signature_covers_canonical_json_sorted_compact_and_unescaped() -> None:
    ticket = Ticket(participant_id="p-1", ticket_id="x", room="Café Zoë", not_before=1_000, not_after=2_000)
    text = encode_ticket(ticket, Keyring(["old-key", "new-key"]))
    canonical = '{"notAfter":2000,"notBefore":1000,"participantId":"p-1","room":"Café Zoë","ticketId":"x"}'
    signature = _hmac_sha256_signature(canonical.encode(), "new-key", "switchboard.reconnection-ticket")
    decoded = json.loads(base64.b64decode(text, validate=True))
    assert decoded == {"participantId": "p-1", "ticketId": "x", "room": "Café Zoë", "notBefore": 1000,
                       "notAfter": 2000, "signature": signature}


def test_a_token_signature_is_salted_apart_from_a_ticket_signature() -> None:
    token = _token(not_after=5_000, origin={})
    text = encode_token(token, Keyring(["k"]))
    canonical = ('{"code":"123","host":"portal.example:8080","notAfter":5000,"origin":{},"role":"presenter",'
                 '"room":"r1","secure":false,"tokenId":"t1","user":"alice"}')
    decoded = json.loads(base64.b64decode(text, validate=True))
    assert decoded["signature"] == _hmac_sha256_signature(canonical.encode(), "k", "switchboard.join-token")


def test_a_token_is_compact_json_without_spaces() -> None:
    text = encode_token(_token(), Keyring(["k"]))
    raw = base64.b64decode(text, validate=True).decode()
    assert raw == json.dumps(json.loads(raw), separators=(",", ":"))


def _token_of_length(length: int, ring: Keyring) -> str:
    for padding in range(length * 3 // 4 - 400, length):
        text = encode_token(_token(origin={"pad": "p" * padding}), ring)
        if len(text) >= length:
            return text
    raise AssertionError("unreachable")


def test_a_token_of_exactly_the_maximum_length_is_accepted_and_one_longer_is_refused() -> None:
    ring = Keyring(["k"])
    longest = _token_of_length(8192, ring)
    assert len(longest) == 8192
    assert decode_token(longest, ring).user == "alice"
    too_long = _token_of_length(8193, ring)
    assert len(too_long) == 8196  # base64 grows four characters at a time
    with pytest.raises(MalformedCredential) as refused:
        decode_token(too_long, ring)
    assert refused.value.message == "token must be a non-empty string"


def _signed(fields: dict[str, object], salt: str) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(json.dumps({**fields, "signature": _hmac_sha256_signature(canonical, "k", salt)})
                            .encode()).decode()


@pytest.mark.parametrize(("what", "decode", "salt"), [
    ("token", decode_token, "switchboard.join-token"),
    ("ticket", decode_ticket, "switchboard.reconnection-ticket"),
])
def test_each_refusal_says_what_is_wrong_and_names_the_credential(
        what: str, decode: Callable[[object, Keyring], object], salt: str) -> None:
    ring = Keyring(["k"])
    valid = encode_token(_token(), ring) if what == "token" else encode_ticket(
        Ticket(participant_id="p", ticket_id="x", room="r", not_before=now_ms(), not_after=now_ms() + 60_000), ring)
    no_signature = base64.b64encode(b'{"room": "r"}').decode()
    unsigned_garbage = base64.b64encode(json.dumps({"room": "r", "signature": "abc"}).encode()).decode()
    cases: list[tuple[object, type[CredentialError], str]] = [
        ("", MalformedCredential, f"{what} must be a non-empty string"),
        (42, MalformedCredential, f"{what} must be a non-empty string"),
        ("!!!!", MalformedCredential, f"{what} is not base64 JSON"),
        ("é", MalformedCredential, f"{what} is not base64 JSON"),
        (no_signature, MalformedCredential, f"{what} has no signature"),
        (unsigned_garbage, BadSignature, f"{what} signature is invalid"),
        (_signed({"room": "r"}, salt), MalformedCredential,
         f"{what} is malformed: Object missing required field `{'tokenId' if what == 'token' else 'participantId'}`"),
    ]
    assert decode(valid, ring) is not None
    for text, kind, message in cases:
        with pytest.raises(CredentialError) as refused:
            decode(text, ring)
        assert type(refused.value) is kind
        assert refused.value.message == message and str(refused.value) == message


def test_a_credential_with_characters_outside_base64_is_refused() -> None:
    ring = Keyring(["k"])
    text = encode_token(_token(), ring)
    for altered in (text[:8] + "\n" + text[8:], text[:8] + "*" + text[8:], " " + text):
        with pytest.raises(MalformedCredential) as refused:
            decode_token(altered, ring)
        assert refused.value.message == "token is not base64 JSON"


def test_a_signature_with_a_non_ascii_character_is_refused() -> None:
    ring = Keyring(["k"])
    fields = json.loads(base64.b64decode(encode_token(_token(), ring)))
    fields["signature"] = "é" + fields["signature"]
    with pytest.raises(BadSignature) as refused:
        decode_token(base64.b64encode(json.dumps(fields).encode()).decode(), ring)
    assert refused.value.message == "token signature is invalid"


# -- validity in time: the given clock, the exact bounds -------------------------------------------


def test_a_token_is_valid_up_to_and_including_its_not_after() -> None:
    ring = Keyring(["k"])
    text = encode_token(_token(not_after=1_000), ring)
    assert decode_token(text, ring, now=999).user == "alice"
    assert decode_token(text, ring, now=1_000).user == "alice"
    with pytest.raises(Expired) as refused:
        decode_token(text, ring, now=1_001)
    assert refused.value.message == "token expired" and refused.value.code == "expired"


def test_a_ticket_is_valid_from_five_seconds_before_not_before_to_not_after_inclusive() -> None:
    ring = Keyring(["k"])
    text = encode_ticket(Ticket(participant_id="p", ticket_id="x", room="room-7", not_before=100_000,
                                not_after=200_000), ring)
    for now in (95_000, 100_000, 200_000):
        ticket = decode_ticket(text, ring, now=now)
        assert (ticket.participant_id, ticket.ticket_id, ticket.room) == ("p", "x", "room-7")
    with pytest.raises(NotYetValid) as early:
        decode_ticket(text, ring, now=94_999)
    assert early.value.message == "ticket not valid yet" and early.value.code == "not_yet_valid"
    with pytest.raises(Expired) as late:
        decode_ticket(text, ring, now=200_001)
    assert late.value.message == "ticket expired" and str(late.value) == "ticket expired"


def test_now_is_the_wall_clock_in_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.25)
    assert now_ms() == 1_700_000_000_250


def test_ids_are_24_random_hex_characters() -> None:
    ids = {new_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 24 and set(i) <= set("0123456789abcdef") for i in ids)
    assert len(new_id(4)) == 8
