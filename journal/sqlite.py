"""The embedded server's journal: one SQLite database in WAL mode on local disk.

Writes (``append``, ``claim``, ``save_snapshot``, ``forget``) queue up on the event loop and are
committed with *group commit*: whatever queued up while a transaction was being committed goes into
the next one, so many concurrent appends cost one transaction.  Who commits depends on the durability:

- ``full``: one writer thread, since each commit waits for an fsync (~100 µs and more) that must not
  stall the event loop;
- ``normal`` and ``off``: the event loop's own thread, in a callback at the end of the loop turn the
  writes were queued in (every write of one turn in one transaction), since a commit is then only a
  write to the OS (~25 µs, ~6 µs per record in a group of ten): handing it to a thread and back costs
  more than the commit.  With ``commit = "each"``, :meth:`SqliteJournal.append_now` commits at once,
  for a caller that would otherwise wait for the end of the turn; with ``turn`` (the default) it
  declines, so every room's records of one turn share its transaction.  A checkpoint of the WAL
  fsyncs, so it does not run on the loop: every so many writes the writer thread checkpoints, and
  writes queue up meanwhile (a checkpoint that no write runs beside empties the WAL, which then starts
  again from its beginning).

Each write's fencing check runs inside the transaction that carries it, so no other write slips in
between.  Reads (``replay``, ``snapshot``, ``rooms``) run on a second thread with a connection of
their own, which WAL lets read the last commit while the writer goes on.

Records are rows of ``room_records``, keyed by room and offset (``WITHOUT ROWID``: one B-tree, where
a rowid table with an ``AUTOINCREMENT`` counter and an index by room changed three pages per append;
~2.3 pages of WAL per relayed message against ~3.3, page splits and checkpoints counted).  Offsets count per room: each append takes the room's last offset plus one, the last
offset being the highest of its records, its snapshot and the ``rooms`` row's ``last``, which
``forget`` sets, so a room's offsets keep increasing across retention and ``forget``.  The writer
keeps each room's last offset in memory between transactions, as it keeps the ``rooms`` rows.  The
``rooms`` table keeps each room's epoch (forever: ``forget`` keeps the row) and whether it is listed.
A file of the earlier layout (a ``records`` table with one counter for every room) is converted when
it is opened: its records move to ``room_records`` with their offsets, and every room's ``last``
becomes the old counter, so no room ever gets an offset it had before.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .base import Fenced, JournalRecord, JournalUnavailable, Snapshot
from .logs import EventLog
from .settings import JournalSettings

__all__ = ["SqliteJournal"]

_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (
    room TEXT PRIMARY KEY,
    epoch INTEGER NOT NULL,
    last INTEGER NOT NULL,      -- the room's last offset when it was forgotten (0 before)
    listed INTEGER NOT NULL     -- 1 from a claim or append until forget
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS room_records (
    room TEXT NOT NULL,
    offset INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    body BLOB NOT NULL,
    PRIMARY KEY (room, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS snapshots (
    room TEXT PRIMARY KEY,
    offset INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    body BLOB NOT NULL
) WITHOUT ROWID;
"""

_SYNCHRONOUS = {"full": "FULL", "normal": "NORMAL", "off": "OFF"}

#: The earlier layout's records (one ``AUTOINCREMENT`` counter for every room), moved to ``room_records``
#: by :func:`_convert_records`.
_CONVERT = """
INSERT INTO room_records (room, offset, epoch, body) SELECT room, id, epoch, body FROM records;
UPDATE rooms SET last = max(last, (SELECT coalesce(max(id), 0) FROM records),
                            coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'records'), 0));
DROP TABLE records;
"""


#: Rooms whose ``rooms`` row the writer keeps in memory; beyond this it forgets them all and reads
#: each again when next written to.
_KNOWN_ROOMS = 100_000

_Write = Callable[["_Tx"], Any]


@dataclass(slots=True)
class _Pending:
    write: _Write
    future: asyncio.Future[Any] = field(default_factory=lambda: asyncio.get_running_loop().create_future())
    #: It holds one of the ``max_pending`` slots (released once it is settled).
    slot: bool = True


