"""Why a client request was refused, and the one place that turns it into an ack.

OWT clients get ``('error', reason)`` with a readable string; the extension form of ``relogin``
gets ``('error', {code, message, ...})``.  Every refusal is a :class:`RequestError`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from contracts.controller import ResyncDetails
from credentials import BadSignature, CredentialError, Expired, NotYetValid
from rpc import RpcError, RpcTimeout, RpcUnavailable

__all__ = [
    "RequestError",
    "Ack",
    "ok",
    "IllegalRequest",
    "InService",
    "UnknownProtocol",
    "RateLimited",
    "TooLarge",
    "TooManyPending",
    "from_rpc",
    "from_token_error",
    "from_ticket_error",
    "unsupported_protocol",
    "invalid_request",
]

#: What a handler returns to python-socketio: the ack's arguments.
Ack = str | tuple[Any, ...]


class RequestError(Exception):
    """A refused request: ``reason`` for OWT clients, ``code`` (and ``extra``) for structured replies."""

    def __init__(self, reason: str, code: str = "refused", **extra: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.extra = extra

    def ack(self, *, structured: bool = False) -> tuple[str, Any]:
        if structured:
            return ("error", {"code": self.code, "message": self.reason, **self.extra})
        return ("error", self.reason)


def ok(data: Any = None) -> Ack:
    """``('ok', data)``, or a bare ``'ok'`` when there is nothing to return."""
    if data is None or data == "ok":
        return "ok"
    return ("ok", data)


class IllegalRequest(RequestError):
    """No logged-in participant on this socket."""

    def __init__(self) -> None:
        super().__init__("Illegal request", "illegal_request")


class InService(RequestError):
    """login/relogin on a socket that has (or is getting) a participant."""

    def __init__(self) -> None:
        super().__init__("Connection is in service", "in_service")


class UnknownProtocol(RequestError):
    """login without protocol 1.x."""

    def __init__(self) -> None:
        super().__init__("Unknown client protocol", "unknown_protocol")


class RateLimited(RequestError):
    """The socket's token bucket is empty."""

    def __init__(self) -> None:
        super().__init__("rate limit exceeded", "rate_limited")


class TooLarge(RequestError):
    """The payload exceeds max_request_bytes."""

    def __init__(self) -> None:
        super().__init__("message too large", "too_large")


class TooManyPending(RequestError):
    """The socket has max_pending_requests unanswered."""

    def __init__(self) -> None:
        super().__init__("too many pending requests", "too_many_pending")


def unsupported_protocol(version: str) -> RequestError:
    return RequestError(
        f"unsupported protocol {version}: this portal speaks OWT protocol 1.2", "unsupported_protocol"
    )


def invalid_request(detail: str) -> RequestError:
    return RequestError(f"invalid request: {detail}", "invalid_request")


# Controller and cluster-manager codes → what the client reads.
_REMOTE_REASONS: dict[str, tuple[str, str]] = {
    "unknown_participant": ("Client does NOT exist", "unknown_participant"),
    "hold_expired": ("Reconnection window expired", "unknown_participant"),
    "ticket_mismatch": ("Ticket was revoked", "ticket_revoked"),
    "not_current_portal": ("Participant is connected elsewhere", "not_current_portal"),
    "already_claimed": ("Token already used", "token_used"),
    "unknown_task": ("Unknown token", "unknown_token"),
    "expired": ("Token expired", "token_expired"),
    "wrong_worker": ("Token issued for another portal", "wrong_portal"),
    "unknown_worker": ("service unavailable", "unavailable"),
    "not_ready": ("service unavailable", "unavailable"),
    "room_reloading": ("service unavailable: the room is being restored, try again", "unavailable"),
    "no_worker_available": ("service unavailable", "unavailable"),
}


def _resync_bounds(details: dict[str, Any] | None) -> dict[str, int]:
    """The seqs a ``resync_required`` says are gone, as the client reads them (none when its details
    are missing or of another shape)."""
    try:
        missing = msgspec.convert(details, ResyncDetails)
    except msgspec.ValidationError:
        return {}
    return {"from": missing.missing_from, "to": missing.missing_to}


def from_rpc(exc: RpcError) -> RequestError:
    """A failed RPC (timeout, unreachable, or a coded refusal) as a client-facing refusal."""
    if isinstance(exc, RpcTimeout):
        return RequestError("timeout", "timeout")
    if isinstance(exc, RpcUnavailable):
        return RequestError("service unavailable", "unavailable")
    if exc.code == "resync_required":
        return RequestError(f"resync required: {exc.message}", "resync-required", **_resync_bounds(exc.details))
    mapped = _REMOTE_REASONS.get(exc.code)
    if mapped is not None:
        return RequestError(*mapped)
    return RequestError(exc.message or exc.code.replace("_", " "), exc.code)


def from_token_error(exc: CredentialError) -> RequestError:
    if isinstance(exc, BadSignature):
        return RequestError("Invalid token signature", "bad_signature")
    if isinstance(exc, Expired):
        return RequestError("Token expired", "token_expired")
    return RequestError("Invalid token", "invalid_token")


def from_ticket_error(exc: CredentialError) -> RequestError:
    if isinstance(exc, BadSignature):
        return RequestError("Invalid reconnection ticket signature", "bad_signature")
    if isinstance(exc, (Expired, NotYetValid)):
        return RequestError("Ticket is expired", "ticket_expired")
    return RequestError("Invalid reconnection ticket", "invalid_ticket")
