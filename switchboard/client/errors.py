"""Errors raised by the Switchboard client.

Every error derives from :class:`ClientError`, so ``except ClientError`` catches all of them. A request
the server refused raises :class:`ClientError` itself, with the server's reason string.
"""

from __future__ import annotations

__all__ = ["ClientError", "RequestTimeout", "ConnectionLost", "SessionClosed", "ProtocolError", "TokenApiUnavailable"]


class ClientError(Exception):
    """A request failed; ``reason`` is what the server said (the ``data`` of an ``('error', data)`` ack)."""

    def __init__(self, reason: object) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def code(self) -> str | None:
        """The ``code`` of an object reason (the extension's ``relogin`` errors), else ``None``."""
        code = self.reason.get("code") if isinstance(self.reason, dict) else None
        return code if isinstance(code, str) else None

    def __str__(self) -> str:
        if isinstance(self.reason, dict) and "message" in self.reason:
            return f"{self.reason.get('code', 'error')}: {self.reason['message']}"
        return str(self.reason)


class RequestTimeout(ClientError, TimeoutError):
    """No answer came within the request timeout (also an :class:`asyncio.TimeoutError`)."""


class ConnectionLost(ClientError):
    """The Socket.IO connection went away while a request was waiting for its answer.

    The client only raises this for requests it cannot safely send again: plain OWT mode, or a request
    without a ``requestId``. With the extension a request is sent again after the relogin.
    """


class SessionClosed(ClientError):
    """The session is over (``leave()``, a ``drop`` from the server, a refused relogin, ``resync-required``)."""


class ProtocolError(ClientError):
    """The server answered with something the OWT protocol does not allow (for example an ack without status)."""


class TokenApiUnavailable(ClientError):
    """No token API answered: none could be reached, or each answered 502, 503 or 504."""
