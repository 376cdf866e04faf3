"""Room stores of both back-ends for the store tests: opened on one database per test, closed after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from token_api.settings import RoomStoreSettings
from token_api.store import RoomStore
from token_api.store_postgres import PostgresRoomStore
from token_api.store_sqlite import SqliteRoomStore

__all__ = ["StoreFactory", "store_factory"]


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


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    if request.param == "sqlite":
        where = str(tmp_path / "rooms.sqlite3")
    else:
        where = request.getfixturevalue("postgres_dsn")
    factory = StoreFactory(request.param, where)
    yield factory
    await factory.close()
