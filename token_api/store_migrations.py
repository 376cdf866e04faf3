"""The room store's schema, as numbered migrations applied in order when a store opens.

A database records every migration applied to it in ``schema_version`` (``version``,
``description``, ``applied_at``); its version is the highest one.  Opening a store applies the
missing ones in one transaction, under a lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: an
advisory lock), so token API processes starting together migrate once.  A database newer than this
code is refused, never downgraded.

Adding a migration: append one with the next number, its statements for both back-ends, and never
change a released one (databases out there are at its version already).
"""

from __future__ import annotations

from dataclasses import dataclass

from .store import StoreError

__all__ = ["Migration", "MIGRATIONS", "LATEST", "pending"]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "rooms: id, configuration (JSON), creation and update times",
        # The table as it was before versioning, so that existing files are adopted as they are.
        sqlite=(
            "CREATE TABLE IF NOT EXISTS rooms (id TEXT PRIMARY KEY, config BLOB NOT NULL,"
            " created_at REAL NOT NULL, updated_at REAL NOT NULL)",
        ),
        postgres=(
            "CREATE TABLE IF NOT EXISTS rooms (seq BIGINT GENERATED ALWAYS AS IDENTITY, id TEXT PRIMARY KEY,"
            " config JSONB NOT NULL, created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL)",
            "CREATE UNIQUE INDEX IF NOT EXISTS rooms_seq ON rooms (seq)",
        ),
    ),
    Migration(
        2,
        "rooms.revision: counts a room's updates, so an update is a compare-and-set",
        sqlite=("ALTER TABLE rooms ADD COLUMN revision INTEGER NOT NULL DEFAULT 1",),
        postgres=("ALTER TABLE rooms ADD COLUMN IF NOT EXISTS revision BIGINT NOT NULL DEFAULT 1",),
    ),
)

#: The version this code writes and reads.
LATEST = MIGRATIONS[-1].version


def pending(current: int, target: int = LATEST) -> list[Migration]:
    """The migrations that take a database from ``current`` to ``target``, in order.

    :raises StoreError: the database is newer than this code.
    """
    if current > LATEST:
        raise StoreError(
            f"the room store's schema is at version {current}, newer than this code's {LATEST}: "
            "run a newer switchboard (a schema is never downgraded)"
        )
    return [m for m in MIGRATIONS if current < m.version <= target]
