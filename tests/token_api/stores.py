"""Room stores of both back-ends for the store tests (fixture ``store_factory`` in ``conftest.py``)."""

from __future__ import annotations

from token_api.settings import RoomStoreSettings
from token_api.store import RoomStore
from token_api.store_postgres import PostgresRoomStore
from token_api.store_sqlite import SqliteRoomStore

__all__ = ["StoreFactory"]


class StoreFactory:
    """``await make()``: another store (another process, as far as the database can tell) on the
    test's database, opened.  ``where``: the SQLite file or the PostgreSQL DSN."""

    def __init__(self, kind: str, where: str) -> None:
        self.kind = kind
        self.where = where
        self.made: list[RoomStore] = []

    def new(self, **settings: object) -> RoomStore:
        """A store not opened yet."""
        store: RoomStore
        if self.kind == "sqlite":
            store = SqliteRoomStore(self.where)
        else:
            store = PostgresRoomStore(self.where, RoomStoreSettings(kind="postgres", dsn=self.where, **settings))  # type: ignore[arg-type]
        self.made.append(store)
        return store

    async def make(self, **settings: object) -> RoomStore:
        store = self.new(**settings)
        await store.open()
        return store

    async def close(self) -> None:
        for store in self.made:
            await store.close()
