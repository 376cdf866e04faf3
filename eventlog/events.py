"""Structured log events: ``event key=value …`` on one line, with ids bound to every event."""

from __future__ import annotations

import logging
from typing import Any, Self

import msgspec

from .context import context_fields
from .tally import unhandled

__all__ = ["EventLog"]


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
    subclass it to name their logger (``LOGGER``).  The ids :func:`eventlog.bound` binds to the
    running task (an HTTP request's id) come first on every event.

    An exception nothing expected is logged once, where it is caught and not raised on, with
    :meth:`exception`: the traceback rides on the event and :data:`eventlog.unhandled` counts it.
    """

    __slots__ = ("_logger", "fields")
    LOGGER = "switchboard"
    #: The ``component`` label of what :meth:`exception` counts (default: the logger's last part).
    COMPONENT = ""

    def __init__(self, **fields: Any) -> None:
        self._logger = logging.getLogger(self.LOGGER)
        self.fields = fields

    def bind(self, **fields: Any) -> Self:
        """A child that also carries ``fields``."""
        return type(self)(**{**self.fields, **fields})

    def log(self, level: int, event: str, /, *, exc_info: Any = None, **fields: Any) -> None:
        self._emit(level, event, exc_info, fields)

    def debug(self, event: str, /, *, exc_info: Any = None, **fields: Any) -> None:
        self._emit(logging.DEBUG, event, exc_info, fields)

    def info(self, event: str, /, *, exc_info: Any = None, **fields: Any) -> None:
        self._emit(logging.INFO, event, exc_info, fields)

    def warning(self, event: str, /, *, exc_info: Any = None, **fields: Any) -> None:
        self._emit(logging.WARNING, event, exc_info, fields)

    def error(self, event: str, /, *, exc_info: Any = None, **fields: Any) -> None:
        self._emit(logging.ERROR, event, exc_info, fields)

    def exception(self, event: str, /, *, exc_info: Any = True, **fields: Any) -> None:
        """An exception nothing expected: logged at error with its traceback (the one being handled,
        or ``exc_info``) and counted for the component."""
        unhandled.count(self.component())
        self._emit(logging.ERROR, event, exc_info, fields)

    def _emit(self, level: int, event: str, exc_info: Any, fields: dict[str, Any]) -> None:
        if not self._logger.isEnabledFor(level):
            return
        context = context_fields()
        merged = {**context, **self.fields, **fields} if context else {**self.fields, **fields}
        text = " ".join(f"{key}={_format(value)}" for key, value in merged.items() if value is not None)
        # stacklevel 3: the record names the caller of debug()/info()/…, not this module.
        self._logger.log(level, "%s %s", event, text, exc_info=exc_info, stacklevel=3,
                         extra={"event": event, "fields": merged})

    @classmethod
    def component(cls) -> str:
        return cls.COMPONENT or cls.LOGGER.rsplit(".", 1)[-1]
