"""The status page's HTTP side on a running embedded server: login, sessions, CSRF, bad input, the
JSON board and its event stream."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from credentials import AdminKeys
from tests.conftest import MakeEmbedded
from tests.support.waiting import wait_until
from switchboard.wiring import EmbeddedCluster


async def _login(http: aiohttp.ClientSession, cluster: EmbeddedCluster, key: str | None = None) -> str:
    """Log in; returns the page's CSRF token."""
    async with http.post(f"{cluster.api_url}/dashboard/login", data={"admin_key": key or cluster.admin_key},
                         allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
        assert resp.headers["Location"] == "/dashboard"
    async with http.get(f"{cluster.api_url}/dashboard") as resp:
        assert resp.status == 200
        found = re.search(r'name="csrf-token" content="([^"]+)"', await resp.text())
    assert found is not None
    return found.group(1)


def _browser() -> aiohttp.ClientSession:
    # aiohttp keeps cookies of IP hosts only when told to (a browser keeps them).
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def _state(http: aiohttp.ClientSession, cluster: EmbeddedCluster) -> dict[str, Any]:
    async with http.get(f"{cluster.api_url}/dashboard/state") as resp:
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def _worker(cluster: EmbeddedCluster, purpose: str) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{cluster.api_url}/admin/rpc", headers=cluster.admin_headers,
                             json={"method": "get_workers", "args": {"purpose": purpose}}) as resp:
            return str((await resp.json())["result"][0]["id"])


async def test_without_a_login_the_page_its_data_and_its_actions_refuse(make_embedded: MakeEmbedded) -> None:
    cluster = await make_embedded()
    portal = await _worker(cluster, "portal")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{cluster.api_url}/dashboard", headers={"Origin": "http://evil.example"}) as resp:
            text = await resp.text()
            assert resp.status == 401
            assert 'name="admin_key"' in text and portal not in text
            assert "Access-Control-Allow-Origin" not in resp.headers
            assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
            assert resp.headers["X-Frame-Options"] == "DENY"
        for path in ("/dashboard/state", "/dashboard/events"):
            async with http.get(f"{cluster.api_url}{path}") as resp:
                assert resp.status == 401
                assert (await resp.json())["error"]["code"] == "unauthorized"
        for path in ("/dashboard/drain", "/dashboard/undrain", "/dashboard/logout"):
            async with http.post(f"{cluster.api_url}{path}", json={"worker_id": portal}) as resp:
                assert resp.status == 401
        # A cookie that was not signed here opens nothing.
        async with http.get(f"{cluster.api_url}/dashboard/state",
                            headers={"Cookie": "switchboard_dashboard=forged.cookie"}) as resp:
            assert resp.status == 401
        async with http.get(f"{cluster.api_url}/dashboard/static/dashboard.js") as resp:
            assert resp.status == 200 and resp.content_type == "text/javascript"
        async with http.get(f"{cluster.api_url}/dashboard/static/..%2Fdashboard.py") as resp:
            assert resp.status == 404
    drained = [w for w in cluster.cluster_manager.registry.schedulers["portal"].workers_view() if w["drained"]]
    assert drained == []


async def test_a_wrong_key_is_refused_and_a_good_one_opens_a_strict_httponly_session(
    make_embedded: MakeEmbedded,
) -> None:
    cluster = await make_embedded()
    async with _browser() as http:
        async with http.post(f"{cluster.api_url}/dashboard/login", data={"admin_key": "x" * 40},
                             allow_redirects=False) as resp:
            assert resp.status == 401
            assert "Set-Cookie" not in resp.headers
            assert "not an admin key" in await resp.text()
        async with http.post(f"{cluster.api_url}/dashboard/login", data={"admin_key": cluster.admin_key},
                             allow_redirects=False) as resp:
            assert resp.status == 303
            cookie = resp.headers["Set-Cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
            assert cluster.admin_key not in cookie
        board = await _state(http, cluster)
    workers = {w["purpose"]: w for w in board["overview"]["workers"]}
    assert set(workers) == {"portal", "conference"}
    assert workers["portal"]["status"] == "in_service"
    assert workers["portal"]["info"]["version"]
    assert workers["conference"]["keepalive_age"] is not None
    assert [m["role"] for m in board["overview"]["managers"]] == ["active"]
    assert board["faults"][0]["kind"] == "manager_active"


async def test_drain_and_undrain_need_the_csrf_token_and_this_origin(make_embedded: MakeEmbedded) -> None:
    cluster = await make_embedded()
    portal = await _worker(cluster, "portal")
    async with _browser() as http:
        csrf = await _login(http, cluster)
        drain = f"{cluster.api_url}/dashboard/drain"
        for headers in ({}, {"X-CSRF-Token": "wrong"},
                        {"X-CSRF-Token": csrf, "Origin": "http://evil.example"},
                        {"X-CSRF-Token": csrf, "Origin": "http://127.0.0.1:1"}):
            async with http.post(drain, json={"worker_id": portal}, headers=headers) as resp:
                assert resp.status == 403, headers
                assert (await resp.json())["error"]["code"] == "csrf"
        assert not cluster.cluster_manager.registry.schedulers["portal"].worker_view(portal)["drained"]

        async with http.post(drain, json={"worker_id": portal}, headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 200
            assert (await resp.json())["result"]["drained"] is True
        board = await _state(http, cluster)
        assert next(w for w in board["overview"]["workers"] if w["id"] == portal)["status"] == "draining"
        assert ("worker_drained", portal) in [(f["kind"], f["worker_id"]) for f in board["faults"]]

        # Behind a proxy that ends TLS the browser's origin says https: its host and port are what count.
        async with http.post(f"{cluster.api_url}/dashboard/undrain", json={"worker_id": portal},
                             headers={"X-CSRF-Token": csrf,
                                      "Origin": cluster.api_url.replace("http://", "https://")}) as resp:
            assert resp.status == 200
        board = await _state(http, cluster)
        assert next(w for w in board["overview"]["workers"] if w["id"] == portal)["status"] == "in_service"

        async with http.post(f"{cluster.api_url}/dashboard/logout", headers={"X-CSRF-Token": csrf}) as resp:
            assert resp.status == 200
        async with http.get(f"{cluster.api_url}/dashboard/state") as resp:
            assert resp.status == 401


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"worker_id=x", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"{not json", "application/json", 400, "bad_arguments"),
        (b'{"worker": "x"}', "application/json", 400, "bad_arguments"),
        (b'{"worker_id": ""}', "application/json", 400, "bad_arguments"),
        (b'{"worker_id": 7}', "application/json", 400, "bad_arguments"),
        (b'{"worker_id": "nobody"}', "application/json", 404, "unknown_worker"),
    ],
)
async def test_bad_drain_requests_are_refused_with_a_code(
    make_embedded: MakeEmbedded, body: bytes, content_type: str, status: int, code: str
) -> None:
    cluster = await make_embedded()
    async with _browser() as http:
        csrf = await _login(http, cluster)
        async with http.post(f"{cluster.api_url}/dashboard/drain", data=body,
                             headers={"X-CSRF-Token": csrf, "Content-Type": content_type}) as resp:
            assert resp.status == status
            assert (await resp.json())["error"]["code"] == code


