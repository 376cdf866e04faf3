"""The rooms of a SQLite journal (:mod:`journal.sqlite`) imported into an empty file journal
(:mod:`journal.logfile`): what an embedded server whose journal kind changed from ``sqlite`` to
``file`` holds at its upgrade restart.

Each room's state goes over whole: its epoch (forgotten rooms too: a room opened again later goes on
from it), its last offset, whether it is listed, the last offset at its latest forget, its newest
snapshot and the records after it, at their offsets.  The frames are written to a file of their own,
fsync'd, and renamed into place as the journal's first segment: an import cut short by a crash leaves
no segment (the next open imports again).  Only then is the SQLite file (and its ``-wal`` and ``-shm``,
if any) renamed aside, to ``<name>.migrated``: it is not read again, and is kept for the operator to
delete.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .logfile_frames import Kind, encode
from .settings import JournalSettings
from .sqlite import SqliteJournal

__all__ = ["Imported", "import_sqlite", "MIGRATED_SUFFIX"]

#: What the imported SQLite file is renamed to: its name with this appended.
MIGRATED_SUFFIX = ".migrated"
#: Records read (and frames written) per round.
_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Imported:
    rooms: int
    records: int
    snapshots: int
    #: Where the SQLite file went.
    moved_to: Path


async def import_sqlite(source: Path, segment: Path) -> Imported:
    """Write the rooms of the SQLite journal ``source`` as the frames of the new segment file
    ``segment``, then rename ``source`` aside.

    :raises sqlite3.Error, OSError: the import failed; ``segment`` is not there then.
    """
    # Opened once as the SQLite journal opens it: an earlier layout is converted, its WAL folded in.
    sqlite = SqliteJournal(source, JournalSettings(durability="full"))
    await sqlite.open()
    await sqlite.close()
    return await asyncio.get_running_loop().run_in_executor(None, _import, source, segment)


def _import(source: Path, segment: Path) -> Imported:
    partial = segment.with_name(segment.name + ".importing")
    db = sqlite3.connect(source, isolation_level=None)
    try:
        with open(partial, "wb") as out:
            counts = _write_rooms(db, out.write)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        db.close()
    os.replace(partial, segment)
    _sync_directory(segment.parent)
    moved_to = source.with_name(source.name + MIGRATED_SUFFIX)
    for suffix in ("-wal", "-shm"):
        extra = source.with_name(source.name + suffix)
        if extra.exists():
            os.replace(extra, moved_to.with_name(moved_to.name + suffix))
    os.replace(source, moved_to)
    _sync_directory(source.parent)
    return Imported(rooms=counts[0], records=counts[1], snapshots=counts[2], moved_to=moved_to)


def _write_rooms(db: sqlite3.Connection, write: Callable[[bytes], object]) -> tuple[int, int, int]:
    """Per room: its records after its snapshot, its snapshot, then a ``STATE`` frame with its epoch,
    last offset, listing and last forget (read after the records, it sets what they cannot)."""
    rooms = records = snapshots = 0
    names = [row[0] for row in db.execute(
        "SELECT room FROM rooms UNION SELECT room FROM room_records UNION SELECT room FROM snapshots ORDER BY 1")]
    for name in names:
        key = name.encode()
        row = db.execute("SELECT epoch, last, listed FROM rooms WHERE room = ?", (name,)).fetchone()
        epoch, forgotten_at, listed = row if row is not None else (0, 0, 1)
        last = forgotten_at
        snapshot = db.execute("SELECT offset, epoch, body FROM snapshots WHERE room = ?", (name,)).fetchone()
        after = 0 if snapshot is None else snapshot[0]
        cursor = db.execute("SELECT offset, epoch, body FROM room_records WHERE room = ? AND offset > ? ORDER BY offset",
                            (name, after))
        while batch := cursor.fetchmany(_BATCH):
            write(b"".join(encode(Kind.RECORD, key, record_epoch, offset, body)
                           for offset, record_epoch, body in batch))
            records += len(batch)
            last = max(last, batch[-1][0])
            epoch = max(epoch, max(record_epoch for _, record_epoch, _ in batch))
        if snapshot is not None:
            write(encode(Kind.SNAPSHOT, key, snapshot[1], snapshot[0], snapshot[2]))
            snapshots += 1
            last = max(last, snapshot[0])
            epoch = max(epoch, snapshot[1])
        if after:  # records the snapshot let go count towards the last offset, as in SQLite
            last = max(last, after)
        write(encode(Kind.STATE, key, epoch, last,
                     (b"\x01" if listed else b"\x00") + forgotten_at.to_bytes(8, "little")))
        rooms += 1
    return rooms, records, snapshots


def _sync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
