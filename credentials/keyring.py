"""The cluster-wide signing keys (itsdangerous, with rotation).

Keys are listed oldest → newest: the newest signs, every key verifies, so a key can be added
everywhere first and the old one retired later without breaking tokens or tickets in flight.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

import msgspec
from itsdangerous import Signer

__all__ = ["KeySettings", "Keyring", "DEV_KEY"]

#: The key of a first embedded run; anything beyond a trial must configure its own.
DEV_KEY = "switchboard-development-key-change-me"


class KeySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Signing keys, oldest first; the last one signs. Shared by token API, portals and controllers.
    keys: list[str] = msgspec.field(default_factory=lambda: [DEV_KEY])


class Keyring:
    """Signs and verifies canonical JSON payloads under one salt per purpose."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys or any(not k for k in keys):
            raise ValueError("at least one non-empty signing key is required")
        self._keys = list(keys)
        self._signers: dict[str, Signer] = {}

    def _signer(self, salt: str) -> Signer:
        signer = self._signers.get(salt)
        if signer is None:
            signer = Signer(self._keys, salt=salt, digest_method=hashlib.sha256)
            self._signers[salt] = signer
        return signer

    def sign(self, payload: bytes, salt: str) -> str:
        return self._signer(salt).get_signature(payload).decode("ascii")

    def verify(self, payload: bytes, signature: str, salt: str) -> bool:
        signer = self._signer(salt)
        try:
            sig = signature.encode("ascii")
        except UnicodeEncodeError:
            return False
        # Signer.verify_signature tries every key and compares in constant time.
        return bool(signer.verify_signature(payload, sig))

    @staticmethod
    def constant_time_equal(a: str, b: str) -> bool:
        return hmac.compare_digest(a.encode(), b.encode())
