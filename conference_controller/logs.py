"""Structured log events of the controller: ``event key=value ...`` on one line.

An :class:`EventLog` carries bound fields (room, participant, worker ids) so that every line of a
room or a session says whose it is.  Tickets and tokens are never passed to it.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

__all__ = ["EventLog"]

_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@")


def _format(value: Any) -> str:
    if isinstance(value, str) and value and set(value) <= _PLAIN:
        return value
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return msgspec.json.encode(value, enc_hook=repr).decode()


class EventLog:
    """A logger with bound fields; ``bind()`` returns a child with more."""

    __slots__ = ("_logger", "_fields")

    def __init__(self, logger: logging.Logger | str = "switchboard.controller", **fields: Any) -> None:
        self._logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self._fields = fields

    def bind(self, **fields: Any) -> EventLog:
        return EventLog(self._logger, **{**self._fields, **fields})

    def log(self, level: int, event: str, /, **fields: Any) -> None:
        if not self._logger.isEnabledFor(level):
            return
        merged = {**self._fields, **fields}
        text = " ".join(f"{key}={_format(value)}" for key, value in merged.items())
        self._logger.log(level, "%s %s", event, text, extra={"event": event, "fields": merged})

    def debug(self, event: str, /, **fields: Any) -> None:
        self.log(logging.DEBUG, event, **fields)

    def info(self, event: str, /, **fields: Any) -> None:
        self.log(logging.INFO, event, **fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        self.log(logging.WARNING, event, **fields)

    def error(self, event: str, /, **fields: Any) -> None:
        self.log(logging.ERROR, event, **fields)
