"""Switchboard's Python client: join a conference, exchange events, survive network loss.

::

    from switchboard.client import Client

    client = await Client.join("http://127.0.0.1:3000", room="demo", user="bot", role="presenter")
    await client.send_text("all", "hello")
    event = await client.next_event("text", timeout=5)
    await client.leave()

See ``docs/client.md``.
"""

from .client import PROTOCOL_VERSION, RELAYED_REQUESTS, SDK_TYPE, SDK_VERSION, Client, ClientState
from .errors import ClientError, ConnectionLost, ProtocolError, RequestTimeout, SessionClosed, TokenApiUnavailable
from .events import SESSION_EVENTS, Event, EventHandler
from .settings import ClientSettings
from .tokens import TicketInfo, decode_credential, mint_token, portal_url, ticket_info

__all__ = [
    "Client",
    "ClientState",
    "ClientSettings",
    "Event",
    "EventHandler",
    "SESSION_EVENTS",
    "ClientError",
    "ConnectionLost",
    "ProtocolError",
    "RequestTimeout",
    "SessionClosed",
    "TokenApiUnavailable",
    "TicketInfo",
    "decode_credential",
    "mint_token",
    "portal_url",
    "ticket_info",
    "PROTOCOL_VERSION",
    "RELAYED_REQUESTS",
    "SDK_TYPE",
    "SDK_VERSION",
]
