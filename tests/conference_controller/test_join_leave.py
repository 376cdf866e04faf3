"""Join, leave, room limits and roles, notifications to the others, room lifetime."""

from __future__ import annotations

from typing import Any

import pytest

from conference_controller.errors import RoomClosed
from rpc import RpcRemoteError
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

from .conftest import Env


async def test_join_gives_permission_and_room_info_including_the_joiner(transports: TransportFactory,
                                                                          make_env: Any) -> None:
    env: Env = await make_env(transports)
    result = await env.join("p1", "presenter")
    assert result["permission"] == {"publish": {"audio": True, "video": True},
                                    "subscribe": {"audio": True, "video": True}}
    assert result["room"]["id"] == "room-1"
    assert result["room"]["views"] == ["common"]
    assert result["room"]["participants"] == [{"id": "p1", "user": "user-p1", "role": "presenter"}]
    assert result["room"]["streams"] == []
    assert env.rooms.calls == ["room-1"]
    await wait_until(lambda: env.cluster.picked == ["room-1"])


async def test_others_hear_of_joins_and_leaves(transports: TransportFactory, make_env: Any) -> None:
    env: Env = await make_env(transports)
    await env.join("p1")
    second = await env.join("p2", "viewer", portal=env.portal_b)
    assert [p["id"] for p in second["room"]["participants"]] == ["p1", "p2"]
    await wait_until(lambda: env.portal_a.data("p1", "participant"))
    assert env.portal_a.data("p1", "participant") == [
        {"action": "join", "data": {"id": "p2", "user": "user-p2", "role": "viewer"}}]
    assert env.portal_b.events("p2") == []

    assert await env.call("leave", participant="p2") == "ok"
    await wait_until(lambda: len(env.portal_a.data("p1", "participant")) == 2)
    assert env.portal_a.data("p1", "participant")[1] == {"action": "leave", "data": "p2"}
    assert [seq for seq, _, _ in env.portal_a.events("p1")] == [1, 2]
    with pytest.raises(RpcRemoteError) as info:
        await env.call("leave", participant="p2")
    assert info.value.code == "unknown_participant"


async def test_room_full_does_not_count_an_admin_and_invalid_role_is_refused(env: Env) -> None:
    for pid in ("p1", "p2", "p3"):
        await env.join(pid)
    with pytest.raises(RpcRemoteError) as info:
        await env.join("p4")
    assert info.value.code == "room_full"
    with pytest.raises(RpcRemoteError) as info:
        await env.join("p5", "superhero", room="room-2")
    assert info.value.code == "invalid_role"


async def test_unknown_room_is_room_config_unavailable(env: Env) -> None:
    with pytest.raises(RpcRemoteError) as info:
        await env.join("p1", room="nowhere")
    assert info.value.code == "room_config_unavailable"
    assert "nowhere" in info.value.message


async def test_a_room_configuration_of_the_wrong_shape_is_refused_and_names_the_field(env: Env) -> None:
    env.rooms.configs["odd"] = {"id": "odd", "participantLimit": "many"}
    with pytest.raises(RpcRemoteError) as info:
        await env.join("p1", room="odd")
    assert info.value.code == "room_config_unavailable"
    assert "configuration of room odd is invalid" in info.value.message
    assert "participantLimit" in info.value.message
    assert "odd" not in env.controller.rooms


async def test_a_second_join_of_the_same_participant_elsewhere_is_refused_but_a_retry_is_answered(env: Env) -> None:
    first = await env.join("p1")
    again = await env.call("join", room="room-1", participant={
        "id": "p1", "user": "user-p1", "role": "presenter", "portal": env.portal_a.name}, ticket_id=env.tickets["p1"])
    assert again == first
    with pytest.raises(RpcRemoteError) as info:
        await env.join("p1", room="room-2")
    assert info.value.code == "already_joined"


async def test_bad_arguments_are_refused(env: Env) -> None:
    with pytest.raises(RpcRemoteError) as info:
        await env.call("join", room="room-1", participant={"id": "p1"}, ticket_id="t")
    assert info.value.code == "bad_arguments"


async def test_an_empty_room_is_destroyed_after_the_grace_period_and_its_task_laid_down(env: Env) -> None:
    await env.join("p1")
    await env.call("leave", participant="p1")
    assert [room["id"] for room in await env.call("get_rooms")] == ["room-1"]
    await wait_until(lambda: env.cluster.laid_down == ["room-1"], timeout=3)
    assert await env.call("get_rooms") == []
    await env.join("p2")
    assert env.rooms.calls == ["room-1", "room-1"]
    await wait_until(lambda: env.cluster.picked == ["room-1", "room-1"])


async def test_a_join_within_the_grace_period_keeps_the_room(env: Env) -> None:
    await env.join("p1")
    await env.call("leave", participant="p1")
    await env.join("p2")
    await wait_until(lambda: env.controller.room("room-1").grace_timer is None)
    assert env.cluster.laid_down == []
    assert env.rooms.calls == ["room-1"]


async def test_concurrent_first_joins_load_the_room_once(env: Env) -> None:
    import asyncio

    results = await asyncio.gather(*(env.join(f"p{i}", room="room-2") for i in range(5)))
    assert env.rooms.calls == ["room-2"]
    assert [len(r["room"]["participants"]) for r in results] == [1, 2, 3, 4, 5]


async def test_stop_is_idempotent_and_quits_the_cluster(env: Env) -> None:
    await env.join("p1")
    await env.controller.stop()
    await env.controller.stop()
    await wait_until(lambda: env.controller.worker_id in env.cluster.quits)


async def test_a_room_in_use_is_not_closed_by_its_grace_period(env: Env) -> None:
    await env.join("p1")
    await env.call("leave", participant="p1")
    room = env.controller.room("room-1")
    timer = room.grace_timer
    assert timer is not None  # armed by the leave
    room.use()  # a room in use cannot be closed by its grace period: its use cancels the timer
    assert room.grace_timer is None and timer.cancelled()
    assert not room.closed and env.cluster.laid_down == []
    room.release()
    env.controller.settle(room)
    await wait_until(lambda: room.closed and env.cluster.laid_down == ["room-1"], timeout=3)
    with pytest.raises(RoomClosed):
        room.use()


async def test_an_unreachable_rooms_service_is_room_config_unavailable(env: Env) -> None:
    env.controller.rooms_service = "no-such-service"
    with pytest.raises(RpcRemoteError) as info:
        await env.join("p1")
    assert info.value.code == "room_config_unavailable"
    assert env.controller.rooms == {}
