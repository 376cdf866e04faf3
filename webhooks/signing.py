"""The signature of a delivery: ``Switchboard-Signature: t=<unix seconds>,v1=<hex>``, where hex is
HMAC-SHA256 of ``<t>.<body>`` with the endpoint's secret.  The application checks it with
:func:`switchboard.client.webhooks.verify_webhook`."""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SIGNATURE_HEADER", "EVENT_ID_HEADER", "EVENT_TYPE_HEADER", "sign"]

SIGNATURE_HEADER = "Switchboard-Signature"
EVENT_ID_HEADER = "Switchboard-Event-Id"
EVENT_TYPE_HEADER = "Switchboard-Event"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
