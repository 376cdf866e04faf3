"""Structured log events of the alert service (``switchboard.alerts``); see :class:`eventlog.EventLog`."""

from __future__ import annotations

from eventlog import EventLog as _EventLog

__all__ = ["EventLog", "log"]


class EventLog(_EventLog):
    __slots__ = ()
    LOGGER = "switchboard.alerts"


log = EventLog()
