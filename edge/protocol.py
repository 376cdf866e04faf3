"""aiohttp's HTTP protocol with deadlines on reading a request and JSON for its own errors.

aiohttp bounds a request's size but not the time it takes to arrive: a client that sends a request
line and then a header byte every few seconds (slowloris), or announces a body and never sends it,
holds its connection (and the handler waiting for the body) as long as it likes.
:class:`GuardedRequestHandler` adds two deadlines:

- **head**: a request line and headers must be complete within ``header_timeout`` of the connection
  opening, or of the previous response on it (so an idle keep-alive connection lasts that long too).
  Past it the connection is closed, after a ``408`` (JSON) if part of a head had come (an idle
  connection is closed silently, so a client sending its next request just then does not read the
  408 as its answer).
- **body**: once the head is in, the whole body must arrive within ``body_timeout``.  Past it the
  body stream fails with :class:`BodyTimeout` (a :class:`TimeoutError`): the handler reading it
  answers (the servers answer ``408``), and aiohttp closes the connection instead of draining the
  rest.

It also answers aiohttp's own errors (a request its parser refuses, a handler that raised) as JSON
with a stable ``reason`` and no traceback, names no versions in ``Server``, and logs a refused
request as one line instead of a traceback.

aiohttp has no hook for either deadline, so this subclass reads a few of ``RequestHandler``'s
private attributes (``_messages``, ``_request_in_progress``, ``_upgraded``, ``_force_close``); they are stable across
aiohttp 3.x and the tests of :mod:`tests.security` exercise them through a real server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import hdrs, web
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
)
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_server import Server

from .logs import EdgeLog

__all__ = ["Guard", "GuardedRequestHandler", "BodyTimeout", "ErrorBody", "SERVER_NAME", "json_error_body",
           "error_response"]

log = EdgeLog()

#: What the servers send as ``Server`` (aiohttp would send ``Python/3.x aiohttp/3.y``).
SERVER_NAME = "switchboard"

#: ``(status, reason, message) → body``: each server renders its own error shape.
ErrorBody = Callable[[int, str, str], bytes]

_encode = msgspec.json.Encoder().encode


def json_error_body(status: int, reason: str, message: str) -> bytes:
    """The default error body: ``{"error": {"reason", "message"}}``."""
    return _encode({"error": {"reason": reason, "message": message}})


def error_response(status: int, reason: str, message: str, render: ErrorBody = json_error_body, *,
                   close: bool = False, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON error response; ``close`` ends the connection after it."""
    response = web.Response(status=status, body=render(status, reason, message), content_type="application/json",
                            headers={hdrs.SERVER: SERVER_NAME, **(headers or {})})
    if close:
        response.force_close()
    return response


class BodyTimeout(TimeoutError):
    """The request body did not arrive within ``body_timeout``.

    A :class:`TimeoutError`, so that aiohttp, which drains an unread body after the response,
    stops at once and closes the connection.
    """

    def __init__(self, timeout: float = 0.0) -> None:
        super().__init__(f"the request body did not arrive within {timeout:g} s")


@dataclass(frozen=True, slots=True)
class Guard:
    """How a :class:`GuardedRequestHandler` bounds a connection and renders its errors."""

    #: Seconds to receive a request line and headers (from the connection, or a request's first byte).
    header_timeout: float
    #: Seconds to receive a whole body once its head is in.
    body_timeout: float
    #: Renders the body of the errors the protocol answers itself.
    error_body: ErrorBody = json_error_body
    #: What a late body's stream fails with (a server may need a subclass its library handles).
    body_timeout_error: type[BodyTimeout] = BodyTimeout
    #: Seconds a connection cut for a late head stays half-open after its 408, reading and dropping
    #: what the client still sends, so that closing it does not reset the answer away.
    linger_timeout: float = 1.0

    def __post_init__(self) -> None:
        if self.header_timeout <= 0 or self.body_timeout <= 0:
            raise ValueError("header_timeout and body_timeout must be positive")
        if not 0 <= self.linger_timeout <= 60:
            raise ValueError("linger_timeout must be between 0 and 60 s")


# (status, reason, message) for what aiohttp's parser refuses; the exception's own message is not
# sent back, as it quotes the request.
_PARSER_ERRORS: list[tuple[type[HttpProcessingError], int, str, str]] = [
    (LineTooLong, 400, "line_too_long", "The request line or a header line is too long"),
    (BadHttpMethod, 400, "bad_method", "The request method is not valid"),
    (BadStatusLine, 400, "bad_request_line", "The request line is not valid HTTP"),
    (InvalidHeader, 400, "invalid_header", "A header is not valid"),
    (InvalidURLError, 400, "invalid_url", "The request target is not a valid URL"),
]
_TOO_MANY_HEADERS = "Too many headers"