@dataclass(slots=True)
class _Then:
    """A queued write whose outcome (its result, or the exception) is handed to ``then`` once it is
    settled, on the loop's thread: no future, no loop turn (:meth:`SqliteJournal.submit_then`)."""

    write: _Write
    then: Callable[[Any], None]
    slot: bool = False


class _Tx:
    """One transaction, with the ``rooms`` rows it touched kept in memory: each room's row is read at
    most once and written at most once, at the end, and only if it changed; and each room's last
    offset, read at most once.  Rows and offsets read or written by committed transactions stay known
    (``known``, ``known_last``) until another connection writes to the file, so an append to a room
    already held under its epoch costs its INSERT and nothing else."""

    __slots__ = ("db", "_known", "_rows", "_dirty", "_known_last", "_last")

    def __init__(self, db: sqlite3.Connection, known: dict[str, tuple[int, int] | None],
                 known_last: dict[str, int]) -> None:
        self.db = db
        #: room → (epoch, listed) as committed (None: no row); see :meth:`SqliteJournal._commit`.
        self._known = known
        #: room → (epoch, listed) as of this transaction.
        self._rows: dict[str, tuple[int, int] | None] = {}
        self._dirty: set[str] = set()
        #: room → its last offset as committed, and as of this transaction.
        self._known_last = known_last
        self._last: dict[str, int] = {}

    def last(self, room: str) -> int:
        """The room's last offset: of its last record, counting those a snapshot let go and those
        ``forget`` dropped (0 if it never had one)."""
        last = self._last.get(room)
        if last is None:
            last = self._known_last.get(room)
            if last is None:
                last = int(self.db.execute(
                    "SELECT max(coalesce((SELECT max(offset) FROM room_records WHERE room = ?1), 0),"
                    " coalesce((SELECT offset FROM snapshots WHERE room = ?1), 0),"
                    " coalesce((SELECT last FROM rooms WHERE room = ?1), 0))", (room,)).fetchone()[0])
            self._last[room] = last
        return last

    def next_offset(self, room: str) -> int:
        offset = self.last(room) + 1
        self._last[room] = offset
        return offset

    def row(self, room: str) -> tuple[int, int] | None:
        rows = self._rows
        if room not in rows:
            if room in self._known:
                rows[room] = self._known[room]
            else:
                found = self.db.execute("SELECT epoch, listed FROM rooms WHERE room = ?", (room,)).fetchone()
                rows[room] = None if found is None else (int(found[0]), int(found[1]))
        return rows[room]

    def held(self, room: str, epoch: int) -> tuple[int, int] | None:
        """The room's row once ``epoch`` is checked against its current one (None: new room)."""
        row = self.row(room)
        if row is not None and epoch < row[0]:
            raise Fenced(room, epoch, row[0])
        return row

    def set(self, room: str, epoch: int, listed: int) -> None:
        if self.row(room) != (epoch, listed):
            self._rows[room] = (epoch, listed)
            self._dirty.add(room)

    def flush(self) -> None:
        rows = [(room, *row) for room in self._dirty if (row := self._rows[room]) is not None]
        if rows:
            self.db.executemany(
                "INSERT INTO rooms (room, epoch, last, listed) VALUES (?, ?, 0, ?)"
                " ON CONFLICT (room) DO UPDATE SET epoch = excluded.epoch, listed = excluded.listed",
                rows,
            )

    def committed(self) -> None:
        """The transaction is committed: what it read and wrote is now known."""
        if len(self._known) + len(self._rows) > _KNOWN_ROOMS:
            self._known.clear()
        self._known.update(self._rows)
        if len(self._known_last) + len(self._last) > _KNOWN_ROOMS:
            self._known_last.clear()
        self._known_last.update(self._last)


