"""A short-lived memory of room reads for token mints, in front of any :class:`RoomStore`.

Token mints read a room each; :meth:`CachedRoomStore.get` serves them from memory for ``ttl``
seconds.  This process's writes go through it and update the memory at once; another process's
writes are seen within ``ttl``.  Everything else (the controllers' room loads, ``/v1/rooms``)
reads :attr:`CachedRoomStore.store` or :meth:`get_fresh`, which always agree with the database.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .rooms import RoomRecord
from .store import RoomStore

__all__ = ["CachedRoomStore"]


class CachedRoomStore:
    """``store`` with at most ``size`` rooms remembered for ``ttl`` seconds each (0: none)."""

    def __init__(
        self, store: RoomStore, *, ttl: float, size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._cache: dict[str, tuple[float, RoomRecord]] = {}

    def _remember(self, room: RoomRecord) -> None:
        if self._ttl <= 0:
            return
        self._cache.pop(room.id, None)
        if len(self._cache) >= self._size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[room.id] = (self._clock() + self._ttl, room)

    def describe(self) -> str:
        return self.store.describe()

    async def open(self) -> None:
        await self.store.open()

    async def close(self) -> None:
        self._cache.clear()
        await self.store.close()

    async def get(self, room_id: str) -> RoomRecord | None:
        """The room, from memory if read less than ``ttl`` seconds ago."""
        cached = self._cache.get(room_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        return await self.get_fresh(room_id)

    async def get_fresh(self, room_id: str) -> RoomRecord | None:
        """The room as the store has it now."""
        room = await self.store.get(room_id)
        if room is None:
            self._cache.pop(room_id, None)
        else:
            self._remember(room)
        return room

    async def page(self, offset: int = 0, limit: int = 100) -> list[RoomRecord]:
        return await self.store.page(offset, limit)

    async def create(self, room: RoomRecord) -> None:
        await self.store.create(room)
        self._remember(room)

    async def get_or_create(self, room: RoomRecord) -> tuple[RoomRecord, bool]:
        stored, created = await self.store.get_or_create(room)
        self._remember(stored)
        return stored, created

    async def update(self, room_id: str, change: Callable[[RoomRecord], RoomRecord]) -> RoomRecord | None:
        self._cache.pop(room_id, None)
        room = await self.store.update(room_id, change)
        if room is not None:
            self._remember(room)
        return room

    async def delete(self, room_id: str) -> bool:
        self._cache.pop(room_id, None)
        return await self.store.delete(room_id)
