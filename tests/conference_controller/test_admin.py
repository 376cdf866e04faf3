"""Admin calls: rooms, participants, permission patches, drops."""

from __future__ import annotations

from typing import Any

import pytest

from rpc import RpcRemoteError
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

from .conftest import Env


async def test_get_rooms_and_participants(env: Env) -> None:
    await env.join("p1")
    await env.join("p2", "viewer", portal=env.portal_b)
    rooms = await env.call("get_rooms")
    assert [(r["id"], r["participants"], r["streams"]) for r in rooms] == [("room-1", 2, 0)]
    participants = await env.call("get_participants", room="room-1")
    assert [(p["id"], p["role"], p["portal"], p["state"]) for p in participants] == [
        ("p1", "presenter", env.portal_a.name, "connected"), ("p2", "viewer", env.portal_b.name, "connected")]
    assert participants[1]["permission"] == {"publish": {"audio": False, "video": False},
                                             "subscribe": {"audio": True, "video": True}}
    with pytest.raises(RpcRemoteError) as info:
        await env.call("get_participants", room="nowhere")
    assert info.value.code == "unknown_room"


async def test_control_participant_changes_what_it_may_publish(env: Env) -> None:
    await env.start_agent()
    await env.join("p2", "viewer")
    updated = await env.call("control_participant", room="room-1", participant="p2", patch=[
        {"op": "replace", "path": "/permission/publish", "value": {"audio": True, "video": False}}])
    assert updated["permission"]["publish"] == {"audio": True, "video": False}
    audio = {"media": {"tracks": [{"type": "audio", "source": "mic"}]}}
    assert (await env.call("publish", participant="p2", stream_id="s", transport_id="t", info=audio))["id"] == "s"
    for patch, code in (([{"op": "remove", "path": "/permission/publish"}], "invalid_json_op"),
                        ([{"op": "replace", "path": "/role", "value": "x"}], "invalid_json_path"),
                        ([{"op": "replace", "path": "/permission/subscribe/video", "value": 1}], "invalid_json_value")):
        with pytest.raises(RpcRemoteError) as info:
            await env.call("control_participant", room="room-1", participant="p2", patch=patch)
        assert info.value.code == code
    with pytest.raises(RpcRemoteError) as info:
        await env.call("control_participant", room="room-1", participant="ghost", patch=[])
    assert info.value.code == "unknown_participant"


async def test_drop_participant_calls_the_portal_and_tells_the_others(transports: TransportFactory,
                                                                        make_env: Any) -> None:
    env: Env = await make_env(transports)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    dropped = await env.call("drop_participant", room="room-1", participant="p2")
    assert dropped == {"id": "p2", "user": "user-p2", "role": "presenter"}
    assert env.portal_b.drops == ["p2"]
    await wait_until(lambda: {"action": "leave", "data": "p2"} in env.portal_a.data("p1", "participant"))
    assert [p["id"] for p in await env.call("get_participants", room="room-1")] == ["p1"]


async def test_the_admin_view_of_a_participant_is_exactly_its_session(env: Env) -> None:
    await env.join("p1")
    await env.join("p2", "viewer")
    await env.call("text", participant="p2", to="all", message="hi")
    await wait_until(lambda: env.portal_a.events("p1", "text"), what="the text at p1's portal")
    await env.ack("p1", 1)
    await wait_until(lambda: env.controller.participant("p1").outbox.acked == 1, what="p1's ack")
    participants = {p["id"]: p for p in await env.call("get_participants", room="room-1")}
    assert participants["p1"] == {
        "id": "p1", "user": "user-p1", "role": "presenter",
        "permission": {"publish": {"audio": True, "video": True}, "subscribe": {"audio": True, "video": True}},
        "portal": env.portal_a.name, "state": "connected", "extension": True,
        "lastSeq": 2, "acked": 1, "outbox": 1,
    }
