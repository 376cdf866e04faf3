"""Room management over HTTP, persistence across a restart, and ``rooms.get_room`` over RPC."""

from __future__ import annotations

from typing import Any

import pytest

from rpc import RpcRemoteError
from token_api import rooms_service_name

from .conftest import Stack

PRESENTER = {"role": "presenter", "publish": {"audio": True, "video": True}, "subscribe": {"audio": True, "video": True}}
LISTENER = {"role": "listener", "publish": {"audio": False, "video": False}, "subscribe": {"audio": True, "video": False}}


async def _json(stack: Stack, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    response = await stack.session.request(method, stack.url(path), json=body)
    if response.content_type == "application/json":
        return response.status, await response.json()
    return response.status, await response.text()


async def test_create_read_update_list_delete(stack: Stack) -> None:
    await stack.start_api()

    status, room = await _json(stack, "POST", "/v1/rooms", {"name": "Weekly", "options": {"participantLimit": 10}})
    assert status == 200
    room_id = room["id"]
    assert room["_id"] == room_id and room["name"] == "Weekly" and room["participantLimit"] == 10
    assert len(room["roles"]) == 5 and room["views"] == [{"label": "common"}]

    status, fetched = await _json(stack, "GET", f"/v1/rooms/{room_id}")
    assert status == 200 and fetched == room

    status, updated = await _json(stack, "PUT", f"/v1/rooms/{room_id}", {"roles": [PRESENTER, LISTENER]})
    assert status == 200
    assert [r["role"] for r in updated["roles"]] == ["presenter", "listener"]
    assert updated["participantLimit"] == 10 and updated["name"] == "Weekly"
    assert (await _json(stack, "PUT", f"/v1/rooms/{room_id}", {"name": ""}))[0] == 400
    assert (await _json(stack, "PUT", "/v1/rooms/missing", {"name": "x"}))[0] == 404

    await _json(stack, "POST", "/v1/rooms", {"name": "Second", "id": "second"})
    status, listing = await _json(stack, "GET", "/v1/rooms")
    assert [r["id"] for r in listing] == [room_id, "second"]
    status, page = await _json(stack, "GET", "/v1/rooms?page=2&per_page=1")
    assert [r["id"] for r in page] == ["second"]

    assert await _json(stack, "DELETE", f"/v1/rooms/{room_id}") == (200, "Room deleted")
    status, body = await _json(stack, "GET", f"/v1/rooms/{room_id}")
    assert status == 404 and body["error"]["code"] == 1003
    assert (await _json(stack, "DELETE", f"/v1/rooms/{room_id}"))[0] == 404


async def test_a_room_id_that_exists_is_a_conflict(stack: Stack) -> None:
    await stack.start_api()
    assert (await _json(stack, "POST", "/v1/rooms", {"name": "a", "id": "same"}))[0] == 200
    status, body = await _json(stack, "POST", "/v1/rooms", {"name": "b", "id": "same"})
    assert status == 409 and body["error"]["reason"] == "room_exists"
    assert (await _json(stack, "GET", "/v1/rooms/same"))[1]["name"] == "a"


@pytest.mark.parametrize(
    "change",
    [
        {"participantLimit": 0},
        {"participantLimit": -2},
        {"participantLimit": "ten"},
        {"roles": []},
        {"roles": [PRESENTER, PRESENTER]},
        {"roles": [{"role": "", "publish": {"audio": True}}]},
        {"roles": [{"role": "x", "publish": {"audio": "yes"}}]},
        {"views": [{"nolabel": 1}]},
        {"views": [{"label": "a"}, {"label": "a"}]},
    ],
)
async def test_invalid_updates_are_400_and_change_nothing(stack: Stack, change: dict[str, Any]) -> None:
    await stack.start_api()
    _, room = await _json(stack, "POST", "/v1/rooms", {"name": "keep", "id": "keep"})
    status, body = await _json(stack, "PUT", "/v1/rooms/keep", change)
    assert status == 400, body
    assert body["error"]["code"] == 1201
    assert (await _json(stack, "GET", "/v1/rooms/keep"))[1] == room
    status, _ = await _json(stack, "POST", "/v1/rooms", {"name": "new", "id": "other", "options": change})
    assert status == 400
    assert (await _json(stack, "GET", "/v1/rooms/other"))[0] == 404


@pytest.mark.parametrize(
    "body", [{"name": ""}, {"options": {}}, {"name": "x", "id": "a/b"}, {"name": "x", "id": ""}, [1], "text"]
)
async def test_invalid_creations_are_400_and_store_nothing(stack: Stack, body: Any) -> None:
    await stack.start_api()
    status, error = await _json(stack, "POST", "/v1/rooms", body)
    assert status == 400 and error["error"]["code"] == 1201
    assert (await _json(stack, "GET", "/v1/rooms"))[1] == []


async def test_rooms_survive_a_restart_of_the_token_api(stack: Stack) -> None:
    first = await stack.start_api()
    await _json(stack, "POST", "/v1/rooms", {"name": "Lasting", "id": "lasting", "options": {"participantLimit": 3}})
    await _json(stack, "PUT", "/v1/rooms/lasting", {"roles": [LISTENER]})
    await _json(stack, "POST", "/v1/rooms", {"name": "Gone", "id": "gone"})
    await _json(stack, "DELETE", "/v1/rooms/gone")
    await first.stop()
    await first.stop()

    await stack.start_api()
    status, room = await _json(stack, "GET", "/v1/rooms/lasting")
    assert status == 200
    assert room["participantLimit"] == 3 and [r["role"] for r in room["roles"]] == ["listener"]
    assert [r["id"] for r in (await _json(stack, "GET", "/v1/rooms"))[1]] == ["lasting"]


async def test_a_token_for_a_role_of_a_custom_room_and_not_for_a_default_one(stack: Stack) -> None:
    await stack.start_manager()
    await stack.add_portal("portal-a")
    await stack.start_api()
    await _json(stack, "POST", "/v1/rooms", {"name": "c", "id": "custom", "options": {"roles": [LISTENER]}})

    assert (await stack.post_token({"room": "custom", "user": "u", "role": "listener"})).status == 200
    assert (await stack.post_token({"room": "custom", "user": "u", "role": "presenter"})).status == 400


async def test_get_room_over_rpc(any_stack: Stack) -> None:
    await any_stack.start_api()
    await _json(any_stack, "POST", "/v1/rooms", {"name": "Rpc", "id": "rpc-room", "options": {"participantLimit": 4}})
    client = any_stack.client
    assert client is not None

    room = await client.call(rooms_service_name(any_stack.cluster_name), "get_room", {"room": "rpc-room"})
    assert set(room) == {"id", "name", "participantLimit", "roles", "views"}
    assert room["id"] == "rpc-room" and room["participantLimit"] == 4
    assert room["roles"][0] == PRESENTER

    with pytest.raises(RpcRemoteError) as err:
        await client.call(rooms_service_name(any_stack.cluster_name), "get_room", {"room": "missing"})
    assert err.value.code == "unknown_room"
    with pytest.raises(RpcRemoteError) as err:
        await client.call(rooms_service_name(any_stack.cluster_name), "get_room", {"room": ""})
    assert err.value.code == "bad_arguments"
