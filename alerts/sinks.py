"""Where alerts go: a webhook in Slack's incoming-webhook format, a generic JSON webhook, the log.

A sink's :meth:`~Sink.send` makes one attempt within the sink's timeout and raises
:class:`DeliveryFailed` when it did not get through; retries are :mod:`alerts.retry`'s.  Webhook
URLs are secrets: only :func:`redact_url` of one is ever logged or shown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

import aiohttp
import yarl

from .logs import log
from .grouping import Alert
from .settings import SinkSettings

__all__ = ["Sink", "WebhookSink", "LogSink", "DeliveryFailed", "redact_url", "build_sink", "slack_body", "json_body"]


_ICON = {"info": ":information_source:", "warning": ":warning:", "error": ":rotating_light:"}


class DeliveryFailed(Exception):
    """One attempt did not get through (the message says why, without the URL)."""


class Sink(Protocol):
    name: str
    #: How the sink is shown (its kind and the host of its URL).
    where: str

    async def send(self, alert: Alert) -> None: ...


def redact_url(url: str) -> str:
    """``https://hooks.slack.com/services/T/B/secret`` → ``https://hooks.slack.com/…``."""
    try:
        parsed = yarl.URL(url)
    except ValueError:
        return "…"
    if not parsed.host:
        return "…"
    port = f":{parsed.explicit_port}" if parsed.explicit_port else ""
    return f"{parsed.scheme}://{parsed.host}{port}/…"


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at))


def _lines(alert: Alert) -> list[str]:
    lines = [f"• {fault.summary}" for fault in alert.faults]
    if alert.count > len(alert.faults):
        lines.append(f"• … and {alert.count - len(alert.faults)} more")
    return lines


def slack_body(alert: Alert) -> dict[str, Any]:
    """Slack's incoming-webhook JSON: ``text`` (the fallback every client shows) and ``blocks``."""
    count = f"{alert.count} faults" if alert.count != 1 else "1 fault"
    text = f"{_ICON[alert.severity]} {alert.title}"
    detail = "\n".join(_lines(alert))
    return {
        "text": f"{text}\n{detail}\n({count}, {_when(alert.first_at)})",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*\n{detail}"}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"{count} · group `{alert.group}` · since {_when(alert.first_at)}"}]},
        ],
    }


def json_body(alert: Alert) -> dict[str, Any]:
    """The generic webhook's body: the alert with its faults, as the schema has them."""
    import msgspec

    return {"alert": msgspec.to_builtins(alert)}


class WebhookSink:
    """POSTs each alert as JSON (Slack's format or the generic one) on ``session``; any answer but
    2xx, a connection error or the timeout is a failed attempt."""

    def __init__(self, settings: SinkSettings, session: aiohttp.ClientSession) -> None:
        self.name = settings.name
        self.where = f"{settings.kind} {redact_url(settings.url)}"
        self._settings = settings
        self._session = session
        self._render = slack_body if settings.kind == "slack" else json_body

    async def send(self, alert: Alert) -> None:
        try:
            async with asyncio.timeout(self._settings.timeout):
                async with self._session.post(self._settings.url, json=self._render(alert)) as response:
                    await response.read()
                    status = response.status
        except TimeoutError:
            raise DeliveryFailed(f"no answer within {self._settings.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise DeliveryFailed(type(exc).__name__) from None
        if not 200 <= status < 300:
            raise DeliveryFailed(f"HTTP {status}")


class LogSink:
    """One log line per alert (logger ``switchboard.alerts``)."""

    def __init__(self, settings: SinkSettings) -> None:
        self.name = settings.name
        self.where = "log"

    async def send(self, alert: Alert) -> None:
        level = logging.ERROR if alert.severity == "error" else logging.WARNING
        log.log(level, "alert", id=alert.id, title=alert.title, faults=alert.count, group=alert.group,
                summary="; ".join(f.summary for f in alert.faults))


def build_sink(settings: SinkSettings, session: aiohttp.ClientSession) -> Sink:
    if settings.kind == "log":
        return LogSink(settings)
    return WebhookSink(settings, session)