async def test_bad_logins_are_refused_and_attempts_are_limited(make_embedded: MakeEmbedded) -> None:
    cluster = await make_embedded(token_api={"dashboard": {"logins_per_address_burst": 3,
                                                           "logins_per_address_per_second": 0.01}})
    login = f"{cluster.api_url}/dashboard/login"
    async with _browser() as http:
        async with http.post(login, data={"admin_key": cluster.admin_key},
                             headers={"Origin": "http://evil.example"}, allow_redirects=False) as resp:
            assert resp.status == 403
        async with http.post(login, json={"admin_key": cluster.admin_key}, allow_redirects=False) as resp:
            assert resp.status == 415
        async with http.post(login, data={"admin_key": "  "}, allow_redirects=False) as resp:
            assert resp.status == 400
        async with http.post(login, data={"admin_key": "wrong"}, allow_redirects=False) as resp:
            assert resp.status == 401
        async with http.post(login, data={"admin_key": cluster.admin_key}, allow_redirects=False) as resp:
            assert resp.status == 429
            assert int(resp.headers["Retry-After"]) >= 1
        async with http.get(f"{cluster.api_url}/dashboard/state") as resp:
            assert resp.status == 401


async def _events(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    event = ""
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            yield event, json.loads(line[len("data: "):])


async def test_the_event_stream_sends_the_board_again_when_it_changes(make_embedded: MakeEmbedded) -> None:
    cluster = await make_embedded(token_api={"dashboard": {"refresh_interval": 0.05, "streams": 1}})
    portal = await _worker(cluster, "portal")
    async with _browser() as http:
        csrf = await _login(http, cluster)
        async with http.get(f"{cluster.api_url}/dashboard/events") as resp:
            assert resp.status == 200 and resp.content_type == "text/event-stream"
            # One live page at a time here: a second is refused.
            async with http.get(f"{cluster.api_url}/dashboard/events") as second:
                assert second.status == 503
            boards = _events(resp)
            event, board = await anext(boards)
            assert event == "board"
            assert next(w for w in board["overview"]["workers"] if w["id"] == portal)["status"] == "in_service"
            async with http.post(f"{cluster.api_url}/dashboard/drain", json={"worker_id": portal},
                                 headers={"X-CSRF-Token": csrf}) as drained:
                assert drained.status == 200

            async def draining() -> bool:
                _, board = await anext(boards)
                return bool(next(w for w in board["overview"]["workers"] if w["id"] == portal)["status"]
                            == "draining")

            await wait_until(draining, what="the stream shows the drained portal")


async def test_a_session_whose_key_the_manager_no_longer_accepts_ends(make_embedded: MakeEmbedded) -> None:
    cluster = await make_embedded(token_api={"dashboard": {"refresh_interval": 0.05}})
    async with _browser() as http:
        await _login(http, cluster)
        await _state(http, cluster)
        async with http.get(f"{cluster.api_url}/dashboard/events") as stream:
            events = _events(stream)
            assert (await anext(events))[0] == "board"
            # The key is rotated away at the manager (as a restart with new keys.admin_keys does).
            admin = cluster.cluster_manager._admin
            kept, admin._keys = admin._keys, AdminKeys(["another-admin-key-of-at-least-32-chars"])
            try:
                # Bounded only so that a stream that never says it fails the test rather than hangs.
                async with asyncio.timeout(10):
                    while (await anext(events))[0] != "logout":
                        pass
            finally:
                admin._keys = kept
        async with http.get(f"{cluster.api_url}/dashboard/state") as resp:
            assert resp.status == 401  # the session is gone, even with the key accepted again
