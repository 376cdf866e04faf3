"""The rooms service's contract: its typed client has the served method's shape and reaches it."""

from __future__ import annotations

import pytest

from contracts.rooms import UNKNOWN_ROOM, RoomsClient, rooms_service_name
from rpc import RpcRemoteError
from tests.support.contract_check import client_mismatches
from token_api.service import RoomsService

from .conftest import Stack


def test_every_rooms_method_has_a_client_method_of_the_same_shape() -> None:
    assert client_mismatches(RoomsService, RoomsClient) == []


async def test_the_rooms_client_reads_a_room(any_stack: Stack) -> None:
    await any_stack.start_api()
    response = await any_stack.session.post(any_stack.url("/v1/rooms"), json={"name": "Typed", "id": "typed-room"})
    assert response.status == 200
    assert any_stack.client is not None
    rooms = RoomsClient(any_stack.client, rooms_service_name(any_stack.cluster_name))

    room = await rooms.get_room(room="typed-room")
    assert (room.id, room.name, room.participant_limit) == ("typed-room", "Typed", -1)
    assert [role.role for role in room.roles] == [role["role"] for role in (await (await any_stack.session.get(
        any_stack.url("/v1/rooms/typed-room"))).json())["roles"]]
    with pytest.raises(RpcRemoteError) as err:
        await rooms.get_room(room="missing")
    assert err.value.code == UNKNOWN_ROOM
