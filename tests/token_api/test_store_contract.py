"""What every room store does, run on SQLite and on a real PostgreSQL alike."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from tests.token_api.stores import StoreFactory
from token_api.rooms import RoomRecord
from token_api.store import RoomExists


def _limit(room: RoomRecord | None) -> int:
    assert room is not None
    return room.participant_limit


def _add_one(room: RoomRecord) -> RoomRecord:
    return msgspec.structs.replace(room, participant_limit=room.participant_limit + 1)


async def test_a_created_room_reads_back_whole_and_an_unknown_one_is_none(store_factory: StoreFactory) -> None:
    store = await store_factory.make()
    room = RoomRecord(id="r1", name="one", participant_limit=3, views=[{"label": "common", "layout": {"x": 1}}])
    await store.create(room)
    assert await store.get("r1") == room
    assert await store.get("nope") is None


async def test_a_taken_id_is_refused_and_the_first_room_stays(store_factory: StoreFactory) -> None:
    store = await store_factory.make()
    await store.create(RoomRecord(id="r1", name="first"))
    with pytest.raises(RoomExists):
        await store.create(RoomRecord(id="r1", name="second"))
    assert (await store.get("r1")) == RoomRecord(id="r1", name="first")


async def test_get_or_create_stores_once_and_then_answers_the_stored_room(store_factory: StoreFactory) -> None:
    store = await store_factory.make()
    assert await store.get_or_create(RoomRecord(id="r1", name="first")) == (RoomRecord(id="r1", name="first"), True)
    assert await store.get_or_create(RoomRecord(id="r1", name="second")) == (RoomRecord(id="r1", name="first"), False)


async def test_concurrent_get_or_create_from_two_processes_stores_exactly_once(store_factory: StoreFactory) -> None:
    one, two = await store_factory.make(), await store_factory.make()
    results = await asyncio.gather(*(s.get_or_create(RoomRecord(id=f"r{i % 5}", name=f"by-{n}-{i}"))
                                     for i in range(20) for n, s in enumerate((one, two))))
    for i in range(5):
        mine = [(room, created) for room, created in results if room.id == f"r{i}"]
        assert sum(created for _, created in mine) == 1
        assert len({room.name for room, _ in mine}) == 1  # everyone got the room that was stored


async def test_pages_list_rooms_in_creation_order(store_factory: StoreFactory) -> None:
    store = await store_factory.make()
    ids = ["m", "a", "z", "b", "q"]
    for room_id in ids:
        await store.create(RoomRecord(id=room_id, name=room_id))
    assert [r.id for r in await store.page()] == ids
    assert [r.id for r in await store.page(1, 2)] == ["a", "z"]
    assert [r.id for r in await store.page(4, 10)] == ["q"]
    assert await store.page(5, 10) == []
    await store.delete("z")
    await store.create(RoomRecord(id="c", name="c"))
    assert [r.id for r in await store.page()] == ["m", "a", "b", "q", "c"]


async def test_update_replaces_the_room_and_unknown_rooms_are_none(store_factory: StoreFactory) -> None:
    store = await store_factory.make()
    await store.create(RoomRecord(id="r1", name="one"))
    updated = await store.update("r1", lambda room: msgspec.structs.replace(room, name="renamed"))
    assert updated == RoomRecord(id="r1", name="renamed")
    assert await store.get("r1") == updated
    assert await store.update("nope", _add_one) is None


async def test_a_change_that_raises_leaves_the_room_as_it_was(store_factory: StoreFactory) -> None:
    store = await store_factory.make()
    await store.create(RoomRecord(id="r1", name="one", participant_limit=4))

    def refuse(room: RoomRecord) -> RoomRecord:
        raise ValueError("no")

    with pytest.raises(ValueError):
        await store.update("r1", refuse)
    assert _limit(await store.get("r1")) == 4


async def test_concurrent_updates_from_two_processes_lose_nothing(store_factory: StoreFactory) -> None:
    # Enough retries for 30 racing updates (PostgreSQL's compare-and-set; SQLite ignores it).
    one, two = await store_factory.make(update_retries=100), await store_factory.make(update_retries=100)
    await one.create(RoomRecord(id="r1", name="one", participant_limit=1))
    await asyncio.gather(*(s.update("r1", _add_one) for _ in range(15) for s in (one, two)))
    assert _limit(await one.get("r1")) == 31
    assert _limit(await two.get("r1")) == 31


async def test_a_write_by_one_process_is_read_at_once_by_another(store_factory: StoreFactory) -> None:
    one, two = await store_factory.make(), await store_factory.make()
    await one.create(RoomRecord(id="r1", name="one"))
    assert _limit(await two.get("r1")) == -1
    await one.update("r1", lambda room: msgspec.structs.replace(room, participant_limit=7))
    assert _limit(await two.get("r1")) == 7
    assert [r.id for r in await two.page()] == ["r1"]
    assert await one.delete("r1") is True
    assert await two.get("r1") is None
    assert await two.delete("r1") is False


async def test_open_and_close_are_idempotent_and_a_closed_store_refuses_work(store_factory: StoreFactory) -> None:
    store = store_factory.new()
    with pytest.raises(RuntimeError):
        await store.get("r1")
    await store.open()
    await store.open()
    await store.create(RoomRecord(id="r1", name="one"))
    await store.close()
    await store.close()
    with pytest.raises(RuntimeError):
        await store.get("r1")
    await store.open()  # reopened: the room is still there
    assert await store.get("r1") == RoomRecord(id="r1", name="one")


async def test_describe_names_the_database_and_never_a_password(store_factory: StoreFactory) -> None:
    store = store_factory.new()
    where = store.describe()
    if store_factory.kind == "sqlite":
        assert where == f"sqlite:{store_factory.where}"
    else:
        password = store_factory.where.split(":")[2].split("@")[0]
        assert where.startswith("postgres://127.0.0.1:") and where.endswith(store_factory.where.rsplit("/", 1)[1])
        assert password not in where and "switchboard" not in where