def _claim(room: str, epoch: int) -> _Write:
    def write(tx: _Tx) -> int:
        held = tx.held(room, epoch)
        if held is not None and epoch == held[0]:
            raise Fenced(room, epoch, held[0])  # every placement claims an epoch of its own
        tx.set(room, epoch, 1)
        # The last record's offset, counting those a snapshot let go (not those forget dropped).
        last: int = tx.db.execute(
            "SELECT max(coalesce((SELECT max(offset) FROM room_records WHERE room = ?1), 0),"
            " coalesce((SELECT offset FROM snapshots WHERE room = ?1), 0))", (room,)).fetchone()[0]
        return last

    return write


def _append(room: str, epoch: int, body: bytes) -> _Write:
    def write(tx: _Tx) -> int:
        tx.held(room, epoch)
        offset = tx.next_offset(room)
        tx.db.execute("INSERT INTO room_records (room, offset, epoch, body) VALUES (?, ?, ?, ?)",
                      (room, offset, epoch, body))
        tx.set(room, epoch, 1)
        return offset

    return write


def _save_snapshot(room: str, snapshot: Snapshot, drop_records: bool) -> _Write:
    def write(tx: _Tx) -> None:
        tx.held(room, snapshot.epoch)
        kept = tx.db.execute("SELECT offset FROM snapshots WHERE room = ?", (room,)).fetchone()
        if kept is not None and snapshot.offset < kept[0]:
            return
        tx.db.execute(
            "INSERT OR REPLACE INTO snapshots (room, offset, epoch, body) VALUES (?, ?, ?, ?)",
            (room, snapshot.offset, snapshot.epoch, snapshot.body),
        )
        if drop_records:
            tx.db.execute("DELETE FROM room_records WHERE room = ? AND offset <= ?", (room, snapshot.offset))

    return write


def _forget(room: str) -> _Write:
    def write(tx: _Tx) -> None:
        row = tx.row(room)
        if row is not None:
            # Kept in its row: the room's next history goes on from its last offset.
            tx.db.execute(
                "INSERT INTO rooms (room, epoch, last, listed) VALUES (?, ?, ?, 0)"
                " ON CONFLICT (room) DO UPDATE SET last = max(rooms.last, excluded.last)",
                (room, row[0], tx.last(room)))
            tx.set(room, row[0], 0)
        tx.db.execute("DELETE FROM room_records WHERE room = ?", (room,))
        tx.db.execute("DELETE FROM snapshots WHERE room = ?", (room,))

    return write


