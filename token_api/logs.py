"""Structured log events of the token API (``switchboard.token_api``); see :class:`eventlog.EventLog`."""

from __future__ import annotations

from eventlog import EventLog as _EventLog

__all__ = ["EventLog", "log"]


class EventLog(_EventLog):
    __slots__ = ()
    LOGGER = "switchboard.token_api"


log = EventLog()
