"""The room store's numbered migrations, on SQLite and on a real PostgreSQL: a new database gets
them all, an older one the missing ones (its rooms kept), a newer one is refused, concurrent
openers migrate once."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import asyncpg
import msgspec
import pytest

from tests.token_api.stores import StoreFactory
from token_api.rooms import RoomRecord
from token_api.store import StoreError
from token_api.store_migrations import LATEST, MIGRATIONS
from token_api.store_postgres import migrate_postgres, postgres_version
from token_api.store_sqlite import migrate_sqlite, sqlite_version

_ROOM = RoomRecord(id="old", name="from before", participant_limit=2)


async def _migrate_to(factory: StoreFactory, target: int) -> int:
    """Bring the test's database to schema version ``target`` as an older switchboard would."""
    if factory.kind == "sqlite":
        db = sqlite3.connect(factory.where, isolation_level=None)
        try:
            return migrate_sqlite(db, target)
        finally:
            db.close()
    conn = await asyncpg.connect(factory.where)
    try:
        return await migrate_postgres(conn, target)
    finally:
        await conn.close()


async def _sql(factory: StoreFactory, statement: str, *args: object) -> list[tuple[object, ...]]:
    """Run one statement (``?`` placeholders) on the test's database; the rows it returned."""
    if factory.kind == "sqlite":
        db = sqlite3.connect(factory.where, isolation_level=None)
        try:
            return [tuple(row) for row in db.execute(statement, args).fetchall()]
        finally:
            db.close()
    for n in range(len(args)):
        statement = statement.replace("?", f"${n + 1}", 1)
    conn = await asyncpg.connect(factory.where)
    try:
        return [tuple(row) for row in await conn.fetch(statement, *args)]
    finally:
        await conn.close()


async def _version(factory: StoreFactory) -> int:
    if factory.kind == "sqlite":
        db = sqlite3.connect(factory.where)
        try:
            return sqlite_version(db)
        finally:
            db.close()
    conn = await asyncpg.connect(factory.where)
    try:
        return await postgres_version(conn)
    finally:
        await conn.close()


async def test_a_new_database_gets_every_migration_recorded_once(store_factory: StoreFactory) -> None:
    assert await _version(store_factory) == 0
    await store_factory.make()
    rows = await _sql(store_factory, "SELECT version, description FROM schema_version ORDER BY version")
    assert rows == [(m.version, m.description) for m in MIGRATIONS]
    assert await _version(store_factory) == LATEST


async def test_a_database_one_version_behind_is_migrated_and_keeps_its_rooms(store_factory: StoreFactory) -> None:
    assert await _migrate_to(store_factory, LATEST - 1) == LATEST - 1
    # A room as the previous version wrote it (the columns it had).
    config = msgspec.json.encode(_ROOM).decode() if store_factory.kind == "postgres" else msgspec.json.encode(_ROOM)
    cast = "::jsonb" if store_factory.kind == "postgres" else ""
    await _sql(store_factory, f"INSERT INTO rooms (id, config, created_at, updated_at) VALUES (?, ?{cast}, ?, ?)",
               "old", config, time.time(), time.time())

    store = await store_factory.make()
    assert await _version(store_factory) == LATEST
    assert await store.get("old") == _ROOM
    await store.update("old", lambda room: msgspec.structs.replace(room, participant_limit=3))
    assert await _sql(store_factory, "SELECT revision FROM rooms WHERE id = ?", "old") == [(2,)]
    assert [r.id for r in await store.page()] == ["old"]


async def test_opening_again_or_concurrently_migrates_once(store_factory: StoreFactory) -> None:
    first = store_factory.new()
    others = [store_factory.new() for _ in range(3)]
    await asyncio.gather(first.open(), *(s.open() for s in others))
    await first.create(RoomRecord(id="r1", name="one"))
    await first.close()
    await first.open()
    assert await first.get("r1") == RoomRecord(id="r1", name="one")
    versions = await _sql(store_factory, "SELECT version FROM schema_version ORDER BY version")
    assert versions == [(m.version,) for m in MIGRATIONS]


async def test_a_database_newer_than_this_code_is_refused_and_left_alone(store_factory: StoreFactory) -> None:
    await _migrate_to(store_factory, LATEST)
    await _sql(store_factory, "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
               LATEST + 1, "from the future", time.time())
    store = store_factory.new()
    with pytest.raises(StoreError, match=f"version {LATEST + 1}, newer than this code's {LATEST}"):
        await store.open()
    assert await _version(store_factory) == LATEST + 1
    with pytest.raises(RuntimeError):
        await store.get("r1")  # not open
