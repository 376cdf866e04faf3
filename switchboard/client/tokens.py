"""Join tokens and reconnection tickets as a client sees them: base64 JSON read without verification.

The client never checks signatures (it has no key); it reads a token's ``host`` and ``secure`` to find
the portal, and a ticket's ``notBefore``/``notAfter`` to schedule the refresh, exactly as the OWT
JavaScript SDK does. :func:`mint_token` asks a token API for a token (``POST /token``).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from .errors import ClientError, TokenApiUnavailable

__all__ = ["TicketInfo", "decode_credential", "portal_url", "ticket_info", "refresh_delay", "mint_token"]


@dataclass(frozen=True, slots=True)
class TicketInfo:
    """The parts of a reconnection ticket a client uses; times are milliseconds since the epoch."""

    participant_id: str
    not_before: int
    not_after: int

    @property
    def lifetime(self) -> float:
        """Lifetime in seconds."""
        return (self.not_after - self.not_before) / 1000


def decode_credential(text: str, what: str = "token") -> dict[str, Any]:
    """Decode a standard-base64 JSON token or ticket (no signature check).

    :raises ClientError: when ``text`` is not standard base64 of a JSON object.
    """
    try:
        fields = json.loads(base64.b64decode(text.encode("ascii"), validate=True))
    except (ValueError, UnicodeEncodeError, binascii.Error, AttributeError):
        raise ClientError(f"{what} is not base64 JSON") from None
    if not isinstance(fields, dict):
        raise ClientError(f"{what} is not a JSON object")
    return fields


def portal_url(token: str) -> str:
    """The portal URL of a join token, built as the OWT SDK builds it.

    ``host`` is used as given when it contains ``http``; otherwise ``https://`` is prefixed when
    ``secure`` is true and ``http://`` when not.
    """
    fields = decode_credential(token)
    host = fields.get("host")
    if not isinstance(host, str) or not host:
        raise ClientError("Invalid host.")
    if "http" in host:
        return host
    return ("https://" if fields.get("secure") is True else "http://") + host


def ticket_info(ticket: str) -> TicketInfo:
    """Read a reconnection ticket's participant id and validity window."""
    fields = decode_credential(ticket, "reconnection ticket")
    not_after = fields.get("notAfter")
    if not isinstance(not_after, (int, float)) or isinstance(not_after, bool):
        raise ClientError("reconnection ticket has no numeric notAfter")
    not_before = fields.get("notBefore")
    if not isinstance(not_before, (int, float)) or isinstance(not_before, bool):
        not_before = int(time.time() * 1000)
    return TicketInfo(str(fields.get("participantId", "")), int(not_before), int(not_after))


def refresh_delay(info: TicketInfo, *, margin: float, min_delay: float, now: float | None = None) -> float | None:
    """Seconds from ``now`` (epoch seconds) until the ticket should be refreshed; ``None`` when expired.

    A ticket is refreshed ``margin`` seconds before it expires; a ticket living less than twice the
    margin is refreshed at half its lifetime. The delay is never below ``min_delay``, so a server that
    hands out very short tickets cannot drive the client into a refresh storm.
    """
    current = time.time() if now is None else now
    not_after = info.not_after / 1000
    if not_after <= current:
        return None
    if info.lifetime >= 2 * margin:
        due = not_after - margin
    else:
        due = info.not_before / 1000 + info.lifetime / 2
    return max(min_delay, due - current)


#: Statuses of a token API (or of a proxy in front of it) after which the next one is asked.
_UNAVAILABLE = frozenset({502, 503, 504})


async def mint_token(
    api_url: str | Sequence[str],
    room: str,
    user: str,
    role: str,
    *,
    preference: dict[str, Any] | None = None,
    timeout: float = 10.0,
    ssl_verify: bool = True,
    headers: dict[str, str] | None = None,
) -> str:
    """Ask a token API for a join token: ``POST {api_url}/token`` with ``{room, user, role, preference}``.

    :param api_url: a token API's URL, or several (token API processes of one cluster, on one room
                    store): they are asked in the given order, the next one only when one cannot
                    be reached, times out or answers 502, 503 or 504 — as a load balancer would.
    :param headers: extra request headers, e.g. ``{"X-Service-Key": key}`` when the API requires one.
    :param timeout: seconds for each API asked.
    :raises ClientError: with the API's message when it refuses (any other status than 2xx).
    :raises TokenApiUnavailable: when none answered.

    Note: this function is a coroutine.
    """
    urls = [api_url] if isinstance(api_url, str) else list(api_url)
    if not urls:
        raise ValueError("no token API URL")
    body: dict[str, Any] = {"room": room, "user": user, "role": role}
    if preference is not None:
        body["preference"] = preference
    failures = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
        for base in urls:
            url = base.rstrip("/") + "/token"
            try:
                async with session.post(url, json=body, headers=headers, ssl=ssl_verify) as resp:
                    text = await resp.text()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures.append(f"{url} unreachable: {exc!r}")
                continue
            if status in _UNAVAILABLE:
                failures.append(f"{url} answered {status}: {text.strip()}")
                continue
            if status >= 300:
                raise ClientError(f"token API answered {status}: {text.strip()}")
            return text.strip()
    raise TokenApiUnavailable("no token API answered: " + "; ".join(failures))
