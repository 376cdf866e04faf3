"""Deleting the streams of rooms forgotten long ago: :class:`Sweeper`.

A forgotten room's stream ends with a "forgotten" entry and would stay forever (2 open files and
~65 kB on every broker node).  Once a room has stayed forgotten for ``forgotten_retention`` seconds,
by this journal's own monotonic clock (never another machine's), the sweeper reads the room's stream
back from that entry to an end marker; only if nothing but markers follows it (a claim or a record in
between means the room lives again) does it delete the stream, then note in the rooms directory that
the room was swept, with its last epoch and offset (:class:`~journal.stream_rooms.Directory`).

Rooms come to it two ways: forgotten by this journal, and found forgotten in the rooms directory (a
journal that forgot them died before it swept them), on a pass over the directory when the sweeper
starts (a round later) and then every ``forgotten_retention``; the clock of the latter starts when the
pass found them.
At most ``sweep_batch`` rooms are swept per round (one round every quarter of ``forgotten_retention``,
at most a minute apart), one at a time.

What keeps this safe is the fencing by claim token (:mod:`journal.stream_fold`), not the read-back: a
claim published between the read-back and the delete is deleted with the stream; its claimer's tail
is cancelled by the broker, its next write goes to a stream with no claim of its (declared again) and
is refused (``Fenced``) or fails (``JournalUnavailable``), never counted in someone else's history.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiormq

from .base import JournalUnavailable
from .stream_connection import BROKER_ERRORS, Connection
from .stream_fold import FORGOTTEN, MARKER
from .stream_read import read
from .stream_rooms import Directory
from .stream_tails import Tails

__all__ = ["Sweeper"]

#: What a round may fail with: it is logged, and the next round tries again.
_SWEEP_ERRORS: tuple[type[BaseException], ...] = (JournalUnavailable, *BROKER_ERRORS)


@dataclass(slots=True)
class _Forgotten:
    #: When this journal learnt the room was forgotten (its monotonic clock).
    since: float
    #: The journal offset of the room's "forgotten" entry (``None``: not known, the stream is read whole).
    offset: int | None


class Sweeper:
    """The rooms waiting to be swept, and the background task that sweeps them."""

    def __init__(self, link: Connection, directory: Directory, tails: Tails) -> None:
        self._link = link
        self._directory = directory
        self._tails = tails
        self._waiting: dict[str, _Forgotten] = {}
        self._task: asyncio.Task[None] | None = None
        #: Rooms whose streams this journal deleted.
        self.swept = 0

    @property
    def retention(self) -> float:
        return self._link.settings.forgotten_retention

    def waiting(self) -> list[str]:
        return list(self._waiting)

    def forgotten(self, room: str, offset: int | None) -> None:
        """``room`` was forgotten now (its "forgotten" entry at ``offset``)."""
        if self.retention > 0:
            self._waiting[room] = _Forgotten(time.monotonic(), offset)

    def reopened(self, room: str) -> None:
        """This journal writes to ``room`` again: it is not swept."""
        self._waiting.pop(room, None)

    def start(self) -> None:
        if self.retention > 0 and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _run(self) -> None:
        tick = max(0.05, min(self.retention / 4, 60.0))
        scanned: float | None = None
        while True:
            await asyncio.sleep(tick)  # the first pass a round after the start, not with it
            try:
                if scanned is None or time.monotonic() - scanned >= self.retention:
                    scanned = time.monotonic()
                    await self.scan()
                await self.sweep_due()
            except _SWEEP_ERRORS as exc:
                self._link.log.warning("journal_sweep_failed", error=repr(exc))

    async def scan(self) -> None:
        """Take up the rooms the directory lists as forgotten (and not swept) that this journal does
        not wait on yet: their clock starts now."""
        now = time.monotonic()
        for room, offset in (await self._directory.forgotten_rooms()).items():
            if room not in self._waiting:
                self._waiting[room] = _Forgotten(now, offset)

    async def sweep_due(self) -> int:
        """Sweep up to ``sweep_batch`` rooms forgotten at least ``forgotten_retention`` ago; how many
        streams were deleted."""
        now = time.monotonic()
        due = [room for room, forgotten in self._waiting.items() if now - forgotten.since >= self.retention]
        deleted = 0
        for room in due[:self._link.settings.sweep_batch]:
            forgotten = self._waiting.get(room)
            if forgotten is None:
                continue
            try:
                deleted += await self._sweep(room, forgotten)
            except JournalUnavailable as exc:
                self._link.log.warning("journal_sweep_failed", room=room, error=repr(exc))
                if self._waiting.pop(room, None) is forgotten:
                    self._waiting[room] = forgotten  # tried again after the others
        return deleted

    async def _sweep(self, room: str, forgotten: _Forgotten) -> bool:
        link = self._link
        queue = link.layout.room_queue(room)
        messages = await read(link, queue, forgotten.offset - 1 if forgotten.offset else "first")
        if self._waiting.get(room) is not forgotten:
            return False  # written to by this journal meanwhile
        if messages is None:  # deleted already (another journal swept it)
            del self._waiting[room]
            return False
        entries = [message for message in messages if message.kind != MARKER]
        last = entries[-1] if entries else None
        if (last is None or last.kind != FORGOTTEN
                or (forgotten.offset is not None and (len(entries) != 1 or last.offset != forgotten.offset))):
            del self._waiting[room]  # claimed or written to since it was forgotten: it lives
            link.log.info("journal_sweep_skipped", room=room)
            return False
        self._tails.forget(room)
        try:
            async with asyncio.timeout(link.settings.append_timeout):
                await link.delete(queue)
        except aiormq.exceptions.ChannelNotFoundEntity:
            pass  # deleted meanwhile
        except TimeoutError as exc:
            raise JournalUnavailable(f"journal: deleting {queue} took longer than "
                                     f"{link.settings.append_timeout} s") from exc
        link.undeclared(queue)
        self._waiting.pop(room, None)
        await self._directory.swept(room, last.epoch, last.offset)
        self.swept += 1
        link.log.info("journal_room_swept", room=room, epoch=last.epoch, offset=last.offset)
        return True
