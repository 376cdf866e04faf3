"""Structured log events of the cluster manager (``switchboard.cluster_manager``); see
:class:`eventlog.EventLog`."""

from __future__ import annotations

import logging
from typing import Any

from eventlog import EventLog

__all__ = ["events", "log", "log_event", "log_exception"]


class _ManagerLog(EventLog):
    __slots__ = ()
    LOGGER = "switchboard.cluster_manager"


#: The cluster manager's event log (for what takes an :class:`~eventlog.EventLog`).
events = _ManagerLog()
log = logging.getLogger(_ManagerLog.LOGGER)


def log_event(level: int, event: str, **fields: Any) -> None:
    """Log ``event`` with ``fields`` (worker ids, purposes, counts) on one line."""
    events.log(level, event, **fields)


def log_exception(event: str, **fields: Any) -> None:
    """Log ``event`` with the exception being handled, once, and count it (:meth:`EventLog.exception`)."""
    events.exception(event, **fields)
