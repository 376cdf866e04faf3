"""Join tokens and reconnection tickets: standard base64 of JSON, signed under the cluster keys.

Join token (what ``POST /token`` returns; the OWT SDK reads only ``host`` and ``secure``)::

    {"tokenId", "host", "secure", "room", "user", "role", "origin", "code", "notAfter", "signature"}

Reconnection ticket (what ``login``/``relogin``/``refreshReconnectionTicket`` return; the SDK
reads ``notAfter`` to refresh it 60 s before expiry)::

    {"participantId", "ticketId", "room", "notBefore", "notAfter", "signature"}

Times are milliseconds since the epoch.  The signature covers every other field (canonical JSON:
sorted keys, no spaces) under a salt per kind, so a ticket can never pass as a token or back.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import sys
import time
from typing import Any

import msgspec

from .errors import BadSignature, Expired, MalformedCredential, NotYetValid
from .keyring import Keyring

__all__ = [
    "JoinToken",
    "Ticket",
    "encode_token",
    "decode_token",
    "encode_ticket",
    "decode_ticket",
    "new_id",
    "now_ms",
    "TOKEN_SALT",
    "TICKET_SALT",
]

TOKEN_SALT = "switchboard.join-token"
TICKET_SALT = "switchboard.reconnection-ticket"
_MAX_LENGTH = 8192


class JoinToken(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    token_id: str
    host: str
    secure: bool
    room: str
    user: str
    role: str
    code: str
    not_after: int
    origin: dict[str, Any] = {}
    signature: str = ""


class Ticket(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    participant_id: str
    ticket_id: str
    room: str
    not_before: int
    not_after: int
    signature: str = ""


def new_id(nbytes: int = 12) -> str:
    return secrets.token_hex(nbytes)


def now_ms() -> int:
    return int(time.time() * 1000)


def _canonical(fields: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in fields.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _encode(struct: msgspec.Struct, keyring: Keyring, salt: str) -> str:
    fields = msgspec.to_builtins(struct)
    fields["signature"] = keyring.sign(_canonical(fields), salt)
    return base64.b64encode(json.dumps(fields, separators=(",", ":")).encode()).decode("ascii")


def _decode(text: Any, kind: type[msgspec.Struct], keyring: Keyring, salt: str, what: str) -> Any:
    if not isinstance(text, str) or not text or len(text) > _MAX_LENGTH:
        raise MalformedCredential(f"{what} must be a non-empty string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        fields = json.loads(raw)
    except (ValueError, UnicodeEncodeError, binascii.Error):
        raise MalformedCredential(f"{what} is not base64 JSON") from None
    if not isinstance(fields, dict) or not isinstance(fields.get("signature"), str):
        raise MalformedCredential(f"{what} has no signature")
    if not keyring.verify(_canonical(fields), fields["signature"], salt):
        raise BadSignature(f"{what} signature is invalid")
    try:
        return msgspec.convert(fields, kind)
    except msgspec.ValidationError as exc:
        raise MalformedCredential(f"{what} is malformed: {exc}") from None


def encode_token(token: JoinToken, keyring: Keyring) -> str:
    return _encode(token, keyring, TOKEN_SALT)


def decode_token(text: Any, keyring: Keyring, *, now: int | None = None) -> JoinToken:
    """Verify a join token's signature and expiry; raise a :class:`CredentialError` otherwise."""
    token: JoinToken = _decode(text, JoinToken, keyring, TOKEN_SALT, "token")
    if (now if now is not None else now_ms()) > token.not_after:
        raise Expired("token expired")
    # Sessions keep these, and many share them: one copy each instead of one per participant.
    token.room, token.role = sys.intern(token.room), sys.intern(token.role)
    return token


def encode_ticket(ticket: Ticket, keyring: Keyring) -> str:
    return _encode(ticket, keyring, TICKET_SALT)


def decode_ticket(text: Any, keyring: Keyring, *, now: int | None = None) -> Ticket:
    """Verify a reconnection ticket's signature and validity window."""
    ticket: Ticket = _decode(text, Ticket, keyring, TICKET_SALT, "ticket")
    current = now if now is not None else now_ms()
    if current > ticket.not_after:
        raise Expired("ticket expired")
    if current < ticket.not_before - 5_000:  # a little clock skew between nodes is tolerated
        raise NotYetValid("ticket not valid yet")
    ticket.room = sys.intern(ticket.room)  # as in decode_token
    return ticket
