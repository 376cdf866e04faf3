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

from credentials import escape_unsafe

__all__ = ["configure_logging"]

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


def _extras(record: logging.LogRecord) -> dict[str, object]:
    """What rides on the record besides the message: an :class:`~eventlog.EventLog` event's
    ``event`` and ``fields`` (which its message also holds), or a library's ``extra``."""
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


def _event_fields(record: logging.LogRecord) -> dict[str, object]:
    """The event's name and fields as fields of their own (JSON), or the message as the event."""
    extras = _extras(record)
    fields = extras.pop("fields", None)
    event = extras.pop("event", None)
    if isinstance(fields, dict) and isinstance(event, str):
        return {"event": event, **_own(extras), **_own(fields)}
    return {"event": record.getMessage(), **_own(extras)}


#: The keys of a JSON line itself: a field of the same name is written with a ``_`` after it.
_LINE_KEYS = frozenset({"ts", "level", "logger", "event", "exc"})


def _own(fields: dict[str, object]) -> dict[str, object]:
    return {f"{k}_" if k in _LINE_KEYS else k: v for k, v in fields.items()}


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        event.update(_event_fields(record))
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        message = record.getMessage()
        # An EventLog event's message holds its fields already; a library's `extra` is appended.
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items()
                          if k not in ("event", "fields") and f"{k}=" not in message)
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
