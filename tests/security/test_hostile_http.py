"""Malformed, oversized and slow HTTP, sent to the token API and the portal through real sockets:
every refusal is JSON with a stable ``reason``, a valid status line, no version in ``Server``, and
nothing changes."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from tests.conftest import MakeEmbedded
from token_api.store_sqlite import SqliteRoomStore

from .conftest import FAST, Stack
from .raw_http import BOUND, RawResponse, connect, exchange, read_response

DEEP_VIEWS = (b'{"name":"x","options":{"views":[{"label":"a","x":' + b"[" * 20_000 + b"]" * 20_000 + b"}]}}")


def _post(path: str, body: bytes, *, length: int | None = None, extra: bytes = b"") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body) if length is None else length}\r\n").encode() + extra + b"\r\n" + body


def _assert_json_refusal(response: RawResponse | None, status: int, reason: str) -> RawResponse:
    assert response is not None, "no answer"
    assert response.status == status, response
    assert response.status_line.split(" ", 2)[1] == str(status)
    assert response.headers["content-type"].startswith("application/json")
    assert response.reason == reason, response.body
    assert response.headers.get("server") == "switchboard"
    return response


# -- bodies ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"name":"caf\xe9"}', "invalid_utf8"),
        (b'{"name":"\xed\xa0\x80"}', "invalid_utf8"),  # an encoded surrogate
        (DEEP_VIEWS, "too_deep"),
        (b'{"name":', "invalid_json"),
    ],
    ids=["latin1", "surrogate", "deep-views", "truncated"],
)
async def test_a_hostile_room_body_is_a_json_400_and_no_room_is_made(stack: Stack, body: bytes, reason: str) -> None:
    before = await stack.room_ids()
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{stack.api_url}/v1/rooms", data=body, headers={
            **stack.service_headers, "Content-Type": "application/json"}) as resp:
            assert resp.status == 400
            error = (await resp.json())["error"]
    assert error["reason"] == reason and error["code"] == 1201
    assert await stack.room_ids() == before


async def test_a_deep_token_request_is_a_json_400(stack: Stack) -> None:
    body = b'{"room":"deep","user":"u","role":"presenter","preference":' + b"[" * 5000 + b"]" * 5000 + b"}"
    before = await stack.room_ids()
    response = await exchange(stack.api_url, _post("/token", body, extra=_headers(stack.service_headers)))
    _assert_json_refusal(response, 400, "too_deep")
    assert await stack.room_ids() == before


async def test_a_body_over_client_max_size_is_a_json_413(make_embedded: MakeEmbedded) -> None:
    server = await make_embedded(token_api={"client_max_size": 1024})
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.api_url}/v1/rooms", data=b"{" + b" " * 4096 + b"}",
                                headers={**server.service_headers, "Content-Type": "application/json"}) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"]["reason"] == "body_too_large"


async def test_an_unexpected_failure_is_a_real_500_in_json(make_embedded: MakeEmbedded,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    server = await make_embedded()

    async def broken(self: SqliteRoomStore, offset: int = 0, limit: int = 100) -> list[object]:
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(SqliteRoomStore, "page", broken)
    request = b"GET /v1/rooms HTTP/1.1\r\nHost: test\r\n" + _headers(server.service_headers) + b"\r\n"
    response = _assert_json_refusal(await exchange(server.api_url, request), 500, "internal")
    assert response.status_line == "HTTP/1.1 500 Internal Server Error"
    assert response.json()["error"]["code"] == 2001
    assert b"fire" not in response.body


def _headers(headers: dict[str, str]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode()


# -- what aiohttp's parser refuses ----------------------------------------------------------------

PARSER_ATTACKS = {
    "huge-url": (b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: test\r\n\r\n", 400, "line_too_long"),
    "huge-header": (b"GET / HTTP/1.1\r\nHost: test\r\nX-Big: " + b"a" * 20_000 + b"\r\n\r\n", 400, "line_too_long"),
    "too-many-headers": (b"GET / HTTP/1.1\r\nHost: test\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(300))
                         + b"\r\n", 431, "too_many_headers"),
    "length-and-chunked": (b"POST /token HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_http_request"),
    "tls-on-http": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400, "bad_method"),
    "garbage-line": (b"GET / HTTP/1.1 extra words\r\nHost: test\r\n\r\n", 400, "bad_request_line"),
}


@pytest.mark.parametrize("server", ["api", "portal"])
@pytest.mark.parametrize("attack", list(PARSER_ATTACKS))
async def test_what_the_http_parser_refuses_is_a_json_4xx_and_the_connection_closes(
        stack: Stack, server: str, attack: str) -> None:
    data, status, reason = PARSER_ATTACKS[attack]
    url = stack.api_url if server == "api" else stack.portal_url
    response = _assert_json_refusal(await exchange(url, data), status, reason)
    assert response.closed
    assert b"aiohttp" not in response.body and b"Python" not in response.body


@pytest.mark.parametrize("server", ["api", "portal"])
async def test_no_response_names_a_version_in_server(stack: Stack, server: str) -> None:
    url = stack.api_url if server == "api" else stack.portal_url
    async with aiohttp.ClientSession() as session:
        for path in ("/healthz", "/no-such-path", "/socket.io/?EIO=4&transport=polling"):
            async with session.get(url + path) as resp:
                assert resp.headers.get("Server") == "switchboard", (path, resp.headers)
                if resp.status >= 400 and path != "/socket.io/?EIO=4&transport=polling":
                    assert (await resp.json())["error"]["reason"] == "not_found"


# -- slow clients ---------------------------------------------------------------------------------


async def _dribble(writer: asyncio.StreamWriter, stop: asyncio.Event) -> None:
    """One header byte every 0.1 s, until the server closes or the test stops it."""
    while not stop.is_set():
        try:
            writer.write(b"a")
            await writer.drain()
        except ConnectionError:
            return
        await asyncio.sleep(0.1)  # the attacker's pace, not a wait for the server


@pytest.mark.parametrize("server", ["api", "portal"])
async def test_a_slowloris_head_is_cut_after_header_timeout(stack: Stack, server: str) -> None:
    url = stack.api_url if server == "api" else stack.portal_url
    reader, writer = await connect(url)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: ")
    stop = asyncio.Event()
    dribbler = asyncio.create_task(_dribble(writer, stop))
    try:
        response = _assert_json_refusal(await read_response(reader), 408, "header_timeout")
        assert response.closed
    finally:
        stop.set()
        await dribbler
        writer.close()


@pytest.mark.parametrize("server", ["api", "portal"])
async def test_a_connection_that_sends_nothing_is_closed_silently(stack: Stack, server: str) -> None:
    reader, writer = await connect(stack.api_url if server == "api" else stack.portal_url)
    try:
        assert await read_response(reader) is None
    finally:
        writer.close()


async def test_a_token_request_whose_body_never_comes_is_a_408_and_changes_nothing(stack: Stack) -> None:
    before = await stack.room_ids()
    body = json.dumps({"room": "never-made", "user": "u", "role": "presenter"}).encode()
    reader, writer = await connect(stack.api_url)
    try:
        writer.write(_post("/token", body[:10], length=len(body), extra=_headers(stack.service_headers)))
        response = _assert_json_refusal(await read_response(reader), 408, "body_timeout")
        assert response.closed
    finally:
        writer.close()
    assert await stack.room_ids() == before


async def test_keep_alive_and_pipelining_still_work(make_embedded: MakeEmbedded) -> None:
    server = await make_embedded(**FAST)
    reader, writer = await connect(server.api_url)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n" * 3)
        for _ in range(3):
            response = await read_response(reader)
            assert response is not None and response.status == 200 and not response.closed
        # Idle past header_timeout, the kept-alive connection is closed without a response.
        assert await read_response(reader) is None
    finally:
        writer.close()
    assert BOUND > FAST["token_api"]["header_timeout"]
