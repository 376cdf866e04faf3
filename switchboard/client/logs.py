"""Structured log events of the Python client (``switchboard.client``); see :class:`eventlog.EventLog`."""

from __future__ import annotations

from eventlog import EventLog

__all__ = ["ClientLog"]


class ClientLog(EventLog):
    __slots__ = ()
    LOGGER = "switchboard.client"
