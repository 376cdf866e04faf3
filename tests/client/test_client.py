"""The Python client against the real embedded stack: login, text, outage and replay, tickets, leave."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
import socketio

from switchboard.client import Client, ClientError, ClientSettings, SessionClosed, decode_credential
from tests.client.conftest import FAST, MakeClient
from tests.support.waiting import wait_until

if TYPE_CHECKING:
    from switchboard.wiring import EmbeddedCluster


async def _raw_relogin(url: str, payload: Any) -> tuple[Any, ...]:
    """One ``relogin`` on a fresh Socket.IO connection; returns the ack arguments."""
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, transports=["websocket"])
    try:
        answer = await sio.call("relogin", payload, timeout=8)
    finally:
        await sio.disconnect()
    return answer if isinstance(answer, tuple) else (answer,)


async def _texts(client: Client, count: int) -> list[Any]:
    return [await client.next_event("text", timeout=10) for _ in range(count)]


async def test_login_gives_an_id_the_room_with_self_and_a_ticket(make_client: MakeClient) -> None:
    alice = await make_client("alice", room="login")
    assert alice.connected and alice.extension_active
    assert alice.id and alice.room["id"] == "login"
    assert alice.id in [p["id"] for p in alice.room["participants"]]
    assert alice.ticket_info is not None and alice.ticket_info.participant_id == alice.id
    assert alice.ticket_info.not_after > alice.ticket_info.not_before
    assert decode_credential(alice.ticket or "")["participantId"] == alice.id


async def test_two_clients_exchange_text_with_sequence_numbers(make_client: MakeClient) -> None:
    alice = await make_client("alice", room="chat")
    bob = await make_client("bob", room="chat")
    joined = await alice.next_event("participant", timeout=10)
    assert joined.data == {"action": "join", "data": {"id": bob.id, "user": "bob", "role": "presenter"}}

    await alice.send_text(bob.id or "", "hi bob")
    await bob.send_text("all", "hi all")
    to_bob = await bob.next_event("text", timeout=10)
    assert to_bob.data == {"from": alice.id, "to": "me", "message": "hi bob"}  # OWT: a private text arrives as "me"
    assert isinstance(to_bob.seq, int)
    to_all = await alice.next_event("text", timeout=10)
    assert to_all.data == {"from": bob.id, "to": "all", "message": "hi all"}
    assert alice.last_seq is not None and to_all.seq is not None and to_all.seq > (joined.seq or 0)


async def test_a_refused_request_raises_a_typed_error(make_client: MakeClient) -> None:
    alice = await make_client("alice", room="errors")
    with pytest.raises(ClientError) as info:
        await alice.send_text("nobody-here", "hello?")
    assert type(info.value) is ClientError  # the server refused it (not a transport or protocol fault)
    assert info.value.reason == "target participant does not exist: nobody-here"


async def test_a_dropped_client_relogins_and_gets_exactly_the_three_missed_messages(make_client: MakeClient) -> None:
    slow_return = ClientSettings(reconnection_delay=1.0, reconnection_jitter=0.0, request_timeout=8.0)
    alice = await make_client("alice", room="replay", settings=slow_return)
    bob = await make_client("bob", room="replay")
    await bob.send_text(alice.id or "", "before")
    assert [e.data["message"] for e in await _texts(alice, 1)] == ["before"]

    await alice.drop_transport()
    lost = await alice.next_event("disconnected", timeout=10)
    assert lost.data["reason"]
    for i in range(3):
        await bob.send_text(alice.id or "", f"missed {i}")

    back = await alice.next_event("reconnected", timeout=15)
    got = await _texts(alice, 3)
    assert [e.data["message"] for e in got] == ["missed 0", "missed 1", "missed 2"]
    seqs = [e.seq for e in got]
    assert all(isinstance(s, int) for s in seqs) and seqs == sorted(seqs) and len(set(seqs)) == 3
    assert back.data["replayed"] == 3 and all(e.replayed for e in got)  # sent while away: in the relogin ack

    await bob.send_text(alice.id or "", "after")
    assert [e.data["message"] for e in await _texts(alice, 1)] == ["after"]
    assert alice.drain_events("text") == []  # none twice: no second copy arrived before "after"…
    assert (alice.duplicates, alice.out_of_order) == (0, 0)  # …nor was one skipped
    assert alice.reconnections == 1 and alice.id == (alice.ticket_info and alice.ticket_info.participant_id)
    assert "participant" not in {e.name for e in bob.drain_events()}  # bob heard nothing of the outage


async def test_a_request_made_during_an_outage_goes_out_after_the_relogin(make_client: MakeClient) -> None:
    alice = await make_client("alice", room="outage")
    bob = await make_client("bob", room="outage")
    await alice.drop_transport()
    await alice.send_text(bob.id or "", "sent while away")
    assert alice.reconnections == 1
    assert [e.data["message"] for e in await _texts(bob, 1)] == ["sent while away"]


async def test_a_plain_owt_client_relogins_with_a_bare_ticket_and_gets_what_it_missed(
    make_client: MakeClient,
) -> None:
    slow_return = ClientSettings(reconnection_delay=0.5, reconnection_jitter=0.0, request_timeout=8.0)
    alice = await make_client("alice", room="plain", extension=False, settings=slow_return)
    bob = await make_client("bob", room="plain")
    assert not alice.extension_active
    await alice.drop_transport()
    await alice.next_event("disconnected", timeout=10)
    for i in range(3):
        await bob.send_text(alice.id or "", f"away {i}")
    await alice.next_event("reconnected", timeout=15)
    got = await _texts(alice, 3)
    assert [e.data["message"] for e in got] == ["away 0", "away 1", "away 2"]
    assert all(e.seq is None for e in got)
    await bob.send_text(alice.id or "", "after")  # delivered after any second copy of the replay would be
    assert [e.data["message"] for e in await _texts(alice, 1)] == ["after"]
    assert alice.drain_events("text") == []


async def test_a_refresh_rotates_the_ticket_and_the_old_one_is_refused(
    stack: EmbeddedCluster, make_client: MakeClient
) -> None:
    alice = await make_client("alice", room="tickets")
    old = alice.ticket
    new = await alice.refresh_ticket()
    assert new != old and alice.ticket == new
    assert decode_credential(new)["participantId"] == alice.id

    status, *rest = await _raw_relogin(stack.portal_url, old)
    assert status == "error", rest
    status, *rest = await _raw_relogin(stack.portal_url, {"ticket": old, "lastSeq": None})
    assert status == "error" and isinstance(rest[0], dict) and rest[0]["code"], rest
    # The refused attempts did not disturb the session.
    await alice.send_text("all", "still here")
    assert [e.data["message"] for e in await _texts(alice, 1)] == ["still here"]


async def test_after_leave_the_ticket_is_refused_and_the_others_hear_the_leave(
    stack: EmbeddedCluster, make_client: MakeClient
) -> None:
    alice = await make_client("alice", room="leave")
    bob = await make_client("bob", room="leave")
    ticket = alice.ticket
    await alice.leave()
    assert alice.state == "closed" and alice.close_reason == "left"
    assert (await alice.next_event("closed", timeout=1)).data == {"reason": "left"}
    await alice.leave()  # idempotent

    left = await bob.next_event("participant", timeout=10)
    while left.data.get("action") != "leave":
        left = await bob.next_event("participant", timeout=10)
    assert left.data["data"] == alice.id
    status, *rest = await _raw_relogin(stack.portal_url, ticket)
    assert status == "error", rest
    with pytest.raises(SessionClosed):
        await alice.send_text("all", "gone")


async def test_handlers_see_every_event_in_order(make_client: MakeClient) -> None:
    seen: list[str] = []
    alice = await make_client("alice", room="handlers", on_event=lambda e: seen.append(e.name))
    texts: list[str] = []

    @alice.on("text")
    async def on_text(event: Any) -> None:
        texts.append(event.data["message"])

    bob = await make_client("bob", room="handlers")
    for i in range(5):
        await bob.send_text("all", str(i))
    await wait_until(lambda: len(texts) == 5)
    assert texts == ["0", "1", "2", "3", "4"]
    assert seen[0] == "participant" and seen.count("text") == 5


async def test_a_token_string_works_as_well_as_an_api_url(stack: EmbeddedCluster) -> None:
    from switchboard.client import mint_token

    token = await mint_token(stack.api_url, "by-token", "carol", "presenter", headers=stack.service_headers)
    async with await Client.join(token, settings=FAST) as carol:
        assert carol.room["id"] == "by-token"
        with pytest.raises(ClientError) as info:  # a token works once
            await Client.join(token, settings=FAST)
        assert type(info.value) is ClientError and info.value.reason == "Token already used"


async def _drop(stack: EmbeddedCluster, room: str, participant: str) -> None:
    """The administrator drops a participant (the controller's admin RPC)."""
    transport = stack.broker.transport("client-tests-admin")
    try:
        await transport.call(stack.controller.worker_id, "drop_participant", {"room": room, "participant": participant,
                                                                           "admin_key": stack.admin_key})
    finally:
        await transport.close()


async def test_a_dropped_participant_gets_drop_and_does_not_reconnect(
    stack: EmbeddedCluster, make_client: MakeClient
) -> None:
    alice = await make_client("alice", room="dropped")
    await _drop(stack, "dropped", alice.id or "")
    assert (await alice.next_event("drop", timeout=10)).name == "drop"
    closed = await alice.next_event("closed", timeout=10)
    assert closed.data["reason"] == "dropped by the server"
    assert alice.drain_events("disconnected") == [] and alice.reconnections == 0


async def test_publish_and_subscribe_payloads_pass_the_portals_schema(make_client: MakeClient) -> None:
    # The embedded stack has no media agent: the controller refuses, the portal's validation did not.
    alice = await make_client("alice", room="media")
    with pytest.raises(ClientError) as publish:
        await alice.publish({"tracks": [{"type": "video", "mid": "0", "source": "camera"}]}, attributes={"by": "test"})
    with pytest.raises(ClientError) as subscribe:
        await alice.subscribe({"tracks": [{"type": "video", "mid": "0", "from": "0" * 32}]})
    assert type(publish.value) is ClientError and publish.value.reason == "no media agent available"
    assert type(subscribe.value) is ClientError
    assert subscribe.value.reason == f"no stream {'0' * 32} in room media"
