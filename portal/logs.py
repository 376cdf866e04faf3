"""Structured log events of the portal: ``event key=value ...`` on one line, with ids bound.

Fields also ride on the record (``record.event``, ``record.fields``) for a JSON formatter.
Tokens and tickets are never passed here; only ids.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

__all__ = ["EventLog"]

_log = logging.getLogger("switchboard.portal")
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@")


def _format(value: Any) -> str:
    if isinstance(value, str) and value and set(value) <= _PLAIN:
        return value
    return msgspec.json.encode(value, enc_hook=repr).decode()


class EventLog:
    """A logger with some fields (worker, participant, room ids) bound to every event."""

    __slots__ = ("fields",)

    def __init__(self, **fields: Any) -> None:
        self.fields = fields

    def bind(self, **fields: Any) -> EventLog:
        return EventLog(**{**self.fields, **fields})

    def event(self, level: int, event: str, /, **fields: Any) -> None:
        if not _log.isEnabledFor(level):
            return
        merged = {**self.fields, **fields}
        text = " ".join(f"{key}={_format(value)}" for key, value in merged.items() if value is not None)
        _log.log(level, "%s %s", event, text, extra={"event": event, "fields": merged})

    def info(self, event: str, /, **fields: Any) -> None:
        self.event(logging.INFO, event, **fields)

    def debug(self, event: str, /, **fields: Any) -> None:
        self.event(logging.DEBUG, event, **fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        self.event(logging.WARNING, event, **fields)
