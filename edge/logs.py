"""Structured log events of the HTTP edge (``switchboard.edge``); see :class:`eventlog.EventLog`."""

from __future__ import annotations

from eventlog import EventLog

__all__ = ["EdgeLog"]


class EdgeLog(EventLog):
    __slots__ = ()
    LOGGER = "switchboard.edge"
