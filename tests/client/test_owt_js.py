"""What the OWT JavaScript SDK speaks, through Node socket.io-client v4 (tests/js/owt_flow.mjs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from switchboard.client import mint_token
from tests.client.conftest import MakeClient, MakeHarness
from tests.client.node_harness import NodeHarness

if TYPE_CHECKING:
    from switchboard.wiring import EmbeddedCluster


async def _join(harness: NodeHarness, stack: EmbeddedCluster, room: str, user: str) -> dict[str, Any]:
    token = await mint_token(stack.api_url, room, user, "presenter", headers=stack.service_headers)
    result = await harness.command("join", token=token, io={"reconnectionDelay": 200, "reconnectionDelayMax": 1000})
    assert result["ok"], result
    return result


async def _texts(harness: NodeHarness, count: int) -> list[str]:
    return [(await harness.next_event("text", timeout=10))["data"]["message"] for _ in range(count)]


async def _assert_never_reconnects(node: NodeHarness) -> None:
    """socket.io-client will not reconnect (``socket.active`` is false: the server disconnected the
    socket, or the client did), so the SDK can never relogin."""
    state = await node.command("state")
    assert state["ok"] and state["data"]["connected"] is False and state["data"]["active"] is False, state
    assert node.drain_events("relogin") == [] and node.drain_events("connect") == []


async def test_login_as_the_js_sdk_gets_a_decodable_ticket_and_the_room_with_self(
    stack: EmbeddedCluster, make_harness: MakeHarness
) -> None:
    node = await make_harness()
    result = await _join(node, stack, "js-login", "nina")
    data = result["data"]
    assert result["status"] == "ok"
    assert data["id"] in [p["id"] for p in data["room"]["participants"]]
    assert data["room"]["id"] == "js-login"
    ticket = result["ticket"]  # decoded by the SDK-style base64 decoder
    assert isinstance(ticket["notAfter"], int) and ticket["notAfter"] > ticket["notBefore"]
    assert ticket["participantId"] == data["id"]
    assert "switchboard" not in data  # no extension asked, none given


async def test_text_between_a_node_client_and_a_python_client(
    stack: EmbeddedCluster, make_harness: MakeHarness, make_client: MakeClient
) -> None:
    node = await make_harness()
    nina = (await _join(node, stack, "js-text", "nina"))["data"]
    paul = await make_client("paul", room="js-text")
    assert (await node.next_event("participant"))["data"]["action"] == "join"

    sent = await node.command("text", to=paul.id, message="hello python")
    assert sent["ok"] and sent["status"] == "ok", sent
    got = await paul.next_event("text", timeout=10)
    assert got.data == {"from": nina["id"], "to": "me", "message": "hello python"}

    await paul.send_text(nina["id"], "hello node")
    event = await node.next_event("text")
    assert event["data"] == {"from": paul.id, "to": "me", "message": "hello node"}  # no seq for plain OWT


async def test_engine_close_relogins_with_a_bare_ticket_and_replays_in_order(
    stack: EmbeddedCluster, make_harness: MakeHarness, make_client: MakeClient
) -> None:
    node = await make_harness()
    nina = await _join(node, stack, "js-relogin", "nina")
    nina_id = nina["data"]["id"]
    paul = await make_client("paul", room="js-relogin")

    assert (await node.command("drop_transport"))["ok"]
    await node.next_event("disconnect")
    for i in range(3):
        await paul.send_text(nina_id, f"missed {i}")

    relogin = await node.next_event("relogin", timeout=15)
    assert relogin["ok"] and relogin["ticketType"] == "string", relogin
    assert relogin["ticket"] != nina["data"]["reconnectionTicket"]
    assert relogin["decoded"]["participantId"] == nina_id
    assert await _texts(node, 3) == ["missed 0", "missed 1", "missed 2"]

    await paul.send_text(nina_id, "after")
    assert await _texts(node, 1) == ["after"]
    # none twice: the next text is the next one sent (a repeat would come before it)
    await paul.send_text(nina_id, "marker")
    assert await _texts(node, 1) == ["marker"]
    assert node.drain_events("text") == []
    assert node.drain_events("uncaught") == []


async def test_refresh_gives_a_new_ticket_string(stack: EmbeddedCluster, make_harness: MakeHarness) -> None:
    node = await make_harness()
    nina = await _join(node, stack, "js-refresh", "nina")
    refreshed = await node.command("refresh")
    assert refreshed["ok"] and isinstance(refreshed["data"], str), refreshed
    assert refreshed["data"] != nina["data"]["reconnectionTicket"]
    assert refreshed["decoded"]["participantId"] == nina["data"]["id"]
    assert isinstance(refreshed["decoded"]["notAfter"], int)

    # The refreshed ticket is the one a relogin uses now.
    assert (await node.command("drop_transport"))["ok"]
    relogin = await node.next_event("relogin", timeout=15)
    assert relogin["ok"] and relogin["sentTicket"] == refreshed["data"], relogin


async def test_logout_ends_the_session(
    stack: EmbeddedCluster, make_harness: MakeHarness, make_client: MakeClient
) -> None:
    node = await make_harness()
    nina = await _join(node, stack, "js-logout", "nina")
    paul = await make_client("paul", room="js-logout")
    out = await node.command("logout")
    assert out["ok"] and out["status"] == "ok", out
    await node.next_event("serverdisconnected")
    left = await paul.next_event("participant", timeout=10)
    while left.data.get("action") != "leave":
        left = await paul.next_event("participant", timeout=10)
    assert left.data["data"] == nina["data"]["id"]
    await _assert_never_reconnects(node)  # no relogin after a logout


async def test_a_text_queued_during_the_outage_reaches_its_target_after_the_relogin(
    stack: EmbeddedCluster, make_harness: MakeHarness, make_client: MakeClient
) -> None:
    # socket.io-client 4.x flushes requests buffered during the outage before the SDK's relogin.
    node = await make_harness()
    await _join(node, stack, "js-queued", "nina")
    paul = await make_client("paul", room="js-queued")
    assert (await node.command("drop_transport"))["ok"]
    sent = await node.command("text", to=paul.id, message="queued while away")
    assert sent["ok"] and sent["status"] == "ok", sent
    assert (await node.next_event("relogin", timeout=15))["ok"]
    got = await paul.next_event("text", timeout=10)
    assert got.data["message"] == "queued while away"


async def test_a_drop_ends_the_js_session_without_relogin(
    stack: EmbeddedCluster, make_harness: MakeHarness
) -> None:
    node = await make_harness()
    nina = await _join(node, stack, "js-drop", "nina")
    transport = stack.broker.transport("client-tests-admin")
    try:
        await transport.call(
            stack.controller.worker_id, "drop_participant", {"room": "js-drop", "participant": nina["data"]["id"],
                                                         "admin_key": stack.admin_key}
        )
    finally:
        await transport.close()
    await node.next_event("drop")
    await node.next_event("serverdisconnected")
    await _assert_never_reconnects(node)
