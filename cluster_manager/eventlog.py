"""Structured log events of the cluster manager (``switchboard.cluster_manager``); see
:class:`switchboard.logs.EventLog`."""

from __future__ import annotations

import logging
from typing import Any

from switchboard.logs import EventLog

__all__ = ["log", "log_event"]


class _ManagerLog(EventLog):
    __slots__ = ()
    LOGGER = "switchboard.cluster_manager"


_events = _ManagerLog()
log = logging.getLogger(_ManagerLog.LOGGER)


def log_event(level: int, event: str, **fields: Any) -> None:
    """Log ``event`` with ``fields`` (worker ids, purposes, counts) on one line."""
    _events.log(level, event, **fields)