def _classify(status: int, exc: BaseException | None) -> tuple[int, str, str]:
    if isinstance(exc, HttpProcessingError):
        for kind, code, reason, message in _PARSER_ERRORS:
            if isinstance(exc, kind):
                return code, reason, message
        if isinstance(exc, BadHttpMessage) and exc.message.startswith(_TOO_MANY_HEADERS):
            return 431, "too_many_headers", "Too many headers"
        return 400, "bad_http_request", "The request is not valid HTTP/1.1"
    if isinstance(exc, BodyTimeout):
        return 408, "body_timeout", "The request body did not arrive in time"
    if status == 504:
        return 504, "handler_timeout", "The request timed out"
    if status >= 500:
        return 500, "internal", "Internal error"
    return status, "bad_request", "Bad request"


class GuardedRequestHandler(RequestHandler):
    """One connection of a guarded server (see the module docstring)."""

    __slots__ = ("_guard", "_head_timer", "_head_started", "_body_timer", "_linger_timer")

    def __init__(self, manager: Server, *, loop: asyncio.AbstractEventLoop, guard: Guard, **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._guard = guard
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_started = False
        self._body_timer: asyncio.TimerHandle | None = None
        #: Set once a 408 went out and the connection only waits to be closed (input is dropped).
        self._linger_timer: asyncio.TimerHandle | None = None

    # -- deadlines -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._cancel_timers()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._linger_timer is not None:
            return  # answered and half-closed: what still comes is dropped
        if data and self._head_timer is not None:
            self._head_started = True
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) > queued:
            # A head is complete (and maybe more, pipelined): only the last one can be in its body.
            self._cancel_head()
            _, payload = self._messages[-1]
            self._arm_body(payload)

    async def finish_response(self, request: web.BaseRequest, resp: web.StreamResponse,
                              start_time: float | None) -> tuple[web.StreamResponse, bool]:
        result = await super().finish_response(request, resp, start_time)
        # The connection now waits for the next head (an unread body means it is about to close).
        if self._head_timer is None and not self._force_close and request.content.is_eof() and not self._upgraded:
            self._arm_head()
        return result

    def _arm_head(self) -> None:
        self._head_started = False
        self._head_timer = self._loop.call_later(self._guard.header_timeout, self._head_expired)

    def _cancel_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _arm_body(self, payload: StreamReader) -> None:
        if payload.is_eof() or payload.exception() is not None:
            return
        if self._body_timer is not None:
            self._body_timer.cancel()
        self._body_timer = self._loop.call_later(self._guard.body_timeout, self._body_expired, payload)
        payload.on_eof(self._cancel_body)

    def _cancel_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_head()
        self._cancel_body()

    def _head_expired(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is None or self._request_in_progress or self._messages:
            return
        if self._head_started:
            log.info("request_head_timeout", remote=_peer(transport))
            body = self._guard.error_body(408, "header_timeout", "The request headers did not arrive in time")
            head = (f"HTTP/1.1 408 Request Timeout\r\n{hdrs.SERVER}: {SERVER_NAME}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
            transport.write(head.encode("ascii") + body)
            if self._guard.linger_timeout > 0 and isinstance(transport, asyncio.WriteTransport) \
                    and transport.can_write_eof():
                # Closing now, with the client's bytes still arriving, would reset the connection and
                # could discard the 408 at the client: send it with a FIN, drop input, close later.
                transport.write_eof()
                self._linger_timer = self._loop.call_later(self._guard.linger_timeout, self.force_close)
                return
        self.force_close()

    def _body_expired(self, payload: StreamReader) -> None:
        self._body_timer = None
        if payload.is_eof() or payload.exception() is not None:
            return
        log.info("request_body_timeout", remote=_peer(self.transport))
        payload.set_exception(self._guard.body_timeout_error(self._guard.body_timeout))

    # -- errors aiohttp answers itself -----------------------------------------------------------

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if exc is None and status == 504 and isinstance(request.content.exception(), BodyTimeout):
            exc = request.content.exception()
        status, reason, text = _classify(status, exc)
        if status >= 500:
            log.exception("request_failed", remote=request.remote, path=request.path, exc_info=exc)
        else:
            log.info("request_refused", reason=reason, remote=request.remote)
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started; no error response can be sent")
        return error_response(status, reason, text, self._guard.error_body, close=True)


def _peer(transport: asyncio.BaseTransport | None) -> str:
    peer = transport.get_extra_info("peername") if transport is not None else None
    return str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
