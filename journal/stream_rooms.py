"""The rooms directory of the stream journal (``<prefix>rooms``): :class:`Directory`.

One small entry per room when a journal first writes to it ("opened", before its first claim), one
per forget ("forgotten", with the room's epoch ``e`` and the offset ``o`` of its "forgotten" entry) and
one per sweep ("swept", the stream deleted: ``e`` and ``o`` the room's last epoch and offset);
:meth:`Directory.rooms` reads them all to an end marker.  The directory is read whole, so its own
retention (``rooms_max_bytes``) bounds it: entries older than that are dropped by the broker, which
loses nothing once the room was swept (or forgotten), and loses a live room's entry only if it was
opened longer ago than the whole directory holds (~100 bytes per entry).

The epochs of swept rooms this journal learnt (its own sweeps, its reads of the directory) are kept:
a claim of such a room on a stream that does not know that epoch writes a "continued" entry first, so
the room's epoch goes on above it (best effort: a journal that never read the swept entry, or learnt
more than 100,000 since, starts the recreated stream's epochs from 0, which fencing by claim token makes
safe).
"""

from __future__ import annotations

import asyncio

from .base import JournalUnavailable
from .stream_connection import BROKER_ERRORS, Connection
from .stream_fold import FORGOTTEN, OPENED, SWEPT
from .stream_read import read

__all__ = ["Directory"]

#: Swept rooms whose last epoch a journal keeps (the most recently learnt).
_SWEPT_KEPT = 100_000


class Directory:
    """The rooms directory, and which rooms this journal has put there since it last saw them forgotten."""

    def __init__(self, link: Connection) -> None:
        self._link = link
        self._listed: set[str] = set()
        #: The last epoch of each swept room this journal knows of (the ``_SWEPT_KEPT`` most recently learnt).
        self._swept: dict[str, int] = {}

    def listed(self, room: str) -> bool:
        return room in self._listed

    async def opened(self, room: str) -> None:
        """Put ``room`` in the directory unless this journal did since it last saw it forgotten."""
        if room not in self._listed:
            await self._note(room, OPENED)
            self._listed.add(room)

    def left(self, room: str) -> None:
        """``room`` was forgotten (by this journal or, seen in its stream, by another)."""
        self._listed.discard(room)

    async def forgotten(self, room: str, epoch: int, offset: int) -> None:
        """Record in the directory that ``room`` was forgotten (its "forgotten" entry at ``offset``)."""
        await self._note(room, FORGOTTEN, {"e": epoch, "o": offset})

    async def swept(self, room: str, epoch: int, offset: int) -> None:
        """Record in the directory that the stream of ``room`` was deleted, its last epoch and offset."""
        self._learnt(room, epoch)
        await self._note(room, SWEPT, {"e": epoch, "o": offset})

    def swept_epoch(self, room: str) -> int:
        """The last epoch of ``room`` before its stream was swept, if this journal knows it (else 0)."""
        return self._swept.get(room, 0)

    def _learnt(self, room: str, epoch: int) -> None:
        self._swept[room] = max(epoch, self._swept.pop(room, 0))
        if len(self._swept) > _SWEPT_KEPT:
            del self._swept[next(iter(self._swept))]

    async def _last_entries(self) -> dict[str, tuple[str, int | None]]:
        """Each room's last entry in the directory: its kind, and the offset it names (if any)."""
        last: dict[str, tuple[str, int | None]] = {}
        for message in await read(self._link, self._link.layout.rooms_queue, "first") or ():
            room = message.headers.get("room")
            if not isinstance(room, str) or message.kind not in (OPENED, FORGOTTEN, SWEPT):
                continue
            offset = message.headers.get("o")
            last[room] = (message.kind, offset if isinstance(offset, int) else None)
            if message.kind == SWEPT:
                self._learnt(room, message.epoch)
        return last

    async def rooms(self) -> list[str]:
        return sorted(room for room, (kind, _) in (await self._last_entries()).items() if kind == OPENED)

    async def forgotten_rooms(self) -> dict[str, int | None]:
        """Rooms whose last entry says they were forgotten (not swept since), with the offset of their
        "forgotten" entry when the directory has it."""
        return {room: offset for room, (kind, offset) in (await self._last_entries()).items() if kind == FORGOTTEN}

    async def _note(self, room: str, kind: str, more: dict[str, int] | None = None) -> None:
        """Add an entry to the rooms directory (before the room's first claim, after its forget)."""
        link = self._link
        queue = link.layout.rooms_queue
        try:
            async with asyncio.timeout(link.settings.append_timeout):
                await link.ensure_declared(queue)
                await link.publish(queue, b"", {"k": kind, "room": room, **(more or {})})
        except TimeoutError as exc:
            raise JournalUnavailable(f"journal: the rooms directory took longer than "
                                     f"{link.settings.append_timeout} s") from exc
        except BROKER_ERRORS as exc:
            raise JournalUnavailable(
                f"journal: the rooms directory failed, RabbitMQ at {link.where}: {exc!r}") from exc
