"""The two middlewares: errors as OWT's JSON body, and CORS."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import msgspec
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from eventlog import bound

from .app_keys import SETTINGS
from .errors import (
    ApiError,
    BadRequest,
    ErrorBody,
    ErrorDetail,
    InternalError,
    StoreUnavailableError,
    owt_code_for_status,
    reason_for_status,
)
from .logs import log
from .store import StoreUnavailable

__all__ = ["error_middleware", "cors_middleware", "error_response", "error_body"]


_encode = msgspec.json.Encoder().encode
#: The response header naming the request's id, as its log events do (``request``).
REQUEST_ID_HEADER = "X-Request-Id"
_KEPT_HEADERS = (hdrs.WWW_AUTHENTICATE, hdrs.RETRY_AFTER, hdrs.ALLOW)
_ALLOW_METHODS = "GET, POST, PUT, DELETE, PATCH, OPTIONS"
_ALLOW_HEADERS = "origin, authorization, content-type, x-service-key"
_MAX_AGE = "600"


def _body(code: int, message: str, reason: str) -> bytes:
    return _encode(ErrorBody(error=ErrorDetail(code=code, message=message, reason=reason)))


def error_body(status: int, reason: str, message: str) -> bytes:
    """OWT's error body for what no :class:`ApiError` describes (the errors of the HTTP edge)."""
    return _body(owt_code_for_status(status), message, reason)


def error_response(exc: web.HTTPException) -> web.Response:
    """OWT's ``{"error": {"code", "message"}}`` for ``exc``, plus our stable ``reason``."""
    if isinstance(exc, ApiError):
        code, message, reason = exc.owt_code, exc.message, exc.error_reason
    else:
        code, message, reason = owt_code_for_status(exc.status), exc.reason, reason_for_status(exc.status)
    response = web.Response(
        status=exc.status,
        body=_body(code, message, reason),
        content_type="application/json",
    )
    if exc.status == 408:
        response.force_close()  # the rest of a late body may still come: the connection is done
    for name in _KEPT_HEADERS:
        if name in exc.headers:
            response.headers[name] = exc.headers[name]
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # Every event of the request carries its id, method and path (eventlog.bound); the answer names
    # the id, so that a caller can point at the lines of its request.
    request_id = secrets.token_hex(6)
    with bound(request=request_id, method=request.method, path=request.path):
        response = await _answer(request, handler)
    response.headers[REQUEST_ID_HEADER] = request_id
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc)
    except web.RequestPayloadError:
        # The body broke off or its framing is wrong (chunks, length): aiohttp's parser said so.
        return error_response(BadRequest("The request body is not valid HTTP framing", reason="bad_body_framing"))
    except StoreUnavailable as exc:
        log.warning("room_store_unavailable", error=str(exc))
        retry_after = request.app[SETTINGS].retry_after
        return error_response(StoreUnavailableError("The room store is unavailable", retry_after=retry_after))
    except Exception:
        log.exception("request_failed")
        return error_response(InternalError("Internal error"))


def cors_middleware(allowed_origins: Sequence[str], *, closed_prefixes: Sequence[str] = ()) -> Middleware:
    """Answer preflight ``OPTIONS`` and add ``Access-Control-Allow-Origin`` for allowed origins.

    Paths under ``closed_prefixes`` never get a CORS header (nor a preflight answer): a page on
    another origin cannot call them from a browser, whatever ``allowed_origins`` says.
    """
    any_origin = "*" in allowed_origins
    allowed = frozenset(allowed_origins)
    closed = tuple(closed_prefixes)

    def allow_origin(origin: str | None) -> str | None:
        if origin is None:
            return "*" if any_origin else None
        if any_origin:
            return "*"
        return origin if origin in allowed else None

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if closed and request.path.startswith(closed):
            return await handler(request)
        origin = request.headers.get(hdrs.ORIGIN)
        allowed_value = allow_origin(origin)
        if request.method == hdrs.METH_OPTIONS:
            response: web.StreamResponse = web.Response(status=200)
            if allowed_value is not None:
                response.headers[hdrs.ACCESS_CONTROL_ALLOW_METHODS] = _ALLOW_METHODS
                response.headers[hdrs.ACCESS_CONTROL_ALLOW_HEADERS] = request.headers.get(
                    hdrs.ACCESS_CONTROL_REQUEST_HEADERS, _ALLOW_HEADERS
                )
                response.headers[hdrs.ACCESS_CONTROL_MAX_AGE] = _MAX_AGE
        else:
            response = await handler(request)
        if allowed_value is not None:
            response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = allowed_value
            if allowed_value != "*":
                response.headers.add(hdrs.VARY, "Origin")
        return response

    return middleware
