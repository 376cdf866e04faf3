"""One signed delivery attempt of one event to one endpoint."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp
import msgspec

from alerts.sinks import DeliveryFailed

from .events import HookEvent, body, event_id
from .settings import EndpointSettings
from .signing import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, sign

__all__ = ["post_event"]

_encode = msgspec.json.Encoder().encode


async def post_event(session: aiohttp.ClientSession, endpoint: EndpointSettings, room: str, instance: str,
                     event: HookEvent, *, wall_clock: Callable[[], float] = time.time) -> None:
    """POST ``event``, signed now; any answer but 2xx, a connection error or the endpoint's timeout
    is a failed attempt.

    :raises DeliveryFailed: it did not get through (the message says why, without the URL).
    """
    payload = _encode(body(room, instance, event))
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(endpoint.secret, int(wall_clock()), payload),
        EVENT_ID_HEADER: event_id(instance, event.seq),
        EVENT_TYPE_HEADER: event.type,
    }
    try:
        async with asyncio.timeout(endpoint.timeout):
            async with session.post(endpoint.url, data=payload, headers=headers) as response:
                await response.read()
                status = response.status
    except TimeoutError:
        raise DeliveryFailed(f"no answer within {endpoint.timeout:g} s") from None
    except (aiohttp.ClientError, OSError, ValueError) as exc:  # ValueError: a URL aiohttp cannot use
        raise DeliveryFailed(type(exc).__name__) from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"HTTP {status}")
