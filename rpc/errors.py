"""Typed RPC errors.

Every failure a caller can see is an :class:`RpcError` with a stable ``code``, a readable
``message`` and, where the caller acts on more than the code, structured ``details`` (a JSON object
the error's contract documents: never parse a message).  Handlers raise :class:`ServiceError` (or a subclass) for expected, coded failures; the
caller receives it as :class:`RpcRemoteError` with the same code and message.  Any other exception
in a handler is logged with its traceback on the serving side and reaches the caller as
``RpcRemoteError('internal', ...)`` without the traceback.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RpcError",
    "RpcTimeout",
    "RpcUnavailable",
    "RpcNoService",
    "RpcRemoteError",
    "ServiceError",
    "UNKNOWN_METHOD",
    "BAD_ARGUMENTS",
    "INTERNAL",
    "SERVICE_GONE",
    "Declined",
]

UNKNOWN_METHOD = "unknown_method"
BAD_ARGUMENTS = "bad_arguments"
INTERNAL = "internal"
#: The reply of a call whose serving process closed while handling it; the caller raises
#: :class:`RpcUnavailable` (over a broker the reply says so, in-process the caller sees it directly).
SERVICE_GONE = "service_gone"


class RpcError(Exception):
    """Root of every error raised by the RPC layer."""

    code: str = "rpc_error"

    def __init__(self, message: str = "", *, code: str | None = None, details: dict[str, Any] | None = None) -> None:
        if code is not None:
            self.code = code
        self.message = message or self.code
        #: What the caller may act on besides the code (documented by the error's contract).
        self.details = details
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class RpcTimeout(RpcError, TimeoutError):
    """No reply within the call's timeout."""

    code = "timeout"


class RpcUnavailable(RpcError):
    """The target cannot be reached: no such service, or the broker is down."""

    code = "unavailable"


class RpcConnectionLost(RpcUnavailable):
    """The broker connection was lost while the call was in flight: the request may or may not have
    reached its target, and its answer is lost.  Only a call its target answers once per request
    (a request id it remembers) may be made again."""


class RpcNoService(RpcUnavailable):
    """Nobody serves the target (its queue is gone: the process died or stopped): the message was
    delivered to no one, so the call may be made again elsewhere."""


class RpcRemoteError(RpcError):
    """The handler failed; ``code``, ``message`` and ``details`` come from the serving side."""

    def __init__(self, code: str, message: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(message or code, code=code, details=details)


class Declined(RpcError):
    """Raised by a handler that must not handle this request here (a leader that lost its lease):
    over a broker the request goes back to its queue unanswered, for the consumer that is active
    now; in-process the caller gets :class:`RpcUnavailable`."""

    code = "declined"


class ServiceError(RpcError):
    """Raised by handlers for an expected failure that the caller should see with its code."""

    def __init__(self, code: str, message: str = "", details: dict[str, Any] | None = None) -> None:
        super().__init__(message or code, code=code, details=details)
