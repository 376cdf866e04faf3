"""The controllers' room loads (``rooms.get_room``) always answer what the store holds now, even
while this token API's mints still use a room they read a moment ago."""

from __future__ import annotations

import msgspec
import pytest

from token_api.app_keys import STORE
from token_api.rooms import RoomRecord
from token_api.service import rooms_service_name
from token_api.settings import RoomStoreSettings
from token_api.store import RoomStore
from token_api.store_postgres import PostgresRoomStore
from token_api.store_sqlite import SqliteRoomStore

from .conftest import Stack


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_a_room_changed_by_another_process_is_loaded_as_changed(
    stack: Stack, kind: str, request: pytest.FixtureRequest
) -> None:
    elsewhere: RoomStore
    if kind == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        api = await stack.start_api(rooms_cache_ttl=3600.0, store=RoomStoreSettings(kind="postgres", dsn=dsn))
        elsewhere = PostgresRoomStore(dsn, RoomStoreSettings(kind="postgres", dsn=dsn))
    else:
        api = await stack.start_api(rooms_cache_ttl=3600.0)
        elsewhere = SqliteRoomStore(api.settings.rooms_db)
    response = await stack.session.post(stack.url("/v1/rooms"),
                                        json={"name": "r", "id": "r1", "options": {"participantLimit": 2}})
    assert response.status == 200
    await elsewhere.open()
    try:
        await elsewhere.update("r1", lambda room: msgspec.structs.replace(room, participant_limit=9))
    finally:
        await elsewhere.close()

    mints_see = await api.app[STORE].get("r1")
    assert isinstance(mints_see, RoomRecord) and mints_see.participant_limit == 2  # the mints' memory, for an hour
    assert stack.client is not None
    loaded = await stack.client.call(rooms_service_name(stack.cluster_name), "get_room", {"room": "r1"})
    assert loaded["participantLimit"] == 9
    response = await stack.session.get(stack.url("/v1/rooms/r1"))
    assert (await response.json())["participantLimit"] == 9
