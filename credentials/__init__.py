"""Signed credentials shared by the token API, the portals and the controllers."""

from .errors import BadSignature, CredentialError, Expired, MalformedCredential, NotYetValid
from .formats import (
    JoinToken,
    Ticket,
    decode_ticket,
    decode_token,
    encode_ticket,
    encode_token,
    new_id,
    now_ms,
)
from .keyring import AdminKeys, Keyring, KeySettings
from .names import SafeText, UnsafeText, check_safe, escape_unsafe, first_unsafe, readable_validation, safe_pattern
from .strength import MIN_KEY_LENGTH, weak_key_reason

__all__ = [
    "BadSignature",
    "CredentialError",
    "Expired",
    "MalformedCredential",
    "NotYetValid",
    "JoinToken",
    "Ticket",
    "decode_ticket",
    "decode_token",
    "encode_ticket",
    "encode_token",
    "new_id",
    "now_ms",
    "AdminKeys",
    "MIN_KEY_LENGTH",
    "weak_key_reason",
    "Keyring",
    "KeySettings",
    "SafeText",
    "UnsafeText",
    "check_safe",
    "escape_unsafe",
    "first_unsafe",
    "readable_validation",
    "safe_pattern",
]
