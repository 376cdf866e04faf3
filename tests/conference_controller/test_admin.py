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


async def test_streams_are_listed_and_one_is_removed_whoever_owns_it(transports: TransportFactory,
                                                                     make_env: Any) -> None:
    env: Env = await make_env(transports)
    agent = await env.start_agent()
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    av = {"media": {"tracks": [{"type": "video", "mid": "0", "source": "camera"}]}, "transport": {"type": "webrtc"}}
    await env.call("publish", participant="p1", stream_id="s1", transport_id="t1", info=av)
    assert await env.call("get_streams", room="room-1") == []  # not ready yet: nobody sees it
    await env.call("session_signaling", participant="p1", transport_id="t1", signaling={"type": "offer"})
    await wait_until(lambda: env.portal_b.data("p2", "stream"), what="the stream announced")
    [stream] = await env.call("get_streams", room="room-1")
    assert stream == env.portal_b.data("p2", "stream")[0]["data"]
    with pytest.raises(RpcRemoteError) as info:
        await env.call("remove_stream", room="room-1", stream="nope")
    assert info.value.code == "unknown_stream"
    assert await env.call("remove_stream", room="room-1", stream="s1") == stream
    await wait_until(lambda: {"id": "s1", "status": "remove"} in env.portal_b.data("p2", "stream"))
    await wait_until(lambda: "s1" in agent.ended, what="the agent told")
    assert await env.call("get_streams", room="room-1") == []
    with pytest.raises(RpcRemoteError) as info:
        await env.call("remove_stream", room="room-1", stream="s1")
    assert info.value.code == "unknown_stream"


async def test_a_server_text_reaches_everyone_or_one_participant_in_order(env: Env) -> None:
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    assert await env.call("send_text", room="room-1", to="all", message="hello all") == {"to": "all",
                                                                                         "delivered_to": 2}
    assert await env.call("send_text", room="room-1", to="p2", message="psst") == {"to": "p2", "delivered_to": 1}
    await wait_until(lambda: len(env.portal_b.data("p2", "text")) == 2, what="p2's texts")
    assert env.portal_b.data("p2", "text") == [{"from": "server", "to": "all", "message": "hello all"},
                                               {"from": "server", "to": "me", "message": "psst"}]
    await wait_until(lambda: env.portal_a.data("p1", "text"), what="p1's text")
    assert env.portal_a.data("p1", "text") == [{"from": "server", "to": "all", "message": "hello all"}]
    for to, code in (("ghost", "unknown_target"),):
        with pytest.raises(RpcRemoteError) as info:
            await env.call("send_text", room="room-1", to=to, message="x")
        assert info.value.code == code
    with pytest.raises(RpcRemoteError) as info:
        await env.call("send_text", room="nowhere", to="all", message="x")
    assert info.value.code == "unknown_room"


@pytest.mark.parametrize("method,args", [("get_streams", {"room": "room-1"}),
                                         ("remove_stream", {"room": "room-1", "stream": "s1"}),
                                         ("send_text", {"room": "room-1", "to": "all", "message": "x"})])
async def test_the_new_admin_calls_need_the_admin_key(env: Env, method: str, args: dict[str, Any]) -> None:
    await env.join("p1")
    with pytest.raises(RpcRemoteError) as info:
        await env.call(method, admin_key="wrong", **args)
    assert info.value.code == "unauthorized"
    assert env.portal_a.data("p1", "text") == []
