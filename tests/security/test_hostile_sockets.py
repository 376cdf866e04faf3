"""Hostile Engine.IO/Socket.IO clients at the portal: a polling body that never comes, sockets that
never log in, and too many new connections from one address."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from switchboard.client import Client
from tests.conftest import MakeEmbedded
from tests.support.waiting import wait_until

from .conftest import FAST, Stack
from .raw_http import connect, exchange, read_response

POLLING = "/socket.io/?EIO=4&transport=polling"


async def _handshake(session: aiohttp.ClientSession, portal_url: str, headers: dict[str, str] | None = None) -> str:
    """A new Engine.IO polling session; its sid."""
    async with session.get(portal_url + POLLING, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        text = await resp.text()
    assert text.startswith("0"), text
    sid: str = json.loads(text[1:])["sid"]
    return sid


async def _session_gone(session: aiohttp.ClientSession, portal_url: str, sid: str) -> bool:
    async with session.get(f"{portal_url}{POLLING}&sid={sid}") as resp:
        return resp.status == 400


async def test_a_polling_post_whose_body_never_comes_is_a_408_and_ends_the_session(stack: Stack) -> None:
    async with aiohttp.ClientSession() as session:
        sid = await _handshake(session, stack.portal_url)
        reader, writer = await connect(stack.portal_url)
        try:
            writer.write(f"POST {POLLING}&sid={sid} HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\n"
                         "Content-Length: 1000\r\n\r\n".encode())
            response = await read_response(reader)
        finally:
            writer.close()
        assert response is not None and response.status == 408 and response.reason == "body_timeout"
        assert response.closed
        assert await _session_gone(session, stack.portal_url, sid)


async def test_a_polling_post_announcing_two_mebibytes_is_answered_at_once(stack: Stack) -> None:
    async with aiohttp.ClientSession() as session:
        sid = await _handshake(session, stack.portal_url)
        request = (f"POST {POLLING}&sid={sid} HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\n"
                   "Content-Length: 2097152\r\n\r\n").encode()
        response = await exchange(stack.portal_url, request)
        assert response is not None and response.status == 413 and response.reason == "body_too_large"
        assert response.closed
        assert await _session_gone(session, stack.portal_url, sid)


async def _closed_by_server(ws: aiohttp.ClientWebSocketResponse) -> bool:
    """Read until the server ends the websocket (pings are answered by aiohttp)."""
    async for message in ws:
        assert message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY), message
    return ws.closed


@pytest.mark.parametrize("send_connect", [False, True], ids=["no-connect", "connect-no-login"])
async def test_a_websocket_without_a_login_is_closed_at_the_transport(stack: Stack, send_connect: bool) -> None:
    url = stack.portal_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, autoping=True) as ws:
            opened = await ws.receive_str(timeout=10)
            assert opened.startswith("0")
            if send_connect:
                await ws.send_str("40")
                connected = await ws.receive_str(timeout=10)
                assert connected.startswith("40"), connected
            assert await _closed_by_server(ws)


async def test_a_polling_session_that_never_connects_socketio_ends(stack: Stack) -> None:
    async with aiohttp.ClientSession() as session:
        sid = await _handshake(session, stack.portal_url)

        async def gone() -> bool:
            return await _session_gone(session, stack.portal_url, sid)

        await wait_until(gone, what="the session to end after login_timeout")


async def test_a_logged_in_socket_outlives_login_timeout(make_embedded: MakeEmbedded) -> None:
    server = await make_embedded(**FAST)
    client = await Client.join(server.api_url, room="stays", user="alice", role="presenter",
                               api_headers=server.service_headers)
    try:
        timers = server.portal.server._login_timers
        await wait_until(lambda: not timers, what="the login deadline to pass")
        assert client.connected
        assert isinstance(await client.refresh_ticket(), str)
    finally:
        await client.leave()


async def _new_session_status(session: aiohttp.ClientSession, portal_url: str,
                              headers: dict[str, str] | None = None) -> tuple[int, Any, str | None]:
    async with session.get(portal_url + POLLING, headers=headers) as resp:
        body = await resp.json() if resp.content_type == "application/json" else await resp.text()
        return resp.status, body, resp.headers.get("Retry-After")


async def test_new_connections_beyond_the_per_address_burst_get_a_json_429(make_embedded: MakeEmbedded) -> None:
    server = await make_embedded(portal={"connections_per_address_burst": 2,
                                         "connections_per_address_per_second": 0.01})
    sockets = server.portal.server.sio.eio.sockets
    async with aiohttp.ClientSession() as session:
        assert [(await _new_session_status(session, server.portal_url))[0] for _ in range(2)] == [200, 200]
        status, body, retry_after = await _new_session_status(session, server.portal_url)
        assert status == 429 and body["error"]["reason"] == "too_many_connections"
        assert retry_after is not None and int(retry_after) >= 1
        assert len(sockets) == 2  # nothing made for the refused one
        # A spoofed X-Forwarded-For changes nothing when no proxy is trusted.
        spoofed = await _new_session_status(session, server.portal_url, {"X-Forwarded-For": "198.51.100.1"})
        assert spoofed[0] == 429


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_connection_budget(
        make_embedded: MakeEmbedded) -> None:
    server = await make_embedded(portal={"connections_per_address_burst": 1,
                                         "connections_per_address_per_second": 0.01,
                                         "trusted_proxies": ["127.0.0.0/8"]})
    async with aiohttp.ClientSession() as session:
        first = {"X-Forwarded-For": "203.0.113.1"}
        second = {"X-Forwarded-For": "evil, 203.0.113.2"}  # what the client wrote is left of the proxy's hop
        assert (await _new_session_status(session, server.portal_url, first))[0] == 200
        assert (await _new_session_status(session, server.portal_url, first))[0] == 429
        assert (await _new_session_status(session, server.portal_url, second))[0] == 200
