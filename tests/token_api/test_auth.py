"""Service keys and MAuth over real HTTP: good, bad, stale, replayed, malformed, rate limited."""

from __future__ import annotations

import base64
import time

import pytest

from credentials import decode_token as verify_token

from token_api.mauth import sign

from .conftest import SERVICE_ID, SERVICE_KEY, Stack, mauth_header

KEYS = {SERVICE_ID: SERVICE_KEY, "svc-2": "other-secret"}


@pytest.fixture
async def secured(stack: Stack) -> Stack:
    await stack.start_manager()
    await stack.add_portal("portal-a")
    await stack.start_api(require_service_key=True, service_keys=KEYS, auth_failure_limit=50)
    return stack


async def _room_token(stack: Stack, header: str, room: str = "r1") -> tuple[int, dict[str, object] | str]:
    response = await stack.anonymous.post(
        stack.url(f"/v1/rooms/{room}/tokens"), json={"user": "u", "role": "presenter"},
        headers={"Authorization": header},
    )
    if response.content_type == "application/json":
        return response.status, await response.json()
    return response.status, await response.text()


async def test_post_token_requires_a_service_key_by_default(secured: Stack) -> None:
    body = {"room": "r", "user": "u", "role": "viewer"}
    missing = await secured.post_token(body, anonymous=True)
    assert missing.status == 401
    error = (await missing.json())["error"]
    assert error["code"] == 1101 and error["reason"] == "missing_credentials"
    assert missing.headers["WWW-Authenticate"].startswith("MAuth")

    wrong = await secured.post_token(body, anonymous=True, headers={"X-Service-Key": "nope"})
    assert wrong.status == 401 and (await wrong.json())["error"]["reason"] == "bad_service_key"
    for key in KEYS.values():
        assert (await secured.post_token(body, anonymous=True, headers={"X-Service-Key": key})).status == 200
    assert (await secured.post_token(body, anonymous=True, headers={"Authorization": mauth_header()})).status == 200
    assert (await secured.anonymous.get(secured.url("/v1/rooms"))).status == 401


async def test_an_open_token_api_serves_anonymous_callers_on_loopback_only(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-a")
    await stack.start_api(require_service_key=False)
    await stack.session.post(stack.url("/v1/rooms"), json={"name": "known", "id": "known"})
    body = {"room": "known", "user": "u", "role": "viewer"}
    assert (await stack.post_token(body, anonymous=True)).status == 200
    # an anonymous caller cannot create rooms through auto-creation
    unknown = await stack.post_token({**body, "room": "made-up"}, anonymous=True)
    assert unknown.status == 404 and (await unknown.json())["error"]["reason"] == "unknown_room"
    rooms = await (await stack.anonymous.get(stack.url("/v1/rooms"))).json()
    assert [room["id"] for room in rooms] == ["known"]
    with pytest.raises(ValueError, match="loopback"):
        await stack.start_api(require_service_key=False, host="0.0.0.0")


async def test_a_good_mauth_header_mints_and_spaces_are_tolerated(secured: Stack) -> None:
    status, text = await _room_token(secured, mauth_header())
    assert status == 200, text
    status, text = await _room_token(secured, mauth_header(separator=", "))
    assert status == 200, text
    status, text = await _room_token(secured, mauth_header("svc-2", "other-secret"))
    assert status == 200, text


async def test_mauth_username_and_role_override_the_body(secured: Stack) -> None:
    status, text = await _room_token(secured, mauth_header(username="Zoë", role="viewer"))
    assert status == 200
    token = verify_token(text, secured.keyring)
    assert (token.user, token.role) == ("Zoë", "viewer")


async def test_a_bad_signature_is_401(secured: Stack) -> None:
    status, body = await _room_token(secured, mauth_header(key="wrong-key"))
    assert status == 401
    assert isinstance(body, dict) and body["error"]["code"] == 1101  # type: ignore[index]
    assert body["error"]["reason"] == "bad_signature"  # type: ignore[index]
    status, body = await _room_token(secured, mauth_header(service="unknown"))
    assert status == 401 and body["error"]["reason"] == "bad_signature"  # type: ignore[index]


async def test_a_stale_or_future_timestamp_is_401(secured: Stack) -> None:
    now = int(time.time() * 1000)
    for timestamp in (now - 301_000, now + 301_000):
        status, body = await _room_token(secured, mauth_header(timestamp=timestamp))
        assert status == 401 and body["error"]["reason"] == "stale_timestamp"  # type: ignore[index]
    status, _ = await _room_token(secured, mauth_header(timestamp=now - 200_000))
    assert status == 200


async def test_a_replayed_cnonce_is_401_but_another_service_may_use_it(secured: Stack) -> None:
    header = mauth_header(cnonce="12345")
    assert (await _room_token(secured, header))[0] == 200
    status, body = await _room_token(secured, header)
    assert status == 401 and body["error"]["reason"] == "replayed_nonce"  # type: ignore[index]
    fresh_time_same_nonce = mauth_header(cnonce="12345", timestamp=int(time.time() * 1000) + 1)
    assert (await _room_token(secured, fresh_time_same_nonce))[0] == 401
    assert (await _room_token(secured, mauth_header("svc-2", "other-secret", cnonce="12345")))[0] == 200


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc",
        "MAuth",
        "MAuth realm=x,mauth_signature_method=HMAC_SHA1,mauth_serviceid=svc-1,mauth_cnonce=1,"
        "mauth_timestamp=1,mauth_signature=abc",
        "MAuth realm=x,mauth_signature_method=HMAC_SHA256,mauth_serviceid=svc-1,mauth_cnonce=1",
        "MAuth realm=x,mauth_signature_method=HMAC_SHA256,mauth_serviceid=svc-1,mauth_cnonce=1,"
        "mauth_timestamp=yesterday,mauth_signature=abc",
        "MAuth garbage",
    ],
)
async def test_a_malformed_header_is_401_and_changes_nothing(secured: Stack, header: str) -> None:
    status, body = await _room_token(secured, header, room="untouched")
    assert status == 401
    assert body["error"]["reason"] == "malformed_header"  # type: ignore[index]
    listing = await secured.anonymous.get(secured.url("/v1/rooms"), headers={"Authorization": mauth_header()})
    assert await listing.json() == []