def _convert_records(db: sqlite3.Connection) -> None:
    """Move the records of a file of the earlier layout to ``room_records`` (once, in one transaction)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'records'").fetchone():
            for statement in _CONVERT.split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class SqliteJournal:
    """The journal in the SQLite database at ``path`` (``settings.path`` is ignored here: the caller
    resolves where the file goes).  ``open()`` before use, ``close()`` after; both idempotent.

    Every error of the database (cannot open, disk full, I/O error, locked by another process for
    longer than ``busy_timeout``) reaches the caller as :class:`JournalUnavailable`, naming the file;
    when a transaction fails, every write it carried fails with it and none of them is kept.
    """

    def __init__(self, path: str | os.PathLike[str], settings: JournalSettings | None = None) -> None:
        self.path = str(path)
        self.settings = settings or JournalSettings()
        if self.settings.max_pending < 1 or self.settings.max_batch < 1:
            raise ValueError("journal max_pending and max_batch must be at least 1")
        self._writer: ThreadPoolExecutor | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._write_db: sqlite3.Connection | None = None
        self._read_db: sqlite3.Connection | None = None
        self._queue: list[_Pending | _Then] = []
        self._slots = asyncio.Semaphore(self.settings.max_pending)
        self._committer: asyncio.Task[None] | None = None
        #: ``normal``/``off``: writes are committed on the loop's thread (see the module's doc).
        self._on_loop = self.settings.durability != "full"
        #: ``append_now`` commits (else the request's record waits for the end of the loop turn).
        self._commit_each = self._on_loop and self.settings.commit == "each"
        #: The end-of-turn callback that commits what is queued, when one is scheduled (on the loop).
        self._turn: asyncio.Handle | None = None
        #: A WAL checkpoint running on the writer's thread (no write commits meanwhile), and writes
        #: committed on the loop since the last one (each dirties a page or more of the WAL).
        self._checkpoint: asyncio.Future[Any] | None = None
        self._since_checkpoint = 0
        #: The writer's ``rooms`` rows as committed (see :class:`_Tx`), valid while the file's
        #: ``data_version`` (changed by any other connection's commit) stays ``_data_version``.
        self._known: dict[str, tuple[int, int] | None] = {}
        self._known_last: dict[str, int] = {}
        self._data_version = -1
        self._lifecycle = asyncio.Lock()
        self._open = False
        self._closed = False
        self._log = EventLog(journal=self.path)
        #: Transactions committed (one per group of writes): what group commit saves is
        #: ``writes / commits``.
        self.commits = 0
        #: Writes (appends, claims, snapshots, forgets) committed.
        self.writes = 0

    # -- lifecycle

    async def open(self) -> None:
        """Open the file (a failure leaves nothing open); a closed journal cannot be opened again."""
        async with self._lifecycle:
            if self._closed:
                raise RuntimeError(f"the journal {self.path} was closed; make a new one")
            if self._open:
                return
            writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-writer")
            reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-reader")
            loop = asyncio.get_running_loop()
            try:
                self._write_db = await loop.run_in_executor(writer, self._connect, True)
                self._read_db = await loop.run_in_executor(reader, self._connect, False)
            except (sqlite3.Error, OSError) as exc:
                await self._release(writer, reader)
                self._log.error("journal_open_failed", error=str(exc))
                raise JournalUnavailable(f"cannot open the journal {self.path}: {exc}") from exc
            self._writer, self._reader = writer, reader
            self._open = True
            self._log.info("journal_opened", durability=self.settings.durability)

    def _connect(self, writer: bool) -> sqlite3.Connection:
        if writer:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                             timeout=self.settings.busy_timeout)
        try:
            if writer:
                mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode != "wal":
                    raise sqlite3.OperationalError(f"WAL mode refused (journal_mode={mode}); is it on local disk?")
                db.executescript(_SCHEMA)
                _convert_records(db)
            db.execute(f"PRAGMA synchronous={_SYNCHRONOUS[self.settings.durability]}")
            if writer and self._on_loop:
                db.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run on the writer's thread
        except BaseException:
            db.close()
            raise
        return db

    async def close(self) -> None:
        async with self._lifecycle:
            self._closed = True
            if not self._open:
                return
            self._open = False
            while self._committer is not None:  # what was accepted is committed before we go
                await asyncio.shield(self._committer)
            while self._checkpoint is not None:
                await asyncio.shield(self._checkpoint)
            if self._turn is not None or self._queue:
                if self._turn is not None:
                    self._turn.cancel()
                self._commit_turn()
            writer, reader = self._writer, self._reader
            self._writer = self._reader = None
            assert writer is not None and reader is not None
            await self._release(writer, reader)
            self._log.info("journal_closed", commits=self.commits, writes=self.writes)

    async def _release(self, writer: ThreadPoolExecutor, reader: ThreadPoolExecutor) -> None:
        loop = asyncio.get_running_loop()
        for executor, db in ((writer, self._write_db), (reader, self._read_db)):
            if db is not None:
                await loop.run_in_executor(executor, db.close)
            executor.shutdown(wait=False)
        self._write_db = self._read_db = None

    # -- writes

    async def claim(self, room: str, epoch: int) -> int:
        result: int = await self._write(_claim(room, epoch))
        return result

    async def append(self, room: str, epoch: int, body: bytes) -> int:
        result: int = await self._write(_append(room, epoch, bytes(body)))
        return result

    def submit(self, room: str, epoch: int, body: bytes) -> asyncio.Future[int]:
        """:meth:`append` without a coroutine of its own: the record is queued now and the future
        gets its offset once it is durable (or the error).  Past ``max_pending`` queued writes it
        falls back to :meth:`append` (which waits for a slot)."""
        self._check_open()
        if self._queue_full():
            return asyncio.ensure_future(self.append(room, epoch, body))
        pending = _Pending(_append(room, epoch, bytes(body)), slot=False)
        self._queue.append(pending)
        self._schedule()
        return pending.future

    def _queue_full(self) -> bool:
        """``max_pending`` writes queued (or waiting for a slot): a new one must wait for a slot."""
        return len(self._queue) >= self.settings.max_pending or self._slots.locked()

    def submit_then(self, room: str, epoch: int, body: bytes, then: Callable[[int | Exception], None]) -> bool:
        """:meth:`submit` with the outcome handed to ``then`` (the offset, or the exception
        :meth:`append` would raise) as soon as the record's transaction ends, on the loop's thread,
        in the order the records were queued: no future and no loop turn in between.  ``False``
        (nothing queued) past ``max_pending`` queued writes: :meth:`submit` then waits for a slot."""
        self._check_open()
        if self._queue_full():
            return False
        self._queue.append(_Then(_append(room, epoch, bytes(body)), then))
        self._schedule()
        return True

    def append_now(self, room: str, epoch: int, body: bytes) -> int | None:
        """:meth:`append` committed before this returns, on the calling (loop) thread, with whatever
        writes were queued before it: its offset.  ``None`` (nothing done) unless the journal
        commits on the loop's thread (``durability`` ``normal`` or ``off``) each record at once
        (``commit = "each"``) and no checkpoint is running.

        :raises Fenced: as :meth:`append`.
        :raises JournalUnavailable: the journal is closed, or the transaction failed.
        """
        if not self._commit_each or self._checkpoint is not None:
            return None
        self._check_open()
        write = _append(room, epoch, bytes(body))
        if self._queue:  # the writes queued before it go first, in the same transaction
            pending = _Pending(write, slot=False)
            self._queue.append(pending)
            if self._turn is not None:
                self._turn.cancel()
            self._commit_turn()
            future = pending.future
            future.exception()  # retrieved here: raised below, not logged by the loop
            queued: int = future.result()
            return queued
        # Alone: no queue entry and no future (this runs once per relayed message).
        try:
            [result] = self._commit([write])
        except Exception as exc:
            [result] = self._failed([write], exc)
        self._since_checkpoint += 1
        self._checkpoint_if_due()
        if isinstance(result, Exception):
            raise result
        offset: int = result
        return offset

    async def save_snapshot(self, room: str, snapshot: Snapshot) -> None:
        await self._write(_save_snapshot(room, snapshot, not self.settings.keep_snapshotted))

    async def forget(self, room: str) -> None:
        await self._write(_forget(room))

    async def _write(self, write: _Write) -> Any:
        self._check_open()
        await self._slots.acquire()  # released by the committer once the write is settled
        if not self._open:
            self._slots.release()
            self._check_open()
        pending = _Pending(write)
        self._queue.append(pending)
        self._schedule()
        return await pending.future

    def _schedule(self) -> None:
        """Have what is queued committed: at the end of this loop turn, or by the writer thread."""
        if self._on_loop:
            if self._turn is None and self._checkpoint is None:  # else the checkpoint's end schedules it
                self._turn = asyncio.get_running_loop().call_soon(self._commit_turn)
        elif self._committer is None:
            self._committer = asyncio.create_task(self._commit_queued(), name="journal-committer")

    def _commit_turn(self) -> None:
        """On the loop's thread: commit what is queued, one transaction per ``max_batch`` writes."""
        self._turn = None
        while self._queue:
            group = self._queue[: self.settings.max_batch]
            del self._queue[: self.settings.max_batch]
            try:
                results = self._commit([p.write for p in group])
            except Exception as exc:
                results = self._failed(group, exc)
            self._settle(group, results)
            self._since_checkpoint += len(group)
        self._checkpoint_if_due()

    def _checkpoint_if_due(self) -> None:
        """After transactions on the loop's thread: checkpoint every ``checkpoint_every`` writes."""
        if self._since_checkpoint >= self.settings.checkpoint_every and self._open:
            self._start_checkpoint()

    def _start_checkpoint(self) -> None:
        """Checkpoint the WAL on the writer's thread; writes queue up until it is done."""
        db, writer = self._write_db, self._writer
        assert db is not None and writer is not None
        self._since_checkpoint = 0
        checkpoint = asyncio.get_running_loop().run_in_executor(
            writer, lambda: db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall())
        self._checkpoint = checkpoint

        def done(future: asyncio.Future[Any]) -> None:
            self._checkpoint = None
            if not future.cancelled() and future.exception() is not None:
                self._log.warning("journal_checkpoint_failed", error=str(future.exception()))
            if self._queue and self._open:
                self._schedule()

        checkpoint.add_done_callback(done)

    async def _commit_queued(self) -> None:
        """Commit what is queued, one transaction per group, until the queue is empty."""
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                group = self._queue[: self.settings.max_batch]
                del self._queue[: self.settings.max_batch]
                try:
                    assert self._writer is not None
                    results = await loop.run_in_executor(self._writer, self._commit, [p.write for p in group])
                except Exception as exc:
                    results = self._failed(group, exc)
                self._settle(group, results)
        finally:
            self._committer = None

    def _failed(self, group: list[Any], exc: Exception) -> list[Any]:
        reason = f"journal {self.path}: a write failed, nothing of its transaction kept: {exc}"
        self._log.warning("journal_commit_failed", writes=len(group), error=str(exc))
        return [JournalUnavailable(reason) for _ in group]

    def _settle(self, group: list[_Pending | _Then], results: list[Any]) -> None:
        for pending, result in zip(group, results):
            if isinstance(pending, _Then):
                try:
                    pending.then(result)
                except Exception:  # noqa: BLE001 - one caller's failure must not keep the others waiting
                    self._log.exception("journal_then_failed")
                continue
            if not pending.future.done():
                if isinstance(result, Exception):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)
            if pending.slot:
                self._slots.release()

    def _commit(self, writes: list[_Write]) -> list[Any]:
        """One transaction carrying ``writes`` (on the writer's thread, or the loop's: never both at
        once); each one's result or Fenced."""
        db = self._write_db
        if db is None:
            raise sqlite3.OperationalError("the database is closed")
        results: list[Any] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:  # another connection wrote: what we knew may be stale
                self._known.clear()
                self._known_last.clear()
                self._data_version = version
            tx = _Tx(db, self._known, self._known_last)
            for write in writes:
                try:
                    results.append(write(tx))
                except Fenced as exc:  # checked before the write changed anything
                    results.append(exc)
            tx.flush()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        tx.committed()
        self.commits += 1
        self.writes += len(writes)
        return results

    # -- reads

    async def replay(self, room: str, after: int = 0) -> list[JournalRecord]:
        rows: list[tuple[int, int, bytes]] = await self._read(
            "SELECT offset, epoch, body FROM room_records WHERE room = ? AND offset > ? ORDER BY offset", (room, after))
        return [JournalRecord(offset=offset, epoch=epoch, body=body) for offset, epoch, body in rows]

    async def snapshot(self, room: str) -> Snapshot | None:
        rows: list[tuple[int, int, bytes]] = await self._read(
            "SELECT offset, epoch, body FROM snapshots WHERE room = ?", (room,))
        return None if not rows else Snapshot(offset=rows[0][0], epoch=rows[0][1], body=rows[0][2])

    async def rooms(self) -> list[str]:
        rows: list[tuple[str]] = await self._read("SELECT room FROM rooms WHERE listed = 1 ORDER BY room", ())
        return [room for (room,) in rows]

    async def _read(self, sql: str, args: tuple[Any, ...]) -> Any:
        self._check_open()
        db, reader = self._read_db, self._reader
        assert db is not None and reader is not None
        try:
            return await asyncio.get_running_loop().run_in_executor(reader, lambda: db.execute(sql, args).fetchall())
        except sqlite3.Error as exc:
            self._log.warning("journal_read_failed", error=str(exc))
            raise JournalUnavailable(f"journal {self.path}: a read failed: {exc}") from exc

    def _check_open(self) -> None:
        if not self._open:
            raise JournalUnavailable(f"the journal {self.path} is not open")
