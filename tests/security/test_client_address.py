"""Who the client is behind a reverse proxy, and the per-address limits that depend on it."""

from __future__ import annotations

from typing import Any
from unittest.mock import Mock

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from edge import AddressRateLimiter, TrustedProxies, client_address, limit_key, parse_address
from tests.conftest import MakeEmbedded
from tests.support.fake_clock import FakeClock


def _request(peer: str, forwarded: list[str] | None = None) -> Any:
    transport = Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (peer, 4321) if name == "peername" else default
    headers = [("X-Forwarded-For", value) for value in forwarded or []]
    return make_mocked_request("GET", "/", headers=headers, transport=transport)


PROXIES = TrustedProxies(["10.0.0.0/8", "fd00::/8", "192.0.2.7"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("198.51.100.9", ["203.0.113.1"], "198.51.100.9"),  # not a proxy: the header is the client's own
        ("10.1.2.3", ["203.0.113.1"], "203.0.113.1"),
        ("10.1.2.3", ["6.6.6.6, 203.0.113.1"], "203.0.113.1"),  # what the client wrote is left of its hop
        ("10.1.2.3", ["203.0.113.1, 10.9.9.9"], "203.0.113.1"),  # through two proxies
        ("10.1.2.3", ["6.6.6.6", "203.0.113.1, 192.0.2.7"], "203.0.113.1"),  # several header lines
        ("10.1.2.3", ["10.4.4.4, 10.5.5.5"], "10.4.4.4"),  # all trusted: the farthest one
        ("10.1.2.3", ["garbage, 10.5.5.5"], "10.5.5.5"),  # nothing left of a garbled hop is believed
        ("10.1.2.3", [], "10.1.2.3"),
        ("10.1.2.3", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("10.1.2.3", ["203.0.113.1:5555"], "203.0.113.1"),
        ("::ffff:10.1.2.3", ["203.0.113.1"], "203.0.113.1"),  # an IPv4-mapped peer is the IPv4 proxy
        ("fd00::1", ["2001:db8::7"], "2001:db8::7"),
    ],
)
def test_the_client_is_the_first_untrusted_hop_from_the_right(peer: str, forwarded: list[str], client: str) -> None:
    assert client_address(_request(peer, forwarded), PROXIES) == client


def test_without_trusted_proxies_forwarded_for_is_ignored() -> None:
    assert client_address(_request("10.1.2.3", ["203.0.113.1"]), TrustedProxies([])) == "10.1.2.3"


def test_a_trusted_proxy_that_is_not_an_address_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="portal.trusted_proxies: 'proxy.example' is not an IP address"):
        TrustedProxies(["10.0.0.0/8", "proxy.example"], setting="portal.trusted_proxies")


async def test_a_server_with_a_bad_trusted_proxy_does_not_start(make_embedded: MakeEmbedded) -> None:
    with pytest.raises(ValueError, match="trusted_proxies"):
        await make_embedded(token_api={"trusted_proxies": ["not-an-address"]})


def test_addresses_are_parsed_as_proxies_write_them() -> None:
    assert str(parse_address(" 203.0.113.1 ")) == "203.0.113.1"
    assert str(parse_address("[::1]:80")) == "::1"
    assert parse_address("unknown") is None and parse_address("") is None


def test_the_rate_limiter_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    limiter = AddressRateLimiter(2.0, 3, 100, clock=clock)
    assert [limiter.take("a") for _ in range(4)] == [0, 0, 0, 1]
    assert limiter.take("b") == 0  # another address has its own bucket
    clock.advance(0.5)
    assert limiter.take("a") == 0 and limiter.take("a") == 1


def test_the_rate_limiter_counts_an_ipv6_network_once_and_forgets_the_oldest_addresses() -> None:
    clock = FakeClock()
    limiter = AddressRateLimiter(0.001, 1, 2, clock=clock)
    assert limit_key("2001:db8:1:2::5") == limit_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert limiter.take("2001:db8:1:2::5") == 0
    assert limiter.take("2001:db8:1:2:ffff::9") > 0
    limiter.take("198.51.100.1")
    limiter.take("198.51.100.2")  # the IPv6 network is forgotten: at most two addresses are kept
    assert limiter.take("2001:db8:1:2::5") == 0


# -- through the token API ------------------------------------------------------------------------

KEY = "hostile-test-key-0123456789-abcdefghij"


async def _rooms(session: aiohttp.ClientSession, url: str, key: str, forwarded: str) -> int:
    async with session.get(f"{url}/v1/rooms", headers={"X-Service-Key": key, "X-Forwarded-For": forwarded}) as resp:
        return resp.status


@pytest.mark.parametrize("trusted", [True, False], ids=["behind-a-trusted-proxy", "direct"])
async def test_failed_authentications_lock_out_the_client_not_the_proxy(make_embedded: MakeEmbedded,
                                                                        trusted: bool) -> None:
    server = await make_embedded(token_api={
        "service_keys": {"svc": KEY}, "auth_failure_limit": 3,
        "trusted_proxies": ["127.0.0.1"] if trusted else [],
    })
    async with aiohttp.ClientSession() as session:
        assert [await _rooms(session, server.api_url, "wrong", "203.0.113.66") for _ in range(3)] == [401] * 3
        assert await _rooms(session, server.api_url, KEY, "203.0.113.66") == 429
        # Another client behind the same proxy is not locked out; without a trusted proxy the header
        # is the client's own word and everyone from that peer is the same client.
        assert await _rooms(session, server.api_url, KEY, "203.0.113.67") == (200 if trusted else 429)


async def test_token_mints_beyond_the_per_address_burst_get_a_json_429(make_embedded: MakeEmbedded) -> None:
    server = await make_embedded(token_api={"mints_per_address_burst": 2, "mints_per_address_per_second": 0.01,
                                            "trusted_proxies": ["127.0.0.1"]})
    async with aiohttp.ClientSession(headers=server.service_headers) as session:

        async def mint(room: str, forwarded: str) -> aiohttp.ClientResponse:
            async with session.post(f"{server.api_url}/token", headers={"X-Forwarded-For": forwarded},
                                    json={"room": room, "user": "u", "role": "presenter"}) as resp:
                await resp.read()
                return resp

        assert [(await mint(f"m{i}", "203.0.113.1")).status for i in range(2)] == [200, 200]
        refused = await mint("m-refused", "203.0.113.1")
        assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
        assert (await refused.json())["error"]["reason"] == "too_many_mints"
        assert (await mint("m-other", "203.0.113.2")).status == 200
        async with session.get(f"{server.api_url}/v1/rooms") as resp:
            rooms = {room["id"] for room in await resp.json()}
    assert "m-refused" not in rooms and {"m0", "m1", "m-other"} <= rooms
