"""The PostgreSQL room store: one database shared by any number of token API processes.

It uses asyncpg with one bounded connection pool per process.  Every read goes to the database, so
all processes agree.  An update reads the room and its ``revision``, applies the change in Python
and writes it only if the revision is still the one read (compare-and-set, retried at most
``update_retries`` times), so no lock is held across processes while the change runs.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import asyncpg
import msgspec
from asyncpg.pool import PoolConnectionProxy

from .rooms import RoomRecord
from .settings import RoomStoreSettings
from .store import RoomExists, StoreError, StoreUnavailable
from .store_migrations import LATEST, pending

__all__ = ["PostgresRoomStore", "migrate_postgres", "postgres_version"]

#: The advisory lock that serialises migrations of one database (any fixed 64-bit number).
_MIGRATION_LOCK = 0x5377_6974_6368_0001

_SCHEMA_VERSION = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
    " applied_at DOUBLE PRECISION NOT NULL)"
)

#: What a lost or unreachable server raises (a shutdown in progress included).
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)

#: A connection of its own or one lent by the pool.
_Connection = asyncpg.Connection | PoolConnectionProxy

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(RoomRecord).decode


def _json(room: RoomRecord) -> str:
    return _encode(room).decode()


async def postgres_version(conn: _Connection) -> int:
    """The schema version of the database (0: never migrated)."""
    if await conn.fetchval("SELECT to_regclass('schema_version')") is None:
        return 0
    return int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))


async def migrate_postgres(conn: _Connection, target: int = LATEST) -> int:
    """Apply the missing migrations up to ``target`` in one transaction under the migration lock;
    the version reached."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(_SCHEMA_VERSION)
        for migration in pending(await postgres_version(conn), target):
            for statement in migration.postgres:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES ($1, $2, $3)",
                migration.version, migration.description, time.time(),
            )
        return await postgres_version(conn)


def _where(dsn: str) -> str:
    """``postgres://host:port/database`` of ``dsn``, without user or password."""
    parts = urlsplit(dsn)
    # The network location without what precedes "@" (user and password); several hosts stay listed.
    hosts = parts.netloc.rpartition("@")[2] or "?"
    return f"postgres://{hosts}{parts.path}"


class PostgresRoomStore:
    """Rooms in the PostgreSQL database ``dsn``; pool and timeouts from ``settings``."""

    def __init__(self, dsn: str, settings: RoomStoreSettings) -> None:
        if settings.pool_min_size > settings.pool_max_size:
            raise ValueError(
                f"token_api.store.pool_min_size ({settings.pool_min_size}) exceeds pool_max_size "
                f"({settings.pool_max_size})"
            )
        self._dsn = dsn
        self._settings = settings
        self._pool: asyncpg.Pool | None = None

    def describe(self) -> str:
        return _where(self._dsn)

    async def open(self) -> None:
        if self._pool is not None:
            return
        s = self._settings
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                min_size=s.pool_min_size,
                max_size=s.pool_max_size,
                max_inactive_connection_lifetime=s.pool_idle_lifetime,
                timeout=s.connect_timeout,
                command_timeout=s.query_timeout,
            )
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(f"cannot open the room store {self.describe()}: {type(exc).__name__}: {exc}") from None
        try:
            async with pool.acquire(timeout=s.acquire_timeout) as conn:
                await migrate_postgres(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[_Connection]:
        pool = self._pool
        if pool is None:
            raise RuntimeError("the room store is not open")
        try:
            async with pool.acquire(timeout=self._settings.acquire_timeout) as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"the room store {self.describe()} is unavailable: {type(exc).__name__}") from None

    # -- reads -----------------------------------------------------------------------------------

    async def get(self, room_id: str) -> RoomRecord | None:
        async with self._conn() as conn:
            config = await conn.fetchval("SELECT config FROM rooms WHERE id = $1", room_id)
        return None if config is None else _decode(config)

    async def page(self, offset: int = 0, limit: int = 100) -> list[RoomRecord]:
        async with self._conn() as conn:
            rows = await conn.fetch("SELECT config FROM rooms ORDER BY seq LIMIT $1 OFFSET $2", limit, offset)
        return [_decode(row[0]) for row in rows]

    # -- writes ----------------------------------------------------------------------------------

    async def create(self, room: RoomRecord) -> None:
        now = time.time()
        async with self._conn() as conn:
            try:
                await conn.execute(
                    "INSERT INTO rooms (id, config, created_at, updated_at) VALUES ($1, $2::jsonb, $3, $3)",
                    room.id, _json(room), now,
                )
            except asyncpg.UniqueViolationError:
                raise RoomExists(room.id) from None

    async def get_or_create(self, room: RoomRecord) -> tuple[RoomRecord, bool]:
        async with self._conn() as conn:
            for _ in range(self._settings.update_retries):
                # One statement: the insert, or (on conflict) the room another process stored first.
                row = await conn.fetchrow(
                    "WITH added AS (INSERT INTO rooms (id, config, created_at, updated_at)"
                    " VALUES ($1, $2::jsonb, $3, $3) ON CONFLICT (id) DO NOTHING RETURNING config)"
                    " SELECT config, true FROM added UNION ALL SELECT config, false FROM rooms WHERE id = $1"
                    " AND NOT EXISTS (SELECT 1 FROM added)",
                    room.id, _json(room), time.time(),
                )
                # None: the conflicting room was committed after this statement's snapshot (or
                # deleted since); the next attempt sees it.
                if row is not None:
                    return _decode(row[0]), bool(row[1])
        raise StoreError(f"room {room.id!r} neither stored nor readable after {self._settings.update_retries} tries")

    async def update(self, room_id: str, change: Callable[[RoomRecord], RoomRecord]) -> RoomRecord | None:
        async with self._conn() as conn:
            for _ in range(self._settings.update_retries):
                row = await conn.fetchrow("SELECT config, revision FROM rooms WHERE id = $1", room_id)
                if row is None:
                    return None
                room = change(_decode(row[0]))
                written = await conn.fetchval(
                    "UPDATE rooms SET config = $2::jsonb, updated_at = $3, revision = revision + 1"
                    " WHERE id = $1 AND revision = $4 RETURNING revision",
                    room_id, _json(room), time.time(), row[1],
                )
                if written is not None:
                    return room
        raise StoreError(
            f"room {room_id!r} changed under {self._settings.update_retries} updates in a row; not updated"
        )

    async def delete(self, room_id: str) -> bool:
        async with self._conn() as conn:
            status = await conn.execute("DELETE FROM rooms WHERE id = $1", room_id)
        return bool(status == "DELETE 1")