async def test_a_username_that_is_not_base64_is_malformed(secured: Stack) -> None:
    # Correctly signed (the signature covers the username as sent), so the only thing wrong is the
    # username itself: the header is malformed, whatever order the checks run in.
    timestamp, cnonce = int(time.time() * 1000), "4711"
    signature = sign(SERVICE_KEY, f"{timestamp},{cnonce},@@@,viewer")
    header = (
        f"MAuth realm=http://marte3.dit.upm.es,mauth_signature_method=HMAC_SHA256,mauth_serviceid={SERVICE_ID},"
        f"mauth_cnonce={cnonce},mauth_timestamp={timestamp},mauth_username=@@@,mauth_role=viewer,"
        f"mauth_signature={signature}"
    )
    status, body = await _room_token(secured, header)
    assert (status, body["error"]["reason"]) == (401, "malformed_header")  # type: ignore[index]
    # the same header with a base64 username passes: the username was the only fault
    good = mauth_header(username="u", role="viewer")
    assert (await _room_token(secured, good))[0] == 200


async def test_repeated_failures_from_one_address_are_rate_limited(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-a")
    await stack.start_api(service_keys=KEYS, auth_failure_limit=3, auth_failure_window=30)

    for _ in range(3):
        status, _ = await _room_token(stack, mauth_header(key="wrong"))
        assert status == 401
    response = await stack.anonymous.get(stack.url("/v1/rooms"), headers={"Authorization": mauth_header()})
    assert response.status == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 30
    assert (await response.json())["error"]["reason"] == "too_many_auth_failures"

    metrics = await (await stack.session.get(stack.url("/metrics"))).text()
    assert 'switchboard_token_api_auth_failures_total{reason="bad_signature"} 3.0' in metrics
    assert 'switchboard_token_api_auth_failures_total{reason="rate_limited"} 1.0' in metrics


async def test_require_service_key_without_keys_is_a_configuration_error(stack: Stack) -> None:
    with pytest.raises(ValueError, match="service_keys"):
        await stack.start_api(require_service_key=True, service_keys={})
