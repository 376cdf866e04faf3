"""Switchboard participants for the load generators: mint → connect → login, relogin, logout.

Speaks ``docs/protocol.md`` (OWT protocol 1.2) over :class:`bench.sioclient.SioClient`.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import aiohttp

from bench.sioclient import SioClient, SioError, mint_token

__all__ = ["Participant", "join", "join_retrying", "USER_AGENT", "portal_of", "connector", "gather_limited"]

USER_AGENT = {"sdk": {"type": "Python", "version": "bench"}}


def connector() -> aiohttp.TCPConnector:
    """A connector with no limit on simultaneous connections (the default is 100)."""
    return aiohttp.TCPConnector(limit=0, force_close=False)


def portal_of(token: str) -> str:
    """``http://host:port`` of the portal a join token names."""
    host = json.loads(base64.b64decode(token))["host"]
    return host if "http" in host else f"http://{host}"


class Participant:
    """A logged-in participant: its client, id and latest reconnection ticket."""

    __slots__ = ("client", "id", "ticket", "user", "room", "portal")

    def __init__(self, client: SioClient, pid: str, ticket: str, user: str, room: str, portal: str) -> None:
        self.client, self.id, self.ticket, self.user, self.room, self.portal = client, pid, ticket, user, room, portal

    async def logout(self, timeout: float = 10.0) -> None:
        ack = await self.client.call("logout", timeout=timeout)
        if ack[0] != "ok":
            raise SioError(f"logout refused: {ack}")
        await self.client.drop()

    async def relogin(self, session: aiohttp.ClientSession, portal: str | None = None, timeout: float = 10.0) -> None:
        """Open a new socket (at ``portal``, default the same one) and relogin with the ticket."""
        client = SioClient()
        client._handlers = self.client._handlers  # the same event handlers carry over
        await client.connect(session, portal or self.portal, timeout=timeout)
        ack = await client.call("relogin", self.ticket, timeout=timeout)
        if ack[0] != "ok":
            await client.drop()
            raise SioError(f"relogin refused: {ack}")
        self.client, self.ticket = client, ack[1]
        if portal:
            self.portal = portal


async def join(session: aiohttp.ClientSession, api: str, room: str, user: str, *, role: str = "presenter",
               portal: str | None = None, handlers: dict[str, Any] | None = None,
               timeout: float = 30.0) -> Participant:
    """Mint a token, connect to its portal (or ``portal``) and log in."""
    token = await mint_token(session, api, room, user, role)
    url = portal or portal_of(token)
    client = SioClient()
    for event, handler in (handlers or {}).items():
        client.on(event, handler)
    await client.connect(session, url, timeout=timeout)
    ack = await client.call("login", {"token": token, "userAgent": USER_AGENT, "protocol": "1.2"}, timeout=timeout)
    if ack[0] != "ok":
        await client.drop()
        raise SioError(f"login refused: {ack}")
    result = ack[1]
    return Participant(client, result["id"], result["reconnectionTicket"], user, room, url)


async def join_retrying(session: aiohttp.ClientSession, api: str, room: str, user: str, *, attempts: int = 3,
                        **kwargs: Any) -> Participant:
    """:func:`join`, retried after a pause when refused (a just-started or saturated server may answer
    ``service unavailable``/``timeout``, or 503 at ``POST /token``)."""
    for attempt in range(attempts):
        try:
            return await join(session, api, room, user, **kwargs)
        except (SioError, aiohttp.ClientError, asyncio.TimeoutError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


async def gather_limited(coros: list[Any], limit: int) -> list[Any]:
    """Run coroutines with at most ``limit`` at once, results in order."""
    sem = asyncio.Semaphore(limit)

    async def one(coro: Any) -> Any:
        async with sem:
            return await coro

    return list(await asyncio.gather(*(one(c) for c in coros)))
