"""The room store: room configuration in an embedded SQLite file, so it survives restarts.

Every operation is one short transaction run in a worker thread (``asyncio.to_thread``) under a
lock.  Reads of one room (every token mint, every controller's room load) are served from memory for
``cache_ttl`` seconds; this process's writes update that cache at once, and another process sharing
the file is seen within ``cache_ttl``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import msgspec

from .rooms import Room

__all__ = ["RoomStore", "RoomExists"]

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    id TEXT PRIMARY KEY,
    config BLOB NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
)
"""

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Room).decode


class RoomExists(Exception):
    """A room with that id is already stored."""


class RoomStore:
    """Rooms by id, in insertion order.  ``open()`` before use, ``close()`` after (idempotent)."""

    def __init__(
        self,
        path: str | Path,
        *,
        cache_ttl: float = 2.0,
        cache_size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = str(path)
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._cache_ttl = cache_ttl
        self._cache_size = cache_size
        self._cache: dict[str, tuple[float, Room]] = {}

    def _remember(self, room: Room) -> None:
        if self._cache_ttl <= 0:
            return
        if len(self._cache) >= self._cache_size:
            self._cache.pop(next(iter(self._cache)))
        self._cache[room.id] = (self._clock() + self._cache_ttl, room)

    async def open(self) -> None:
        if self._db is None:
            self._db = await asyncio.to_thread(self._connect)

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=5.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute(_SCHEMA)
        return db

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await asyncio.to_thread(self._locked, db.close)

    def _locked(self, operation: Callable[[], _T]) -> _T:
        with self._lock:
            return operation()

    async def _run(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        db = self._db
        if db is None:
            raise RuntimeError("the room store is not open")
        return await asyncio.to_thread(self._locked, lambda: operation(db))

    # -- reads -----------------------------------------------------------------------------------

    async def get(self, room_id: str) -> Room | None:
        cached = self._cache.get(room_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]

        def read(db: sqlite3.Connection) -> Room | None:
            row = db.execute("SELECT config FROM rooms WHERE id = ?", (room_id,)).fetchone()
            return _decode(row[0]) if row else None

        room = await self._run(read)
        if room is None:
            self._cache.pop(room_id, None)
        else:
            self._remember(room)
        return room

    async def page(self, offset: int = 0, limit: int = 100) -> list[Room]:
        def read(db: sqlite3.Connection) -> list[Room]:
            rows = db.execute(
                "SELECT config FROM rooms ORDER BY rowid LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
            return [_decode(row[0]) for row in rows]

        return await self._run(read)

    # -- writes ----------------------------------------------------------------------------------

    async def create(self, room: Room) -> None:
        """Store a new room; :class:`RoomExists` if the id is taken."""

        def write(db: sqlite3.Connection) -> None:
            now = time.time()
            try:
                db.execute(
                    "INSERT INTO rooms (id, config, created_at, updated_at) VALUES (?, ?, ?, ?)",
                    (room.id, _encode(room), now, now),
                )
            except sqlite3.IntegrityError:
                raise RoomExists(room.id) from None

        await self._run(write)
        self._remember(room)

    async def get_or_create(self, room: Room) -> tuple[Room, bool]:
        """The stored room with ``room.id`` (storing ``room`` first if there is none), and whether
        it was stored now."""

        def write(db: sqlite3.Connection) -> tuple[Room, bool]:
            now = time.time()
            created = db.execute(
                "INSERT OR IGNORE INTO rooms (id, config, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (room.id, _encode(room), now, now),
            ).rowcount > 0
            row = db.execute("SELECT config FROM rooms WHERE id = ?", (room.id,)).fetchone()
            return _decode(row[0]), created

        stored, created = await self._run(write)
        self._remember(stored)
        return stored, created

    async def update(self, room_id: str, change: Callable[[Room], Room]) -> Room | None:
        """Replace the room with ``change(room)`` atomically; ``None`` if there is no such room.

        ``change`` runs under the store's lock; whatever it raises leaves the room as it was.
        """

        def write(db: sqlite3.Connection) -> Room | None:
            row = db.execute("SELECT config FROM rooms WHERE id = ?", (room_id,)).fetchone()
            if row is None:
                return None
            room = change(_decode(row[0]))
            db.execute(
                "UPDATE rooms SET config = ?, updated_at = ? WHERE id = ?", (_encode(room), time.time(), room_id)
            )
            return room

        self._cache.pop(room_id, None)
        room = await self._run(write)
        if room is not None:
            self._remember(room)
        return room

    async def delete(self, room_id: str) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM rooms WHERE id = ?", (room_id,)).rowcount > 0

        self._cache.pop(room_id, None)
        return await self._run(write)
