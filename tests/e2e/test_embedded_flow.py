"""The whole flow in embedded mode: mint → login → text → outage → relogin → exactly what was missed."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from switchboard.client import Client, ClientError
from switchboard.client.tokens import mint_token
from switchboard.wiring import EmbeddedCluster
from tests.conftest import MakeEmbedded
from tests.support.waiting import wait_until


async def _texts_after(client: Client, count: int, timeout: float = 10.0) -> list[str]:
    got = []
    for _ in range(count):
        event = await client.next_event("text", timeout=timeout)
        got.append(event.data["message"])
    return got


async def test_a_dropped_extension_client_gets_exactly_the_three_messages_it_missed(
    make_embedded: MakeEmbedded,
) -> None:
    server = await make_embedded()
    alice = await Client.join(server.api_url, api_headers=server.service_headers, room="e2e", user="alice", role="presenter")
    bob = await Client.join(server.api_url, api_headers=server.service_headers, room="e2e", user="bob", role="presenter")
    assert alice.id is not None and bob.id is not None  # a successful login sets them
    await bob.send_text(alice.id, "hello alice")
    assert await _texts_after(alice, 1) == ["hello alice"]
    await alice.send_text(bob.id, "hello bob")
    assert await _texts_after(bob, 1) == ["hello bob"]

    # The transport dies; bob sends at once, before anyone may have noticed (the undetected window).
    await alice.drop_transport()
    for i in range(3):
        await bob.send_text(alice.id, f"missed {i}")
    assert await _texts_after(alice, 3) == ["missed 0", "missed 1", "missed 2"]
    await wait_until(lambda: alice.reconnections == 1)
    await bob.send_text(alice.id, "after")
    assert await _texts_after(alice, 1) == ["after"]
    assert alice.drain_events("text") == []  # none twice
    for client in (alice, bob):  # the client skips them, so the counts are what shows a second copy
        assert (client.duplicates, client.out_of_order) == (0, 0)
    assert alice.last_seq is not None
    await alice.leave()
    await bob.leave()


async def test_a_plain_owt_client_gets_the_messages_sent_while_it_was_held(make_embedded: MakeEmbedded) -> None:
    server = await make_embedded()
    alice = await Client.join(server.api_url, api_headers=server.service_headers, room="plain", user="alice", role="presenter", extension=False)
    assert alice.id is not None  # a successful login sets it
    bob = await Client.join(server.api_url, api_headers=server.service_headers, room="plain", user="bob", role="presenter")
    reconnected = asyncio.Event()
    alice.on("disconnected", lambda _e: None)
    alice.on("reconnected", lambda _e: reconnected.set())
    # Hold alice's session until bob has sent: block her reconnection by pointing it nowhere first.
    real_url = alice.url
    alice.url = "http://127.0.0.1:9"
    await alice.drop_transport()
    await wait_until(lambda: _has_held(server, "plain"))
    for i in range(3):
        await bob.send_text(alice.id, f"while away {i}")
    alice.url = real_url
    await asyncio.wait_for(reconnected.wait(), 15)
    assert await _texts_after(alice, 3) == ["while away 0", "while away 1", "while away 2"]
    await bob.send_text(alice.id, "after")  # delivered after any second copy of the replay would be
    assert await _texts_after(alice, 1) == ["after"]
    assert alice.drain_events("text") == []  # none twice (a plain client has no seq to count)
    assert (bob.duplicates, bob.out_of_order) == (0, 0)
    await alice.leave()
    await bob.leave()


async def _admin(server: EmbeddedCluster, target: str, method: str, **args: Any) -> Any:
    """An admin call through the real RPC entry point."""
    transport = server.broker.transport("e2e-admin")
    try:
        return await transport.call(target, method, {**args, "admin_key": server.admin_key})
    finally:
        await transport.close()


async def _participant_states(server: EmbeddedCluster, room: str) -> list[str]:
    participants = await _admin(server, server.controller.worker_id, "get_participants", room=room)
    return [str(p.get("state")) for p in participants]


async def _has_held(server: EmbeddedCluster, room: str) -> bool:
    return "held" in await _participant_states(server, room)


async def test_a_held_participant_that_never_returns_leaves_and_the_others_are_told(
    make_embedded: MakeEmbedded,
) -> None:
    server = await make_embedded(controller={"reconnection_timeout": 1.0})
    alice = await Client.join(server.api_url, api_headers=server.service_headers, room="gone", user="alice", role="presenter")
    bob = await Client.join(server.api_url, api_headers=server.service_headers, room="gone", user="bob", role="presenter")
    alice_id = alice.id
    await alice.close()  # no logout: the server holds her
    event = await bob.next_event("participant", timeout=10)
    while not (event.data.get("action") == "leave" and event.data.get("data") == alice_id):
        event = await bob.next_event("participant", timeout=10)
    await bob.leave()


async def test_room_limit_and_role_errors(make_embedded: MakeEmbedded) -> None:
    server = await make_embedded()
    async with aiohttp.ClientSession() as http:
        resp = await http.post(f"{server.api_url}/v1/rooms", json={"name": "small", "options": {"participantLimit": 1}},
                               headers=server.service_headers)
        assert resp.status == 200, await resp.text()
        room = await resp.json()
        room_id = room["id"]
        assert room["_id"] == room_id and room["participantLimit"] == 1
        bad_role = await http.post(f"{server.api_url}/token", json={"room": room_id, "user": "x", "role": "emperor"},
                                   headers=server.service_headers)
        assert bad_role.status == 400
        assert (await bad_role.json())["error"]["reason"] == "invalid_role"
    first = await Client.join(server.api_url, api_headers=server.service_headers, room=room_id, user="first", role="presenter")
    with pytest.raises(ClientError) as info:
        await Client.join(server.api_url, api_headers=server.service_headers, room=room_id, user="second", role="presenter")
    assert type(info.value) is ClientError and info.value.reason == f"room {room_id} is full (1 participants)"
    await first.leave()


async def test_an_empty_room_is_destroyed_and_its_task_laid_down(make_embedded: MakeEmbedded) -> None:
    server = await make_embedded(controller={"room_grace_period": 0.3})
    alice = await Client.join(server.api_url, api_headers=server.service_headers, room="ephemeral", user="alice", role="presenter")
    controller_id = server.controller.worker_id

    cluster = server.settings.cluster_manager.name

    async def task_state() -> str | None:
        for task in await _admin(server, cluster, "get_tasks", worker_id=controller_id):
            if task["task"] == "ephemeral":
                return str(task["state"])
        return None

    async def room_gone() -> bool:
        rooms = await _admin(server, controller_id, "get_rooms")
        return "ephemeral" not in [r["id"] for r in rooms]

    async def laid_down() -> bool:
        return await task_state() != "executing"

    assert await task_state() == "executing"
    await alice.leave()
    await wait_until(room_gone, timeout=10)
    await wait_until(laid_down, timeout=10)


async def test_a_token_used_and_logged_out_cannot_log_in_again(make_embedded: MakeEmbedded) -> None:
    server = await make_embedded()
    token = await mint_token(server.api_url, "once", "alice", "presenter", headers=server.service_headers)
    alice = await Client.join(token)
    portal_id = server.portal.worker_id
    cluster = server.settings.cluster_manager.name

    async def portal_tasks() -> list[str]:
        return [t["task"] for t in await _admin(server, cluster, "get_tasks", worker_id=portal_id)]

    assert len(await portal_tasks()) == 1  # the token runs on the portal while alice is there
    await alice.leave()
    await wait_until(lambda: _no(portal_tasks), timeout=10)  # forgotten, not lingering as a reservation
    with pytest.raises(ClientError) as info:
        await Client.join(token)
    # Its reservation was dropped when alice left (no claimable leftover): the manager knows it no more.
    assert type(info.value) is ClientError and info.value.reason == "Unknown token"


async def _no(items: Any) -> bool:
    return not await items()
