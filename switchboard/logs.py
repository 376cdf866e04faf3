"""Logging set-up: one event per line, as ``key=value`` text or JSON, with bound context ids.

A line holds what clients sent (room ids, user names, paths), so the text formatter escapes every
control, bidi and invisible character (:func:`credentials.escape_unsafe`): a value cannot end the
line, forge another or reorder what a terminal shows.  A traceback keeps its line breaks, each of
its lines indented so none passes for an event.  JSON lines are escaped by ``json.dumps``
(``ensure_ascii``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Self

import msgspec

from credentials import escape_unsafe

__all__ = ["configure_logging", "EventLog"]

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, object]:
    extras = {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}
    # Components that log "event k=v …" also attach the same pairs as `fields`: keep one copy.
    fields = extras.pop("fields", None)
    if isinstance(fields, dict):
        extras.update(fields)
    if isinstance(record.msg, str) and extras.get("event") == record.msg.split(" ", 1)[0]:
        extras.pop("event")
    return extras


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        event.update(_extras(record))
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        message = record.getMessage()
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items() if f"{k}=" not in message)
        line = f"{stamp} {record.levelname.lower():7} {record.name}: {message}"
        if extras:
            line += f" {extras}"
        line = escape_unsafe(line)
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            line += "".join(f"\n  {escape_unsafe(part)}" for part in trace.split("\n"))
        return line


def configure_logging(level: str = "info", *, json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if json_lines else _TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter stays at warning unless we are debugging.
    quiet = logging.DEBUG if level.lower() == "debug" else logging.WARNING
    for name in ("aio_pika", "aiormq", "aiohttp.access", "engineio", "socketio"):
        logging.getLogger(name).setLevel(quiet)


_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/@")


def _format(value: Any) -> str:
    if isinstance(value, str) and value and set(value) <= _PLAIN:
        return value
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return msgspec.json.encode(value, enc_hook=repr).decode()


class EventLog:
    """Structured log events: ``event key=value …`` on one line, with ids bound to every event.

    The fields also ride on the record (``record.event``, ``record.fields``) so the JSON formatter
    emits them without parsing the message.  Only ids go in: never tokens or tickets.  Components
    subclass it to name their logger (``LOGGER``).
    """

    __slots__ = ("_logger", "fields")
    LOGGER = "switchboard"

    def __init__(self, **fields: Any) -> None:
        self._logger = logging.getLogger(self.LOGGER)
        self.fields = fields

    def bind(self, **fields: Any) -> Self:
        """A child that also carries ``fields``."""
        return type(self)(**{**self.fields, **fields})

    def log(self, level: int, event: str, /, **fields: Any) -> None:
        if not self._logger.isEnabledFor(level):
            return
        merged = {**self.fields, **fields}
        text = " ".join(f"{key}={_format(value)}" for key, value in merged.items() if value is not None)
        self._logger.log(level, "%s %s", event, text, extra={"event": event, "fields": merged})

    def debug(self, event: str, /, **fields: Any) -> None:
        self.log(logging.DEBUG, event, **fields)

    def info(self, event: str, /, **fields: Any) -> None:
        self.log(logging.INFO, event, **fields)

    def warning(self, event: str, /, **fields: Any) -> None:
        self.log(logging.WARNING, event, **fields)

    def error(self, event: str, /, **fields: Any) -> None:
        self.log(logging.ERROR, event, **fields)
