"""OWT's MAuth service authentication: header parsing and signatures (no I/O, no state).

Header (OWT ``serverAuthenticator.js``)::

    Authorization: MAuth realm=<any>,mauth_signature_method=HMAC_SHA256,mauth_serviceid=<id>,
                   mauth_cnonce=<int>,mauth_timestamp=<ms>,mauth_signature=<sig>
                   [,mauth_username=<base64>,mauth_role=<role>]

Signature = base64(lowercase hex(HMAC-SHA256(service key, "<timestamp>,<cnonce>[,<username>,<role>]"))),
where ``username`` is the header's value as sent (still base64).  Unlike OWT, the parser accepts
spaces around pieces and double-quoted values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

__all__ = ["MAuthCredentials", "MalformedHeader", "parse_header", "sign", "signature_matches", "SIGNATURE_METHOD"]

SIGNATURE_METHOD = "HMAC_SHA256"
_SCHEME = "mauth"
_MAX_HEADER = 4096
_MAX_VALUE = 512


class MalformedHeader(ValueError):
    """The ``Authorization`` header is not a usable MAuth header; the message says why."""


@dataclass(frozen=True, slots=True)
class MAuthCredentials:
    service_id: str
    cnonce: str
    timestamp: int
    signature: str
    #: As sent (base64); ``user`` is the decoded text.
    username: str | None = None
    role: str | None = None

    @property
    def user(self) -> str | None:
        """The decoded ``mauth_username``, which overrides the body's ``user``."""
        if self.username is None:
            return None
        try:
            return base64.b64decode(self.username, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise MalformedHeader("mauth_username is not base64 of UTF-8 text") from None

    def signed_text(self) -> str:
        text = f"{self.timestamp},{self.cnonce}"
        if self.username is not None and self.role is not None:
            text += f",{self.username},{self.role}"
        return text


def _fields(header: str) -> dict[str, str]:
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != _SCHEME or not rest.strip():
        raise MalformedHeader("Authorization must use the MAuth scheme")
    fields: dict[str, str] = {}
    for piece in rest.split(","):
        key, eq, value = piece.strip().partition("=")
        key = key.strip().lower()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if not eq or not key:
            if piece.strip():
                raise MalformedHeader(f"MAuth piece {piece.strip()[:40]!r} is not key=value")
            continue
        if key.startswith("mauth_"):
            key = key[len("mauth_"):]
        if len(value) > _MAX_VALUE:
            raise MalformedHeader(f"MAuth field {key} is too long")
        fields[key] = value
    return fields


def parse_header(header: str) -> MAuthCredentials:
    """The credentials of an ``Authorization: MAuth …`` header; :class:`MalformedHeader` otherwise."""
    if len(header) > _MAX_HEADER:
        raise MalformedHeader("Authorization header is too long")
    fields = _fields(header)
    method = fields.get("signature_method")
    if method != SIGNATURE_METHOD:
        raise MalformedHeader(f"mauth_signature_method must be {SIGNATURE_METHOD}")
    missing = [name for name in ("serviceid", "cnonce", "timestamp", "signature") if not fields.get(name)]
    if missing:
        raise MalformedHeader("MAuth header lacks " + ", ".join(f"mauth_{name}" for name in missing))
    raw_timestamp = fields["timestamp"]
    if not raw_timestamp.isascii() or not raw_timestamp.isdigit() or len(raw_timestamp) > 16:
        raise MalformedHeader("mauth_timestamp must be milliseconds since the epoch")
    return MAuthCredentials(
        service_id=fields["serviceid"],
        cnonce=fields["cnonce"],
        timestamp=int(raw_timestamp),
        signature=fields["signature"],
        username=fields.get("username") or None,
        role=fields.get("role") or None,
    )


def sign(key: str, text: str) -> str:
    """OWT's MAuth signature of ``text`` under ``key``: base64 of the lowercase hex HMAC-SHA256."""
    digest = hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()
    return base64.b64encode(digest.encode("ascii")).decode("ascii")


def signature_matches(credentials: MAuthCredentials, key: str) -> bool:
    """Whether ``credentials`` were signed with ``key`` (compared in constant time)."""
    expected = sign(key, credentials.signed_text())
    return hmac.compare_digest(expected.encode("ascii"), credentials.signature.encode("utf-8", "replace"))
