"""``<cluster>.webhooks``: served by every controller (any one answers), it delivers a webhook dead
letter once more when an operator retries it (``switchboard admin dead-letters retry``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from alerts.sinks import DeliveryFailed
from rpc import rpc_method
from rpc.errors import BAD_ARGUMENTS, ServiceError

from .events import HookEvent
from .post import post_event

if TYPE_CHECKING:
    from .sender import WebhookSender

__all__ = ["WebhookService", "webhooks_service_name"]


def webhooks_service_name(cluster: str) -> str:
    return f"{cluster}.webhooks"


class WebhookService:
    def __init__(self, sender: WebhookSender) -> None:
        self._sender = sender

    @rpc_method
    async def redeliver(self, endpoint: str, room: str, instance: str, event: Any) -> dict[str, Any]:
        """One signed attempt of ``event`` to the endpoint named ``endpoint`` (signed anew, now)."""
        target = next((e for e in self._sender.settings.endpoints if e.name == endpoint), None)
        if target is None:
            raise ServiceError("unknown_endpoint", f"no webhook endpoint {endpoint!r} is configured")
        try:
            decoded = msgspec.convert(event, HookEvent)
        except msgspec.ValidationError as exc:
            raise ServiceError(BAD_ARGUMENTS, f"not a webhook event: {exc}") from None
        try:
            await post_event(self._sender.session(), target, str(room), str(instance), decoded)
        except DeliveryFailed as exc:
            self._sender.tallies.failed += 1
            raise ServiceError("delivery_failed", str(exc)) from None
        self._sender.tallies.sent += 1
        return {"delivered": True}
