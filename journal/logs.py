"""Structured log events of the journal (``switchboard.journal``); see :class:`eventlog.EventLog`."""

from __future__ import annotations

from eventlog import EventLog as _EventLog

__all__ = ["EventLog"]


class EventLog(_EventLog):
    __slots__ = ()
    LOGGER = "switchboard.journal"
