"""Structured log events of the webhook sender (``switchboard.webhooks``); see :class:`eventlog.EventLog`."""

from __future__ import annotations

from eventlog import EventLog

__all__ = ["WebhookLog"]


class WebhookLog(EventLog):
    __slots__ = ()
    LOGGER = "switchboard.webhooks"
