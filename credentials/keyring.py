"""The cluster-wide signing keys (itsdangerous, with rotation).

Keys are listed oldest → newest: the newest signs, every key verifies, so a key can be added
everywhere first and the old one retired later without breaking tokens or tickets in flight.
No key ships in the code: an embedded server makes its own on first start, and cluster roles
refuse to start without configured ones (``switchboard.keys``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

import msgspec
from itsdangerous import Signer

__all__ = ["KeySettings", "Keyring", "AdminKeys"]


class KeySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Signing keys of join tokens and reconnection tickets, oldest first; the last one signs.
    #: Token API and portals need the same list. Empty: an embedded server uses the key it keeps
    #: in ``state_file``; cluster roles refuse to start.
    keys: list[str] = []
    #: Keys accepted on admin calls (admin RPC over HTTP and over the broker, admin pages), checked
    #: by the cluster manager and the controllers. Empty: an embedded server uses the one it keeps
    #: in ``state_file``; cluster roles refuse to start.
    admin_keys: list[str] = []
    #: Embedded mode: the file (mode 0600) holding the keys made on first start — signing key,
    #: service key, admin key. Empty = ``$XDG_STATE_HOME/switchboard/keys.json`` (default
    #: ``~/.local/state/switchboard/keys.json``); ``switchboard admin`` reads it too.
    state_file: str = ""


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


class AdminKeys:
    """The admin keys one component accepts; with none, every admin call is refused."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = [k.encode() for k in keys if k]

    def __bool__(self) -> bool:
        return bool(self._keys)

    def own(self) -> str:
        """A key to present to a peer that accepts the same keys ("" with none): a standby cluster
        manager asking the active one for its state."""
        return self._keys[0].decode() if self._keys else ""

    def accepts(self, given: object) -> bool:
        """Whether ``given`` is one of the keys (compared with every key, in constant time each)."""
        if not isinstance(given, str) or not given:
            return False
        candidate = given.encode("utf-8", "replace")
        found = False
        for key in self._keys:
            found |= hmac.compare_digest(candidate, key)
        return found
