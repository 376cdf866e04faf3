"""Structured log events of the command line's own pieces (the wiring of the roles, the local
cluster's supervisor); see :class:`eventlog.EventLog`."""

from __future__ import annotations

from eventlog import EventLog

__all__ = ["WiringLog", "SupervisorLog"]


class WiringLog(EventLog):
    __slots__ = ()
    LOGGER = "switchboard.wiring"


class SupervisorLog(EventLog):
    __slots__ = ()
    LOGGER = "switchboard.supervisor"
