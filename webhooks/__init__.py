"""Webhooks: what happens in a room, POSTed signed to the application's URLs (docs/webhooks.md).

The controller that holds a room decides its webhook events where it decides the room's events:
each is a :class:`HookEvent` with the room's next hook sequence number, kept in the room's state
(journaled) until it was delivered or given up.  :class:`WebhookSender` delivers one room's events
in order, with the bounded retries of :mod:`alerts.retry`, and hands what still fails to the alert
service as a dead letter; :class:`WebhookService` delivers a dead letter again when an operator
retries it.
"""

from .events import HOOK_TYPES, HookEvent, HookOutbox
from .sender import WebhookSender
from .service import WebhookService, webhooks_service_name
from .settings import EndpointSettings, WebhookSettings
from .signing import SIGNATURE_HEADER, sign

__all__ = [
    "HOOK_TYPES", "EndpointSettings", "HookEvent", "HookOutbox", "SIGNATURE_HEADER", "WebhookSender",
    "WebhookService", "WebhookSettings", "sign", "webhooks_service_name",
]
