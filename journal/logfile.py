"""The embedded server's journal as append-only files of our own (``journal.kind = "file"``).

One directory; the journal is a sequence of *segments* (``<number>.seg``), each a sequence of frames
(:mod:`journal.logfile_frames`): records, claims, snapshots, forgets.  Only the newest segment is
written to.  Each room's state lives in memory (:class:`journal.logfile_state.RoomState`: its epoch, its
last offset, and where its live frames are), rebuilt by scanning every segment when the journal is
opened.

Writes (``append``, ``claim``, ``save_snapshot``, ``forget``) queue up on the event loop and are
written at the end of the loop turn they were queued in, every queued frame in one ``os.write``
(group commit).  Each write's fencing check runs then, in queue order, against the state the earlier
writes of the same group left.  With ``durability = "normal"`` the outcomes are handed over once the
frames are written to the OS (they survive the process dying, not a power cut); with ``full``, once
a writer thread has ``fdatasync``'d them (writes queue up meanwhile, and go out together after it).

A failed write (an I/O error, a full disk, a failed ``fdatasync``, a segment that cannot be started)
fails its group and cuts the file back to where it was; writes are then refused until the journal
*recovers*: the next write asked for (the first one at once, then at most one every 50 ms doubling
up to 2 s while they keep failing) first restores the tail on the writer's thread — any segment a
failed start left is removed, the newest segment is cut back to the end of the last group written,
its frames are checked, it is opened again (``full``: and fdatasync'd) — and then goes ahead.  Each
attempt is logged (``journal_recovery_failed``, ``journal_recovered``).

Crash safety: a frame carries its length and a crc32; on open, a torn tail of the newest segment (a
frame cut short, or failing its crc at the end of the file) is truncated away, and any other bad frame
is refused (:class:`journal.base.JournalUnavailable` naming the file and the byte).

Retention: once the newest segment reaches ``segment_bytes`` a new one is started, headed by a
``STATE`` frame per room (its epoch, its last offset, whether it is listed), so older segments hold
nothing but records and snapshots; an older segment none of whose records and snapshots is live any
more (at or below its room's newest snapshot, of a forgotten room, or an older snapshot) is deleted.

One process per directory: the journal holds an ``fcntl.flock`` on its ``LOCK`` file while open.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import logfile_index
from .base import Fenced, JournalRecord, JournalUnavailable, Snapshot
from .logfile_frames import FIELDS, HEAD_SIZE, PREFIX, PREFIX_SIZE, Corrupt, Kind, Torn, encode, scan
from .logfile_import import import_sqlite
from .logfile_index import IndexUnusable, copy_rooms, index_numbers, live_counts, read_index
from .logfile_state import Located, RoomState, Segments
from .logs import EventLog
from .settings import FileJournalSettings

__all__ = ["FileJournal"]

_RECORD, _CLAIM, _SNAPSHOT, _FORGET = Kind.RECORD, Kind.CLAIM, Kind.SNAPSHOT, Kind.FORGET
_LISTED = b"\x01"

#: A queued write: (kind, room, epoch, body, snapshot offset, who gets the outcome, how).
_Write = tuple[int, str, int, bytes, int, Any, int]
#: How: a callback (``submit_then``), a future, a future holding one of the ``max_pending`` slots.
_CALLBACK, _FUTURE, _SLOT = 0, 1, 2
#: After a failed write, the first recovery may run at once; the next ones (while writes keep
#: failing) wait this long, doubling up to ``_RECOVER_MAX`` seconds.
_RECOVER_FIRST, _RECOVER_MAX = 0.05, 2.0


class FileJournal:
    """The journal in the directory ``path``.  ``open()`` before use, ``close()`` after; both
    idempotent.  An I/O error while writing (or a failed fsync, or a segment that cannot be started)
    fails the writes of its group with :class:`JournalUnavailable` (none of them is kept: the file is
    cut back to where it was), and every write queued or asked for after it until the journal has
    restored its tail (:meth:`_recover`, started by the next write asked for); reads go on.

    ``import_from``: a SQLite journal (:class:`journal.sqlite.SqliteJournal`) whose rooms are imported
    when this one is opened empty (no segment yet), then renamed aside (``<name>.migrated``): see
    :mod:`journal.logfile_import`."""

    def __init__(self, path: str | os.PathLike[str], settings: FileJournalSettings | None = None, *,
                 import_from: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path)
        self.settings = settings or FileJournalSettings()
        self.import_from = None if import_from is None else Path(import_from)
        self._rooms: dict[str, RoomState] = {}
        self._segments = Segments()
        self._fd = -1
        self._lock_fd = -1
        #: The newest segment's number and size (where the next frame goes).
        self._segment = 0
        self._size = 0
        self._queue: list[_Write] = []
        self._slots = asyncio.Semaphore(self.settings.max_pending)
        #: Writes holding one of the slots or waiting for one: ``_slots.locked()`` without its scan of
        #: the waiters (checked for every record).
        self._slotted = 0
        self._turn: asyncio.Handle | None = None
        #: ``full``: the group being fsync'd (writes queue up meanwhile).
        self._syncing: asyncio.Future[Any] | None = None
        self._full = self.settings.durability == "full"
        #: ``append_now`` writes at once (else the request's record waits for the end of the loop turn).
        self._commit_each = not self._full and self.settings.commit == "each"
        self._writer: ThreadPoolExecutor | None = None
        #: Reads running on the writer's thread: segments are deleted only when none is.
        self._reading = 0
        self._lifecycle = asyncio.Lock()
        self._open = False
        self._closed = False
        #: Open and taking writes: not after a failed write or fsync (:meth:`_break`).
        self._writable = False
        #: Why writes are refused since a write or an fsync failed.
        self._broken: JournalUnavailable | None = None
        #: Failed writes since the last one that succeeded, the restoring of the tail running, when
        #: the next may start (loop time), and failed attempts since the failed write.
        self._failures = 0
        self._recovery: asyncio.Task[None] | None = None
        self._recover_at = 0.0
        self._recover_attempts = 0
        self._log = EventLog(journal=str(self.path))
        #: Groups written (one ``os.write`` each) and writes they carried.
        self.commits = 0
        self.writes = 0
        #: The sealed segment whose index the last open read (0: it scanned every segment).
        self.indexed = 0

    # -- lifecycle

    async def open(self) -> None:
        async with self._lifecycle:
            if self._closed:
                raise RuntimeError(f"the journal {self.path} was closed; make a new one")
            if self._open:
                return
            writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-file")
            loop = asyncio.get_running_loop()
            try:
                empty = await loop.run_in_executor(writer, self._lock)
                if self.import_from is not None and self.import_from.exists():
                    if empty:
                        await self._import(self.import_from)
                    else:  # back to SQLite and forth again, say: its rooms are not taken twice
                        self._log.warning("journal_sqlite_not_imported", source=str(self.import_from),
                                          reason="this journal is not empty")
                await loop.run_in_executor(writer, self._load)
            except BaseException as exc:
                self._release_files()
                writer.shutdown(wait=False)
                self._log.error("journal_open_failed", error=str(exc))
                if isinstance(exc, JournalUnavailable):
                    raise
                if isinstance(exc, OSError):
                    raise JournalUnavailable(f"cannot open the journal {self.path}: {exc}") from exc
                raise
            self._writer = writer
            self._open = self._writable = True
            self._collect()  # segments left dead by the last run
            self._log.info("journal_opened", durability=self.settings.durability, segments=len(self._segments.live),
                           rooms=len(self._rooms), indexed=self.indexed)

    def _lock(self) -> bool:
        """On the writer's thread: lock the directory (made if need be); whether it holds no segment."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # flock locks belong to an open file: a second journal in this process is refused as well.
            raise JournalUnavailable(f"the journal {self.path} is in use by another process or another journal "
                                     "object (its LOCK file is locked)") from None
        return not self._segment_numbers()

    def _segment_numbers(self) -> list[int]:
        return sorted(int(p.stem) for p in self.path.glob("*.seg") if p.stem.isdigit())

    async def _import(self, source: Path) -> None:
        """The rooms of the SQLite journal ``source`` as the first segment (the directory holds none)."""
        try:
            imported = await import_sqlite(source, self._segment_path(1))
        except (sqlite3.Error, OSError, JournalUnavailable) as exc:
            raise JournalUnavailable(f"cannot import the SQLite journal {source} into {self.path}: {exc}") from exc
        self._log.info("journal_imported", source=str(source), moved_to=str(imported.moved_to),
                       rooms=imported.rooms, records=imported.records, snapshots=imported.snapshots)

    def _load(self) -> None:
        """On the writer's thread (the directory is locked): the rooms' states from the newest usable
        index (:mod:`journal.logfile_index`) and the segments after it, or from every segment; then
        the newest segment opened for appends."""
        numbers = self._segment_numbers()
        sealed = self.indexed = self._load_index(numbers) if len(numbers) > 1 else 0
        for number in numbers:
            if number > sealed:
                self._scan(number, last=number == numbers[-1])
        if sealed:
            on_disk = set(numbers)
            gone = sorted(number for number, count in self._segments.live.items() if count and number not in on_disk)
            if gone:  # a place the index gave is in a segment deleted since, and nothing after let it go
                self._log.warning("journal_index_unusable", segment=sealed,
                                  reason=f"live frames in segments that are gone: {gone}")
                self._rooms, self._segments, self.indexed = {}, Segments(), 0
                for number in numbers:
                    self._scan(number, last=number == numbers[-1])
        if numbers:
            self._segment = numbers[-1]
            self._fd = os.open(self._segment_path(self._segment), os.O_WRONLY | os.O_APPEND)
            self._size = os.fstat(self._fd).st_size
        else:
            self._start_segment(1)
            self._sync_directory()
        self._segments.open(self._segment)

    def _load_index(self, numbers: list[int]) -> int:
        """The rooms' states from the newest index of a sealed segment that reads back whole: the
        segment it was written for (0: none, every segment is to be scanned)."""
        for leftover in self.path.glob("*.idx.tmp"):  # an index write cut short
            leftover.unlink(missing_ok=True)
        for number in index_numbers(self.path):
            if number >= numbers[-1]:
                continue  # not sealed (an index of a journal whose newer segments were removed)
            try:
                index = read_index(self.path, number)
                segment = self._segment_path(number)
                if segment.exists() and segment.stat().st_size != index.size:
                    raise IndexUnusable(f"segment {number} is {segment.stat().st_size} bytes, "
                                        f"{index.size} when it was indexed")
            except (IndexUnusable, OSError) as exc:
                self._log.warning("journal_index_unusable", segment=number, reason=str(exc))
                continue
            self._rooms = index.rooms
            segments = self._segments
            segments.live.update(live_counts(index.rooms))
            for older in numbers:
                if older <= number:
                    segments.open(older)
            self._log.info("journal_index_read", segment=number, rooms=len(index.rooms))
            return number
        return 0

    def _scan(self, number: int, *, last: bool) -> None:
        path = self._segment_path(number)
        data = path.read_bytes()
        rooms, segments = self._rooms, self._segments
        segments.open(number)
        try:
            for frame in scan(data):
                state = rooms.get(frame.room)
                if state is None:
                    state = rooms[frame.room] = RoomState(frame.room)
                where = (number, frame.body_start, frame.end)
                kind = frame.kind
                if kind == _RECORD:
                    state.add_record(frame.offset, frame.epoch, where, segments)
                elif kind == _CLAIM:
                    state.claimed(frame.epoch)
                elif kind == _SNAPSHOT:
                    state.add_snapshot(frame.offset, frame.epoch, where, segments,
                                       drop=not self.settings.keep_snapshotted)
                elif kind == _FORGET:
                    state.forgot(frame.offset, segments)
                elif kind == Kind.STATE:
                    body = data[frame.body_start:frame.end]
                    state.carried(frame.epoch, frame.offset, body[:1] == _LISTED, int.from_bytes(body[1:9], "little"),
                                  segments)
                else:
                    raise Corrupt(frame.position, f"unknown frame kind {kind}")
        except Torn as torn:
            if not last:
                raise JournalUnavailable(f"the journal segment {path} is cut short at byte {torn.position} "
                                         "and is not the newest: refusing to open") from torn
            self._log.warning("journal_torn_tail_truncated", segment=str(path), position=torn.position,
                              dropped=len(data) - torn.position)
            with open(path, "r+b") as file:
                file.truncate(torn.position)
                os.fsync(file.fileno())
        except Corrupt as corrupt:
            raise JournalUnavailable(f"the journal segment {path} is corrupt at byte {corrupt.position}: "
                                     f"{corrupt}; refusing to open") from corrupt

    def _segment_path(self, number: int) -> Path:
        return self.path / f"{number:012d}.seg"

    def _start_segment(self, number: int) -> None:
        """Make segment ``number`` the one written to, headed by every room's state."""
        fd = os.open(self._segment_path(number), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
        head = b"".join(encode(Kind.STATE, state.key, state.epoch, state.last,
                               (_LISTED if state.listed else b"\x00") + state.forgotten_at.to_bytes(8, "little"))
                        for state in self._rooms.values())
        try:
            if head:
                _write_all(fd, head)
        except BaseException:
            os.close(fd)
            os.unlink(self._segment_path(number))
            raise
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._segment, self._size = fd, number, len(head)

    def _sync_directory(self) -> None:
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def close(self) -> None:
        async with self._lifecycle:
            self._closed = True
            if not self._open:
                return
            self._open = self._writable = False
            if self._recovery is not None:
                await asyncio.shield(self._recovery)
            while self._syncing is not None or self._queue:
                if self._syncing is not None:
                    await asyncio.shield(self._syncing)
                elif self._queue:
                    if self._turn is not None:
                        self._turn.cancel()
                    self._write_queued()
            writer = self._writer
            self._writer = None
            assert writer is not None
            await asyncio.get_running_loop().run_in_executor(writer, self._release_files)
            writer.shutdown(wait=False)
            self._log.info("journal_closed", commits=self.commits, writes=self.writes)

    def _release_files(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._lock_fd = -1

    # -- writes

    async def claim(self, room: str, epoch: int) -> int:
        result: int = await self._write(_CLAIM, room, epoch, b"", 0)
        return result

    async def append(self, room: str, epoch: int, body: bytes) -> int:
        result: int = await self._write(_RECORD, room, epoch, bytes(body), 0)
        return result

    async def save_snapshot(self, room: str, snapshot: Snapshot) -> None:
        await self._write(_SNAPSHOT, room, snapshot.epoch, bytes(snapshot.body), snapshot.offset)

    async def forget(self, room: str) -> None:
        await self._write(_FORGET, room, 0, b"", 0)

    def submit(self, room: str, epoch: int, body: bytes) -> asyncio.Future[int]:
        """:meth:`append` without a coroutine of its own: queued now, the future gets the offset once
        the record is written (or the error).  Past ``max_pending`` queued writes it falls back to
        :meth:`append` (which waits for a slot).  Once writes are refused (a failed write), the future
        holds the refusal: the caller fails the record as any lost write (raising here would leave it
        applied but not written)."""
        self._check_open()
        if self._broken is not None:
            self._start_recovery()
            refused: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            refused.set_exception(JournalUnavailable(str(self._broken)))
            return refused
        if self._queue_full():
            return asyncio.ensure_future(self.append(room, epoch, body))
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((_RECORD, room, epoch, bytes(body), 0, future, _FUTURE))
        self._schedule()
        return future

    def submit_then(self, room: str, epoch: int, body: bytes, then: Callable[[int | Exception], None]) -> bool:
        """:meth:`submit` with the outcome (the offset, or the exception :meth:`append` would raise)
        handed to ``then`` as soon as the record's group is written (``full``: and fsync'd), on the
        loop's thread, in queue order.  ``False`` (nothing queued) past ``max_pending`` queued writes, and
        once writes are refused (:meth:`submit` then hands the refusal over)."""
        if not self._writable:
            self._check_open()
            self._start_recovery()
            return False
        if self._queue_full():
            return False
        self._queue.append((_RECORD, room, epoch, bytes(body), 0, then, _CALLBACK))
        self._schedule()
        return True

    def append_now(self, room: str, epoch: int, body: bytes) -> int | None:
        """:meth:`append` written before this returns, on the calling (loop) thread, after whatever
        writes were queued before it: its offset.  ``None`` (nothing done) unless ``commit = "each"``
        with ``durability = "normal"``, no fsync is running and writes are not refused.

        :raises Fenced: as :meth:`append`.
        :raises JournalUnavailable: the journal is closed, or the write failed.
        """
        if not self._commit_each or self._syncing is not None:
            return None
        if not self._writable:
            self._check_open()
            self._start_recovery()
            return None  # refused: :meth:`submit` hands the refusal over
        outcome: list[int | Exception] = []
        self._queue.append((_RECORD, room, epoch, bytes(body), 0, outcome.append, _CALLBACK))
        if self._turn is not None:
            self._turn.cancel()
        self._write_queued()
        result = outcome[0]
        if isinstance(result, Exception):
            raise result
        return result

    def _queue_full(self) -> bool:
        return self._slotted >= self.settings.max_pending or len(self._queue) >= self.settings.max_pending

    async def _write(self, kind: int, room: str, epoch: int, body: bytes, offset: int) -> Any:
        if self._broken is not None:
            recovery = self._start_recovery()
            if recovery is not None:
                await asyncio.shield(recovery)
        self._check_writable()
        self._slotted += 1
        try:
            await self._slots.acquire()  # released once the write is settled
        except BaseException:
            self._slotted -= 1
            raise
        if not self._writable:
            self._release_slot()
            self._check_writable()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((kind, room, epoch, body, offset, future, _SLOT))
        self._schedule()
        return await future

    def _schedule(self) -> None:
        if self._turn is None and self._syncing is None:  # else the sync's end writes what queued up
            self._turn = asyncio.get_running_loop().call_soon(self._write_queued)

    def _write_queued(self) -> None:
        """On the loop's thread: every queued write's frame in one ``os.write``; the outcomes handed
        over then (``normal``) or once a writer thread fsync'd them (``full``)."""
        self._turn = None
        queue = self._queue
        if not queue:
            return
        self._queue = []
        if self._size >= self.settings.segment_bytes:
            try:
                self._roll()
            except OSError as exc:
                self._break(queue, exc, "starting the next segment")
                return
        rooms, segments, number = self._rooms, self._segments, self._segment
        live = segments.live
        pack_fields, pack_prefix, crc32 = FIELDS.pack, PREFIX.pack, zlib.crc32
        position = start = self._size
        frames: list[bytes] = []
        results: list[Any] = []
        #: Each touched room's state before this group (restored if the write fails).
        saved: dict[str, tuple[Any, ...]] = {}
        after: list[tuple[int, RoomState, int, int, Located]] = []  # snapshots and forgets, once written
        for kind, name, epoch, body, snap_offset, _, _ in queue:
            state = rooms.get(name)
            if state is None:
                state = rooms[name] = RoomState(name)
            if name not in saved:
                saved[name] = state.save()
            if kind != _FORGET and epoch < state.epoch:
                results.append(Fenced(name, epoch, state.epoch))
                continue
            key = state.key
            if kind == _RECORD:  # the hot path (one per relayed text): encode and add_record inlined
                offset = state.last + 1
                head = pack_fields(_RECORD, epoch, offset, len(key)) + key
                length = len(head) + len(body)
                frames.append(pack_prefix(length, crc32(body, crc32(head))))
                frames.append(head)
                frames.append(body)
                end = position + PREFIX_SIZE + length
                state.records.append((offset, epoch, number, end - len(body), end))
                live[number] += 1
                state.last = offset
                if epoch > state.epoch:
                    state.epoch = epoch
                state.listed = True
                results.append(offset)
                position = end
                continue
            elif kind == _CLAIM:
                if epoch == state.epoch:
                    results.append(Fenced(name, epoch, epoch))
                    continue
                frame = encode(_CLAIM, key, epoch, 0, b"")
                end = position + len(frame)
                results.append(state.claimed(epoch))
            elif kind == _SNAPSHOT:
                kept = state.snapshot
                if kept is not None and snap_offset < kept.offset:
                    results.append(None)
                    continue
                frame = encode(_SNAPSHOT, key, epoch, snap_offset, body)
                end = position + len(frame)
                state.epoch = epoch
                after.append((_SNAPSHOT, state, snap_offset, epoch, (number, position + HEAD_SIZE + len(key), end)))
                results.append(None)
            else:
                if state.epoch == 0 and state.last == 0 and not state.listed:
                    del rooms[name]  # unknown room: nothing to forget
                    saved.pop(name)
                    results.append(None)
                    continue
                frame = encode(_FORGET, key, state.epoch, state.last, b"")
                end = position + len(frame)
                after.append((_FORGET, state, state.last, 0, (number, position, end)))
                results.append(None)
            frames.append(frame)
            position = end
        if frames:
            try:
                _write_all(self._fd, b"".join(frames) if len(frames) > 1 else frames[0])
            except OSError as exc:
                self._undo(start, saved)
                self._break(queue, exc, "a write")
                return
            self._size = position
            if after and not self._full:
                self._apply(after)
        self.commits += 1
        self.writes += len(queue)
        if self._full and frames:
            self._sync(queue, results, start, saved, after)
        else:
            self._failures = 0
            self._settle(queue, results)
            if self._segments.dead:
                self._collect()

    def _apply(self, after: list[tuple[int, RoomState, int, int, Located]]) -> None:
        """A group's snapshots and forgets, once it is written (``full``: and fsync'd)."""
        segments = self._segments
        for kind, state, offset, epoch, where in after:
            if kind == _SNAPSHOT:
                state.add_snapshot(offset, epoch, where, segments, drop=not self.settings.keep_snapshotted)
            else:
                state.forgot(offset, segments)

    def _undo(self, start: int, saved: dict[str, tuple[Any, ...]]) -> None:
        """A failed write: the file cut back to ``start`` (what the write left of its frames is a torn
        tail, as after a crash: nothing is written after it, and the next open truncates it anyway),
        the rooms' states to ``saved``."""
        self._size = start
        try:
            os.ftruncate(self._fd, start)
        except OSError as exc:
            self._log.warning("journal_truncate_failed", error=str(exc))
        for name, state in saved.items():
            self._rooms[name].restore(state, self._segments)

    def _sync(self, queue: list[_Write], results: list[Any], start: int, saved: dict[str, tuple[Any, ...]],
              after: list[tuple[int, RoomState, int, int, Located]]) -> None:
        """``full``: fdatasync on the writer's thread, then the group's snapshots and forgets and the
        outcomes; what queues up meanwhile goes out after it.  A failed fdatasync undoes the group as a
        failed write does."""
        assert self._writer is not None
        fd = self._fd
        syncing = asyncio.get_running_loop().run_in_executor(self._writer, os.fdatasync, fd)
        self._syncing = syncing

        def done(future: asyncio.Future[Any]) -> None:
            self._syncing = None
            exc = None if future.cancelled() else future.exception()
            if exc is not None:
                # The frames are in the file but maybe not on disk (after a failed fsync the kernel may
                # have dropped them): what the rooms' states say may not survive a power cut.
                self._undo(start, saved)
                self._break(queue, exc, "an fsync")
                return
            self._failures = 0
            self._apply(after)
            self._settle(queue, results)
            self._collect()
            if self._queue:
                self._schedule()

        syncing.add_done_callback(done)

    def _break(self, queue: list[_Write], exc: BaseException, what: str) -> None:
        """A write, an fsync or a segment's start failed: the writes of ``queue`` and every write
        queued after them fail, and so does every write from now on until the tail is restored
        (:meth:`_recover`).  Going on at once would put frames after bytes whose fate is unknown (a
        frame cut short, or not on disk), where the next open could only refuse them as corruption.
        Reads go on."""
        self._writable = False
        self._failures += 1
        self._recover_attempts = 0
        delay = 0.0 if self._failures == 1 else min(_RECOVER_FIRST * 2 ** (self._failures - 2), _RECOVER_MAX)
        self._recover_at = asyncio.get_running_loop().time() + delay
        self._broken = JournalUnavailable(
            f"journal {self.path}: {what} failed ({exc}); it refuses writes until it has restored its tail")
        queued, self._queue = self._queue, []
        if self._turn is not None:
            self._turn.cancel()
            self._turn = None
        self._log.error("journal_write_failed", failed=what, writes=len(queue), queued=len(queued), error=str(exc),
                        consecutive=self._failures, recovery_in=round(delay, 3))
        reason = f"journal {self.path}: {what} failed, nothing of its group is kept: {exc}"
        self._settle(queue, [JournalUnavailable(reason) for _ in queue])
        self._settle(queued, [JournalUnavailable(str(self._broken)) for _ in queued])

    # -- recovery

    def _start_recovery(self) -> asyncio.Task[None] | None:
        """After a failed write: the restoring of the tail, started if it is due and not running."""
        if self._broken is None or not self._open:
            return None
        if self._recovery is None:
            loop = asyncio.get_running_loop()
            if loop.time() < self._recover_at:
                return None
            self._recovery = loop.create_task(self._recover())
        return self._recovery

    async def _recover(self) -> None:
        """Restore a consistent tail (:meth:`_restore_tail`, on the writer's thread) and take writes
        again; if that fails, writes stay refused and the next attempt waits (doubling)."""
        loop = asyncio.get_running_loop()
        assert self._writer is not None and self._broken is not None
        self._recover_attempts += 1
        attempt = self._recover_attempts
        try:
            try:
                dropped = await loop.run_in_executor(self._writer, self._restore_tail)
            except (OSError, JournalUnavailable, Torn, Corrupt) as exc:
                delay = min(_RECOVER_FIRST * 2 ** (attempt - 1), _RECOVER_MAX)
                self._recover_at = loop.time() + delay
                self._log.warning("journal_recovery_failed", attempt=attempt, error=str(exc), retry_in=delay)
                return
            if not self._open:
                return
            self._broken = None
            self._writable = True
            self._log.info("journal_recovered", attempt=attempt, segment=self._segment, size=self._size,
                           dropped=dropped)
            if self._queue:
                self._schedule()
            self._collect()
        finally:
            self._recovery = None

    def _restore_tail(self) -> int:
        """On the writer's thread, writes refused: a segment newer than the one written to (a start
        that failed half-way) is removed; the newest is cut back to the end of the last group written
        (what a failed write left beyond it), its frames checked, and opened again (``full``: and
        fdatasync'd, the new descriptor not carrying the old one's error).  The bytes cut away.

        :raises OSError, JournalUnavailable, Torn, Corrupt: the tail cannot be restored (yet)."""
        for number in self._segment_numbers():
            if number > self._segment:
                self._segment_path(number).unlink()
                self._log.warning("journal_partial_segment_removed", segment=number)
        path = self._segment_path(self._segment)
        fd = os.open(path, os.O_RDWR | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            if size < self._size:
                raise JournalUnavailable(f"the journal segment {path} holds {size} bytes, fewer than the {self._size} "
                                         "written to it: it was cut by something else; open the journal again")
            if size > self._size:
                os.ftruncate(fd, self._size)
            data = os.pread(fd, self._size, 0)
            if len(data) != self._size:
                raise OSError(f"read {len(data)} of the {self._size} bytes of {path}")
            for _ in scan(data):
                pass
            if self._full:
                os.fdatasync(fd)
        except BaseException:
            os.close(fd)
            raise
        old, self._fd = self._fd, fd
        if old >= 0:
            os.close(old)
        return size - self._size

    def _settle(self, queue: list[_Write], results: list[Any]) -> None:
        for entry, result in zip(queue, results):
            then, how = entry[5], entry[6]
            if how == _CALLBACK:
                try:
                    then(result)
                except Exception:  # noqa: BLE001 - one caller's failure must not keep the others waiting
                    self._log.exception("journal_then_failed")
                continue
            if not then.done():
                if isinstance(result, BaseException):
                    then.set_exception(result)
                else:
                    then.set_result(result)
            if how == _SLOT:
                self._release_slot()

    def _release_slot(self) -> None:
        self._slotted -= 1
        self._slots.release()

    # -- retention

    def _roll(self) -> None:
        """The newest segment is full: start the next one, headed by every room's state; then the
        index of the one sealed is written on the writer's thread (:mod:`journal.logfile_index`)."""
        old, size = self._segment, self._size
        if self._full:
            os.fdatasync(self._fd)
        self._start_segment(old + 1)
        self._segments.open(self._segment)  # the old one is dead now if nothing in it is live
        self._log.info("journal_segment_started", segment=self._segment, rooms=len(self._rooms))
        assert self._writer is not None
        rooms = copy_rooms(self._rooms)

        def written(future: asyncio.Future[Any]) -> None:
            exc = None if future.cancelled() else future.exception()
            if exc is not None:
                self._log.warning("journal_index_not_written", segment=old, error=str(exc))

        asyncio.get_running_loop().run_in_executor(
            self._writer, logfile_index.write_index, self.path, old, size, rooms).add_done_callback(written)

    def _collect(self) -> None:
        """Delete the older segments none of whose frames is live (not while a read runs)."""
        if self._reading or not self._segments.dead or self._writer is None or not self._writable:
            return
        dead = self._segments.take_dead()
        newest = self._segment_path(self._segment)
        paths = [self._segment_path(number) for number in dead]

        def delete() -> None:
            # The newest segment's head carries every room's state: on disk before what it replaces goes.
            # (Opened here: the journal's descriptor may be closed by a roll before this runs.)
            fd = os.open(newest, os.O_RDONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
            for path in paths:
                path.unlink(missing_ok=True)
            self._sync_directory()

        def deleted(future: asyncio.Future[None]) -> None:
            if not future.cancelled() and future.exception() is not None:
                self._log.warning("journal_segment_delete_failed", segments=dead, error=str(future.exception()))

        asyncio.get_running_loop().run_in_executor(self._writer, delete).add_done_callback(deleted)
        self._log.info("journal_segments_deleted", segments=dead)

    # -- reads

    async def replay(self, room: str, after: int = 0) -> list[JournalRecord]:
        self._check_open()
        state = self._rooms.get(room)
        if state is None:
            return []
        wanted = state.records_after(after)
        if not wanted:
            return []
        bodies = await self._read([(segment, start, end) for _, _, segment, start, end in wanted])
        return [JournalRecord(offset=record[0], epoch=record[1], body=body) for record, body in zip(wanted, bodies)]

    async def snapshot(self, room: str) -> Snapshot | None:
        self._check_open()
        state = self._rooms.get(room)
        kept = None if state is None else state.snapshot
        if kept is None:
            return None
        [body] = await self._read([kept.where])
        return Snapshot(offset=kept.offset, epoch=kept.epoch, body=body)

    async def rooms(self) -> list[str]:
        self._check_open()
        return sorted(name for name, state in self._rooms.items() if state.listed)

    async def _read(self, places: list[Located]) -> list[bytes]:
        """The bytes at ``places``, read on the writer's thread (segments stay while it runs)."""
        assert self._writer is not None
        self._reading += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._writer, self._read_places, places)
        except OSError as exc:
            self._log.warning("journal_read_failed", error=str(exc))
            raise JournalUnavailable(f"journal {self.path}: a read failed: {exc}") from exc
        finally:
            self._reading -= 1
            if self._open:
                self._collect()

    def _read_places(self, places: list[Located]) -> list[bytes]:
        fds: dict[int, int] = {}
        try:
            out = []
            for segment, start, end in places:
                fd = fds.get(segment)
                if fd is None:
                    fd = fds[segment] = os.open(self._segment_path(segment), os.O_RDONLY)
                data = os.pread(fd, end - start, start)
                if len(data) != end - start:
                    raise OSError(f"segment {segment} is shorter than its index says")
                out.append(data)
            return out
        finally:
            for fd in fds.values():
                os.close(fd)

    def _check_open(self) -> None:
        if not self._open:
            raise JournalUnavailable(f"the journal {self.path} is not open")

    def _check_writable(self) -> None:
        self._check_open()
        if self._broken is not None:
            raise JournalUnavailable(str(self._broken))


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written (a short write goes on where it stopped)."""
    written = os.write(fd, data)
    if written != len(data):
        view = memoryview(data)
        while written < len(data):
            written += os.write(fd, view[written:])
