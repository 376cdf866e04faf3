"""Checking a webhook from Switchboard in the application (docs/webhooks.md): the signature, and
that it is recent.

::

    from switchboard.client.webhooks import WebhookRejected, verify_webhook

    try:
        event = verify_webhook(await request.read(), request.headers.get("Switchboard-Signature"), SECRET)
    except WebhookRejected:
        return web.Response(status=400)

Needs nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

__all__ = ["SIGNATURE_HEADER", "WebhookRejected", "verify_webhook"]

SIGNATURE_HEADER = "Switchboard-Signature"


class WebhookRejected(Exception):
    """The request is not a genuine, recent webhook (the message says why)."""


def _parse(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise WebhookRejected("the signature's timestamp is not a number") from None
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise WebhookRejected("the signature header needs t=<unix seconds> and v1=<hex>")
    return timestamp, signatures


def verify_webhook(body: bytes, header: str | None, secret: str, *, tolerance: float = 300.0,
                   now: float | None = None) -> dict[str, Any]:
    """The event (``{"id", "type", "room", "seq", "data"}``) of a webhook whose ``Switchboard-Signature``
    header is ``header``: HMAC-SHA256 of ``<t>.<body>`` with ``secret`` must match ``v1`` (compared in
    constant time) and ``t`` must be within ``tolerance`` seconds of ``now`` (default: the wall clock),
    either way, so a captured delivery cannot be replayed later.

    :raises WebhookRejected: no header, a malformed one, a wrong signature, or a timestamp out of range.
    """
    if not header:
        raise WebhookRejected(f"no {SIGNATURE_HEADER} header")
    timestamp, signatures = _parse(header)
    expected = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, signature) for signature in signatures):
        raise WebhookRejected("the signature does not match")
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance:
        raise WebhookRejected(f"the signature is {age:.0f} s old (more than {tolerance:g} s either way)")
    try:
        event = json.loads(body)
    except ValueError:
        raise WebhookRejected("the body is not JSON") from None
    if not isinstance(event, dict):
        raise WebhookRejected("the body is not a JSON object")
    return event
