"""The SQLite room store (the embedded default): one file, shared by the token API processes of
one machine.

Every operation is one short transaction run in a worker thread (``asyncio.to_thread``) under a
lock; reads and writes go to the file, so processes sharing it agree.  Read-then-write operations
take SQLite's write lock first (``BEGIN IMMEDIATE``), so no concurrent update is lost even across
processes.
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

from .rooms import RoomRecord
from .store import RoomExists, StoreUnavailable
from .store_migrations import LATEST, pending

__all__ = ["SqliteRoomStore", "migrate_sqlite", "sqlite_version"]

_T = TypeVar("_T")

_SCHEMA_VERSION = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
    " applied_at REAL NOT NULL)"
)

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(RoomRecord).decode


def sqlite_version(db: sqlite3.Connection) -> int:
    """The schema version of ``db`` (0: never migrated)."""
    exists = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not exists:
        return 0
    return int(db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0])


def migrate_sqlite(db: sqlite3.Connection, target: int = LATEST) -> int:
    """Apply the missing migrations up to ``target`` in one transaction; the version reached.

    ``db`` must be in autocommit mode (``isolation_level=None``)."""
    with _write(db):
        db.execute(_SCHEMA_VERSION)
        for migration in pending(sqlite_version(db), target):
            for statement in migration.sqlite:
                db.execute(statement)
            db.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.description, time.time()),
            )
        return sqlite_version(db)


def _enter_wal(db: sqlite3.Connection, patience: float) -> None:
    """Switch ``db``'s file to WAL, waiting up to ``patience`` seconds for other openers.

    SQLite answers "database is locked" to this pragma at once, without its busy handler, while
    another connection is switching the same file; so several stores opening one new file at the
    same moment retry here, bounded by the store's busy timeout."""
    deadline = time.monotonic() + patience
    pause = 0.005
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.1)


class _write:
    """``with _write(db):`` one transaction holding SQLite's write lock from its start."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


class SqliteRoomStore:
    """Rooms in the SQLite file ``path`` (``":memory:"`` for one process only)."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 5.0) -> None:
        self.path = str(path)
        self._busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"sqlite:{self.path}"

    async def open(self) -> None:
        if self._db is None:
            self._db = await asyncio.to_thread(self._connect)

    def _connect(self) -> sqlite3.Connection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=self._busy_timeout)
        try:
            _enter_wal(db, self._busy_timeout)
            db.execute("PRAGMA synchronous=NORMAL")
            migrate_sqlite(db)
        except BaseException:
            db.close()
            raise
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
        try:
            return await asyncio.to_thread(self._locked, lambda: operation(db))
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):  # another process kept the write lock too long
                raise StoreUnavailable(f"the room store {self.describe()} is busy: {exc}") from None
            raise

    # -- reads -----------------------------------------------------------------------------------

    async def get(self, room_id: str) -> RoomRecord | None:
        def read(db: sqlite3.Connection) -> RoomRecord | None:
            row = db.execute("SELECT config FROM rooms WHERE id = ?", (room_id,)).fetchone()
            return _decode(row[0]) if row else None

        return await self._run(read)

    async def page(self, offset: int = 0, limit: int = 100) -> list[RoomRecord]:
        def read(db: sqlite3.Connection) -> list[RoomRecord]:
            rows = db.execute(
                "SELECT config FROM rooms ORDER BY rowid LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
            return [_decode(row[0]) for row in rows]

        return await self._run(read)

    # -- writes ----------------------------------------------------------------------------------

    async def create(self, room: RoomRecord) -> None:
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

    async def get_or_create(self, room: RoomRecord) -> tuple[RoomRecord, bool]:
        def write(db: sqlite3.Connection) -> tuple[RoomRecord, bool]:
            now = time.time()
            with _write(db):
                created = db.execute(
                    "INSERT OR IGNORE INTO rooms (id, config, created_at, updated_at) VALUES (?, ?, ?, ?)",
                    (room.id, _encode(room), now, now),
                ).rowcount > 0
                row = db.execute("SELECT config FROM rooms WHERE id = ?", (room.id,)).fetchone()
            return _decode(row[0]), created

        return await self._run(write)

    async def update(self, room_id: str, change: Callable[[RoomRecord], RoomRecord]) -> RoomRecord | None:
        def write(db: sqlite3.Connection) -> RoomRecord | None:
            with _write(db):
                row = db.execute("SELECT config FROM rooms WHERE id = ?", (room_id,)).fetchone()
                if row is None:
                    return None
                room = change(_decode(row[0]))
                db.execute(
                    "UPDATE rooms SET config = ?, updated_at = ?, revision = revision + 1 WHERE id = ?",
                    (_encode(room), time.time(), room_id),
                )
            return room

        return await self._run(write)

    async def delete(self, room_id: str) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            return db.execute("DELETE FROM rooms WHERE id = ?", (room_id,)).rowcount > 0

        return await self._run(write)
