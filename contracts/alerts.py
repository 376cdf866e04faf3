"""The alert service's intake (service name ``<cluster>.alerts``): what every source casts to it — a
fault to alert on, a dead letter to keep (docs/operations.md, *Alerts*).  The serving side is
``alerts.service.AlertService``; its operators' dead-letter calls are in :mod:`contracts.admin`
(``DeadLettersClient``).  The payloads are the alert package's own structs as JSON objects
(``alerts.Fault``, ``alerts.DeadLetter``), checked by the service on arrival."""

from __future__ import annotations

from typing import Any

from .client import ServiceClient

__all__ = ["AlertsClient"]


class AlertsClient(ServiceClient):
    """Casts to one cluster's alert service (``target``: ``alerts_service_name(cluster)``)."""

    async def cast_fault(self, *, fault: Any) -> None:
        """A fault to alert on (an ``alerts.Fault`` as a JSON object)."""
        await self._transport.cast(self._target, "fault", {"fault": fault})

    async def cast_dead_letter(self, *, letter: Any) -> None:
        """Something given up after its retries (an ``alerts.DeadLetter`` as a JSON object)."""
        await self._transport.cast(self._target, "dead_letter", {"letter": letter})
