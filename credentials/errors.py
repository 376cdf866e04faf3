"""Why a token or ticket was refused (stable codes, readable messages)."""

from __future__ import annotations

__all__ = ["CredentialError", "MalformedCredential", "BadSignature", "Expired", "NotYetValid"]


class CredentialError(Exception):
    code = "invalid_credential"

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class MalformedCredential(CredentialError):
    code = "malformed"


class BadSignature(CredentialError):
    code = "bad_signature"


class Expired(CredentialError):
    code = "expired"


class NotYetValid(CredentialError):
    code = "not_yet_valid"
