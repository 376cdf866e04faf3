"""What only the SQLite room store has to do: adopt files from before schema versions, and hold
the file's write lock through a read-then-write (so a process sharing the file loses nothing)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import cast

import pytest

import msgspec
from token_api.rooms import RoomRecord
from token_api.store_migrations import LATEST
from token_api.store_sqlite import SqliteRoomStore, _enter_wal, sqlite_version


async def test_a_file_from_before_schema_versions_is_adopted_with_its_rooms(tmp_path: Path) -> None:
    path = tmp_path / "rooms.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    # The table exactly as the unversioned store made it.
    db.execute("CREATE TABLE IF NOT EXISTS rooms (id TEXT PRIMARY KEY, config BLOB NOT NULL,"
               " created_at REAL NOT NULL, updated_at REAL NOT NULL)")
    db.execute("INSERT INTO rooms VALUES (?, ?, ?, ?)",
               ("old", msgspec.json.encode(RoomRecord(id="old", name="kept")), time.time(), time.time()))
    db.close()

    store = SqliteRoomStore(path)
    await store.open()
    try:
        assert await store.get("old") == RoomRecord(id="old", name="kept")
        db = sqlite3.connect(path)
        assert sqlite_version(db) == LATEST
        db.close()
    finally:
        await store.close()


async def test_an_update_holds_the_write_lock_from_its_read_to_its_write(tmp_path: Path) -> None:
    path = tmp_path / "rooms.sqlite3"
    store = SqliteRoomStore(path)
    await store.open()
    attempts: list[str] = []

    def change(room: RoomRecord) -> RoomRecord:
        # Another process tries to write between this update's read and its write.
        other = sqlite3.connect(path, isolation_level=None, timeout=0)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            attempts.append("written")
        except sqlite3.OperationalError as exc:
            attempts.append(str(exc))
        finally:
            other.close()
        return msgspec.structs.replace(room, participant_limit=5)

    try:
        await store.create(RoomRecord(id="r1", name="one"))
        updated = await store.update("r1", change)
        assert attempts == ["database is locked"]
        assert updated == await store.get("r1") == RoomRecord(id="r1", name="one", participant_limit=5)
    finally:
        await store.close()


class _Switching:
    """A connection whose WAL switch fails with ``errors`` (in order) before it succeeds."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        self.calls = 0

    def execute(self, sql: str) -> None:
        assert sql == "PRAGMA journal_mode=WAL"
        self.calls += 1
        if self.errors:
            raise sqlite3.OperationalError(self.errors.pop(0))


def test_a_wal_switch_refused_while_another_opener_switches_is_retried() -> None:
    db = _Switching(["database is locked", "database is locked"])
    _enter_wal(cast(sqlite3.Connection, db), patience=5.0)
    assert db.calls == 3


def test_a_wal_switch_still_locked_after_the_busy_timeout_fails() -> None:
    db = _Switching(["database is locked"] * 1000)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _enter_wal(cast(sqlite3.Connection, db), patience=0.05)
    assert 1 < db.calls < 1000


def test_a_wal_switch_failing_for_another_reason_is_not_retried() -> None:
    db = _Switching(["disk I/O error", "database is locked"])
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _enter_wal(cast(sqlite3.Connection, db), patience=5.0)
    assert db.calls == 1
