"""The room store: one interface for the rooms' configuration, two back-ends behind it.

- :class:`~token_api.store_sqlite.SqliteRoomStore` (``kind = "sqlite"``, the embedded default): one
  SQLite file, so several token API processes only on one machine.
- :class:`~token_api.store_postgres.PostgresRoomStore` (``kind = "postgres"``): one PostgreSQL
  database shared by any number of token API processes on any machines.

Both apply the numbered migrations of :mod:`token_api.store_migrations` when opened, and both pass
one contract suite (``tests/token_api/test_store_contract.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .rooms import RoomRecord
from .settings import TokenApiSettings

__all__ = ["RoomStore", "RoomExists", "StoreError", "StoreUnavailable", "create_room_store"]


class RoomExists(Exception):
    """A room with that id is already stored."""


class StoreError(Exception):
    """The store cannot be used: its database is unreachable, too new for this code, or broken."""


class StoreUnavailable(StoreError):
    """The database cannot be reached now (down, unreachable, too busy): worth retrying later."""


class RoomStore(Protocol):
    """Rooms by id, listed in creation order.  ``open()`` before use (it applies the migrations),
    ``close()`` after (idempotent).  Every write is atomic and seen at once by every reader of the
    same database, whichever process reads.  Any operation may raise :class:`StoreUnavailable`."""

    def describe(self) -> str:
        """Where the rooms are, for logs: never a password."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def get(self, room_id: str) -> RoomRecord | None: ...

    async def page(self, offset: int = 0, limit: int = 100) -> list[RoomRecord]:
        """Rooms ``offset`` to ``offset + limit`` in creation order."""
        ...

    async def create(self, room: RoomRecord) -> None:
        """Store a new room; :class:`RoomExists` if the id is taken."""
        ...

    async def get_or_create(self, room: RoomRecord) -> tuple[RoomRecord, bool]:
        """The stored room with ``room.id`` (storing ``room`` first if there is none), and whether
        it was stored now."""
        ...

    async def update(self, room_id: str, change: Callable[[RoomRecord], RoomRecord]) -> RoomRecord | None:
        """Replace the room with ``change(room)`` atomically (no concurrent update is lost);
        ``None`` if there is no such room.  Whatever ``change`` raises leaves the room as it was;
        ``change`` may run more than once."""
        ...

    async def delete(self, room_id: str) -> bool:
        """Whether there was such a room (it is gone now)."""
        ...


def create_room_store(settings: TokenApiSettings) -> RoomStore:
    """The store ``settings.store.kind`` names (not opened yet).

    :raises ValueError: ``postgres`` without a ``dsn``.
    """
    store = settings.store
    if store.kind == "postgres":
        if not store.dsn:
            raise ValueError("token_api.store.kind is postgres but token_api.store.dsn is empty")
        from .store_postgres import PostgresRoomStore  # asyncpg is only needed for this kind

        return PostgresRoomStore(store.dsn, store)
    from .store_sqlite import SqliteRoomStore

    return SqliteRoomStore(settings.rooms_db, busy_timeout=store.sqlite_busy_timeout)
