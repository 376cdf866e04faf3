"""The mints' memory of rooms: this process's writes at once, another process's within the TTL."""

from __future__ import annotations

from pathlib import Path

import msgspec

from tests.support.fake_clock import FakeClock
from token_api.rooms import RoomRecord
from token_api.store_cache import CachedRoomStore
from token_api.store_sqlite import SqliteRoomStore


async def test_writes_here_are_seen_at_once_and_writes_elsewhere_within_the_ttl(tmp_path: Path) -> None:
    path = tmp_path / "rooms.sqlite3"
    clock = FakeClock()
    here = CachedRoomStore(SqliteRoomStore(path), ttl=0.5, clock=clock)
    elsewhere = CachedRoomStore(SqliteRoomStore(path), ttl=0.5, clock=clock)
    await here.open()
    await elsewhere.open()
    try:
        await here.create(RoomRecord(id="r1", name="one"))
        assert (await here.get("r1")).participant_limit == -1  # type: ignore[union-attr]
        await here.update("r1", lambda room: msgspec.structs.replace(room, participant_limit=5))
        assert (await here.get("r1")).participant_limit == 5  # type: ignore[union-attr]

        assert (await here.get("r1")) is not None  # cached now
        await elsewhere.update("r1", lambda room: msgspec.structs.replace(room, participant_limit=9))
        clock.advance(0.25)
        assert (await here.get("r1")).participant_limit == 5  # type: ignore[union-attr]  # still the cached room
        assert (await here.store.get("r1")).participant_limit == 9  # type: ignore[union-attr]  # the store agrees
        assert (await here.get_fresh("r1")).participant_limit == 9  # type: ignore[union-attr]
        await elsewhere.update("r1", lambda room: msgspec.structs.replace(room, participant_limit=11))
        clock.advance(0.25)
        assert (await here.get("r1")).participant_limit == 9  # type: ignore[union-attr]  # get_fresh re-armed it
        clock.advance(0.25)
        assert (await here.get("r1")).participant_limit == 11  # type: ignore[union-attr]  # read again at the TTL

        await here.delete("r1")
        assert await here.get("r1") is None
    finally:
        await here.close()
        await elsewhere.close()
