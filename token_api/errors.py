"""Errors of the token API: ``web_exceptions`` subclasses carrying OWT's numeric codes.

Handlers raise them; one middleware (:mod:`token_api.middlewares`) turns every
:class:`aiohttp.web.HTTPException` into OWT's body ``{"error": {"code", "message", "reason"}}``,
where ``code`` is OWT's number (``errors.js``) and ``reason`` a stable string of ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from aiohttp import web

__all__ = [
    "ApiError",
    "BadRequest",
    "AuthError",
    "TooManyRequests",
    "RequestTimeout",
    "InternalError",
    "NotFound",
    "RoomNotFound",
    "Conflict",
    "CloudError",
    "PortalUnavailable",
    "StoreUnavailableError",
    "ManagementUnavailable",
    "GatewayTimeout",
    "owt_code_for_status",
    "reason_for_status",
]

_OWT_CODE_FOR_STATUS = {400: 1201, 401: 1101, 403: 1102, 404: 1001, 405: 1201, 408: 1201, 409: 1201, 413: 1201,
                        429: 1101, 431: 1201}
_REASON_FOR_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "body_too_large",
    429: "too_many_requests",
    431: "headers_too_large",
    500: "internal",
    503: "unavailable",
}


def owt_code_for_status(status: int) -> int:
    """OWT's numeric error code for an HTTP status that no :class:`ApiError` gave one for."""
    if status in _OWT_CODE_FOR_STATUS:
        return _OWT_CODE_FOR_STATUS[status]
    return 1301 if status >= 500 else 1201


def reason_for_status(status: int) -> str:
    return _REASON_FOR_STATUS.get(status, "error")


class ApiError(web.HTTPError):
    """An error answered as OWT's JSON body; subclasses fix the status and the OWT code."""

    owt_code: ClassVar[int] = 2001
    default_reason: ClassVar[str] = "internal"

    def __init__(self, message: str, *, reason: str | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(headers=headers, reason=None, text=None)
        self.message = message
        self.error_reason = reason or self.default_reason


class BadRequest(ApiError, web.HTTPBadRequest):
    owt_code = 1201
    default_reason = "bad_request"


class AuthError(ApiError, web.HTTPUnauthorized):
    owt_code = 1101
    default_reason = "unauthorized"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message, reason=reason, headers={"WWW-Authenticate": 'MAuth realm="switchboard"'})


class TooManyRequests(ApiError, web.HTTPTooManyRequests):
    owt_code = 1101
    default_reason = "too_many_auth_failures"

    def __init__(self, message: str, *, retry_after: int, reason: str | None = None) -> None:
        super().__init__(message, reason=reason, headers={"Retry-After": str(retry_after)})


class RequestTimeout(ApiError, web.HTTPRequestTimeout):
    """The request body did not arrive within ``body_timeout``; the connection is closed after it."""

    owt_code = 1201
    default_reason = "body_timeout"


class InternalError(ApiError, web.HTTPInternalServerError):
    """A bug: the handler raised something that is not an :class:`ApiError`."""

    owt_code = 2001
    default_reason = "internal"


class NotFound(ApiError, web.HTTPNotFound):
    owt_code = 1001
    default_reason = "not_found"


class RoomNotFound(NotFound):
    owt_code = 1003
    default_reason = "unknown_room"

    def __init__(self, room: str) -> None:
        super().__init__(f"Room not found: {room!r}")


class Conflict(ApiError, web.HTTPConflict):
    owt_code = 1201
    default_reason = "conflict"


class CloudError(ApiError, web.HTTPInternalServerError):
    owt_code = 1301
    default_reason = "cloud_error"


class PortalUnavailable(ApiError, web.HTTPServiceUnavailable):
    """No portal could be reserved within the budget; the client should retry later."""

    owt_code = 1301
    default_reason = "no_portal_available"

    def __init__(self, message: str, *, retry_after: int, reason: str | None = None) -> None:
        super().__init__(message, reason=reason, headers={"Retry-After": str(retry_after)})


class ManagementUnavailable(ApiError, web.HTTPServiceUnavailable):
    """The controller of a live room cannot be reached or refuses the token API's admin key."""

    owt_code = 1301
    default_reason = "unavailable"

    def __init__(self, message: str, *, retry_after: int, reason: str | None = None) -> None:
        super().__init__(message, reason=reason, headers={"Retry-After": str(retry_after)})


class GatewayTimeout(ApiError, web.HTTPGatewayTimeout):
    """The controller of a live room did not answer in time."""

    owt_code = 1301
    default_reason = "timeout"


class StoreUnavailableError(ApiError, web.HTTPServiceUnavailable):
    """The room store's database cannot be reached now; the client should retry later."""

    owt_code = 1301
    default_reason = "store_unavailable"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})
