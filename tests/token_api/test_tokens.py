"""Minting tokens over real HTTP, against a real cluster manager and real portal workers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time

import pytest

from credentials import decode_token as verify_token
from tests.support.fake_clock import FakeClock
from tests.support.waiting import wait_until

from .conftest import Stack, decode_token


async def test_a_token_from_post_token_names_the_reserved_portal_and_verifies(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-a", hostname="10.0.0.5", port=8443)
    await stack.start_api()

    before_ms = int(time.time() * 1000)
    response = await stack.post_token({"room": "r1", "user": "alice", "role": "presenter"})
    after_ms = int(time.time() * 1000)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    text = await response.text()

    fields = decode_token(text)
    assert fields["host"] == "10.0.0.5:8443"
    assert fields["secure"] is False
    token = verify_token(text, stack.keyring)
    assert (token.room, token.user, token.role) == ("r1", "alice", "presenter")
    assert token.origin == {}
    # valid for token_lifetime (180 s) from the moment it was minted
    assert before_ms + 180_000 <= token.not_after <= after_ms + 180_000


async def test_the_sdk_reads_host_without_scheme_or_path_and_secure_as_a_boolean(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-a", via_host="https://portal.example.com:443/socket.io/")
    await stack.start_api()

    fields = decode_token(await (await stack.post_token({"room": "r", "user": "u", "role": "viewer"})).text())
    assert fields["host"] == "portal.example.com:443"
    assert fields["secure"] is True
    assert {"tokenId", "host", "secure", "signature"} <= fields.keys()


async def test_a_portal_declared_secure_gives_secure_tokens(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-a", hostname="p.example.org", port=443, secure=True)
    await stack.start_api()

    fields = decode_token(await (await stack.post_token({"room": "r", "user": "u", "role": "viewer"})).text())
    assert (fields["host"], fields["secure"]) == ("p.example.org:443", True)


async def test_the_reservation_is_visible_to_the_admin_and_expires_with_the_token(stack: Stack) -> None:
    clock = FakeClock()
    await stack.start_manager(clock=clock)
    await stack.add_portal("portal-a")
    await stack.start_api(token_lifetime=1.0)

    text = await (await stack.post_token({"room": "r", "user": "u", "role": "presenter"})).text()
    token = verify_token(text, stack.keyring)
    scheduled = await stack.admin("get_scheduled", purpose="portal", task=token.code)
    assert scheduled["id"] == "portal-a"
    tasks = await stack.admin("get_tasks", worker_id="portal-a")
    # the admin sees a digest of the token's code, never the code (which would make a token)
    digest = "token:" + hashlib.sha256(token.code.encode()).hexdigest()[:16]
    assert [(t["task"], t["state"]) for t in tasks] == [(digest, "reserved")]
    assert token.code not in json.dumps(tasks)
    assert tasks[0]["expires_in"] == 1.0  # the manager's clock has not moved

    async def expired() -> bool:
        return await stack.admin("get_scheduled", purpose="portal", task=token.code) is None

    clock.advance(0.75)
    assert not await expired()
    clock.advance(0.25)
    assert await expired()
    assert await stack.admin("get_tasks", worker_id="portal-a") == []


async def test_an_unknown_room_is_created_with_owt_defaults_when_auto_create_is_on(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-a")
    await stack.start_api(auto_create_rooms=True)

    response = await stack.post_token({"room": "new-room", "user": "u", "role": "sip"})
    assert response.status == 200
    room = await (await stack.session.get(stack.url("/v1/rooms/new-room"))).json()
    assert room["participantLimit"] == -1
    assert [r["role"] for r in room["roles"]] == [
        "presenter", "viewer", "audio_only_presenter", "video_only_viewer", "sip",
    ]


async def test_an_unknown_room_is_404_when_auto_create_is_off(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-a")
    await stack.start_api(auto_create_rooms=False)

    response = await stack.post_token({"room": "nowhere", "user": "u", "role": "presenter"})
    assert response.status == 404
    assert (await response.json())["error"]["code"] == 1003
    response = await stack.session.post(stack.url("/v1/rooms/nowhere/tokens"), json={"user": "u", "role": "viewer"})
    assert response.status == 404
    assert (await stack.session.get(stack.url("/v1/rooms/nowhere"))).status == 404


async def test_a_role_the_room_lacks_is_refused_and_creates_nothing(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-a")
    await stack.start_api()

    response = await stack.post_token({"room": "fresh", "user": "u", "role": "superuser"})
    assert response.status == 400
    body = await response.json()
    assert body["error"]["code"] == 1201 and body["error"]["reason"] == "invalid_role"
    assert (await stack.session.get(stack.url("/v1/rooms/fresh"))).status == 404
    assert await stack.admin("get_tasks", worker_id="portal-a") == []


async def test_empty_blank_and_oversized_users_are_refused(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-a")
    await stack.start_api(max_user_length=128)

    for user in ["", "   ", "x" * 129]:
        response = await stack.post_token({"room": "r", "user": user, "role": "presenter"})
        assert response.status == 400, user
        assert (await response.json())["error"]["reason"] == "invalid_user"
    missing = await stack.post_token({"room": "r", "role": "presenter"})
    assert missing.status == 400
    assert (await stack.post_token({"room": "r", "user": "x" * 128, "role": "presenter"})).status == 200
    assert len(await stack.admin("get_tasks", worker_id="portal-a")) == 1


async def test_no_portal_gives_503_with_retry_after_within_the_budget(stack: Stack) -> None:
    await stack.start_manager()
    await stack.start_api(schedule_budget=1.0, retry_after=3)

    # how the budget is spent (the retries, their timeouts, the give-up) is tested on a fake clock in
    # test_placement.py; here: the answer over HTTP
    response = await stack.post_token({"room": "r", "user": "u", "role": "presenter"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "3"
    body = await response.json()
    assert body["error"]["code"] == 1301 and body["error"]["reason"] == "no_portal_available"
    assert (await stack.session.get(stack.url("/v1/rooms/r"))).status == 404


async def test_an_unreachable_cluster_manager_gives_503_within_the_budget(stack: Stack) -> None:
    await stack.start_api(schedule_budget=1.0)

    response = await stack.post_token({"room": "r", "user": "u", "role": "presenter"})
    assert response.status == 503
    body = await response.json()
    assert (body["error"]["code"], body["error"]["reason"]) == (1301, "cluster_unreachable")


async def test_a_not_ready_manager_is_retried_until_it_serves(stack: Stack) -> None:
    await stack.start_manager(fresh=True, initial_time=0.4)
    await stack.add_portal("portal-a")
    await stack.start_api(schedule_budget=3.0)

    response = await stack.post_token({"room": "r", "user": "u", "role": "presenter"})
    assert response.status == 200


async def test_tokens_land_on_the_portal_matching_isp_and_region(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-east", hostname="east", isps=["isp-a"], regions=["east"])
    await stack.add_portal("portal-west", hostname="west", isps=["isp-a"], regions=["west"])
    await stack.add_portal("portal-b", hostname="b", isps=["isp-b"], regions=["east", "west"])
    await stack.start_api()

    async def host_for(isp: str | None, region: str | None) -> str:
        preference = {k: v for k, v in {"isp": isp, "region": region}.items() if v is not None}
        response = await stack.post_token({"room": "r", "user": "u", "role": "viewer", "preference": preference})
        assert response.status == 200, await response.text()
        return str(decode_token(await response.text())["host"]).split(":")[0]

    for _ in range(3):
        assert await host_for("isp-a", "east") == "east"
        assert await host_for("isp-a", "west") == "west"
        assert await host_for("isp-b", "west") == "b"
        assert await host_for("isp-a", "north") in {"east", "west"}
        assert await host_for("isp-b", None) == "b"

    response = await stack.post_token(
        {"room": "r", "user": "u", "role": "viewer", "preference": {"isp": "isp-c", "region": "east"}}
    )
    assert response.status == 503
    assert (await response.json())["error"]["reason"] == "no_matching_portal"


async def test_the_origin_in_the_token_is_the_preference(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-a", isps=["isp-a"])
    await stack.start_api()

    text = await (await stack.post_token(
        {"room": "r", "user": "u", "role": "viewer", "preference": {"isp": "isp-a", "region": "r1"}}
    )).text()
    assert verify_token(text, stack.keyring).origin == {"isp": "isp-a", "region": "r1"}


async def test_post_room_tokens_mints_with_owt_body(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-a")
    await stack.start_api()

    response = await stack.session.post(
        stack.url("/v1/rooms/room-9/tokens"),
        json={"user": "bob", "role": "viewer", "preference": {"isp": "isp", "region": "region"}},
    )
    assert response.status == 200, await response.text()
    token = verify_token(await response.text(), stack.keyring)
    assert (token.room, token.user, token.role) == ("room-9", "bob", "viewer")


async def test_metrics_count_tokens_and_scheduling_failures(stack: Stack) -> None:
    await stack.start_manager()
    await stack.start_api(schedule_budget=0.3)
    assert (await stack.post_token({"room": "r", "user": "u", "role": "viewer"})).status == 503
    await stack.add_portal("portal-a")
    assert (await stack.post_token({"room": "r", "user": "u", "role": "viewer"})).status == 200

    text = await (await stack.session.get(stack.url("/metrics"))).text()
    assert 'switchboard_tokens_minted_total{endpoint="token"} 1.0' in text
    assert 'switchboard_token_scheduling_failures_total{reason="no_worker_available"} 1.0' in text


async def test_minting_works_over_both_transports(any_stack: Stack) -> None:
    await any_stack.start_manager()
    await any_stack.add_portal("portal-a", hostname="203.0.113.7", port=8080)
    await any_stack.start_api()

    response = await any_stack.post_token({"room": "r", "user": "u", "role": "presenter"})
    assert response.status == 200, await response.text()
    token = verify_token(await response.text(), any_stack.keyring)
    assert token.host == "203.0.113.7:8080"
    assert (await any_stack.admin("get_scheduled", purpose="portal", task=token.code))["id"] == "portal-a"


# The OWT JS SDK's own base64 decoder (src/sdk/base/base64.js): it skips characters outside the
# standard alphabet and yields one Latin-1 character per byte, then the SDK JSON.parses that.
_SDK_DECODE = r"""
const B = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const R = Object.fromEntries([...B].map((c, i) => [c, i]));
function decode(s) {
  let p = 0, out = '';
  const next = () => { while (p < s.length) { const c = s.charAt(p++); if (c in R) return R[c]; } return -1; };
  const b = [];
  while ((b[0] = next()) !== -1 && (b[1] = next()) !== -1) {
    b[2] = next(); b[3] = next();
    out += String.fromCharCode(((b[0] << 2) & 0xff) | (b[1] >> 4));
    if (b[2] === -1) break;
    out += String.fromCharCode(((b[1] << 4) & 0xff) | (b[2] >> 2));
    if (b[3] === -1) break;
    out += String.fromCharCode(((b[2] << 6) & 0xff) | b[3]);
  }
  return out;
}
const token = JSON.parse(decode(process.argv[1]));
const url = token.host.indexOf('http') === -1 ? (token.secure === true ? 'https://' : 'http://') + token.host : token.host;
console.log(JSON.stringify({host: token.host, secure: token.secure, url}));
"""


async def test_the_owt_js_sdk_decoder_reads_our_token(stack: Stack) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; `make test` (target node-deps) installs Debian's nodejs and npm")
    await stack.start_manager()
    await stack.add_portal("portal-a", via_host="wss://edge.example.com:8443")
    await stack.start_api()
    text = await (await stack.post_token({"room": "r", "user": "Zoë ✓", "role": "presenter"})).text()

    process = await asyncio.create_subprocess_exec(
        node, "-e", _SDK_DECODE, text, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, stderr.decode()
    assert json.loads(stdout) == {
        "host": "edge.example.com:8443", "secure": True, "url": "https://edge.example.com:8443",
    }


async def test_concurrent_tokens_for_a_new_room_create_it_once(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-a")
    await stack.start_api()

    responses = await asyncio.gather(
        *(stack.post_token({"room": "busy", "user": f"u{i}", "role": "viewer"}) for i in range(30))
    )
    assert [r.status for r in responses] == [200] * 30
    codes = {verify_token(await r.text(), stack.keyring).code for r in responses}
    assert len(codes) == 30
    assert len(await stack.admin("get_tasks", worker_id="portal-a")) == 30
    rooms = await (await stack.session.get(stack.url("/v1/rooms"))).json()
    assert [r["id"] for r in rooms] == ["busy"]


async def test_a_portal_without_a_public_address_is_500_and_its_reservation_is_released(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-a", hostname=None, port=None)
    await stack.start_api()

    response = await stack.post_token({"room": "r", "user": "u", "role": "viewer"})
    assert response.status == 500
    body = await response.json()
    assert body["error"]["code"] == 1301 and body["error"]["reason"] == "portal_without_address"
    assert await wait_until(
        lambda: _no_tasks(stack, "portal-a"), timeout=2.0, what="the reservation to be released"
    )


async def _no_tasks(stack: Stack, worker_id: str) -> bool:
    tasks: list[object] = await stack.admin("get_tasks", worker_id=worker_id)
    return tasks == []
