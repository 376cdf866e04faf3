"""The rooms directory of the stream journal (``<prefix>rooms``): :class:`Directory`.

One small entry per room when a journal first writes to it ("opened", before its first claim) and
one per forget ("forgotten"); :meth:`Directory.rooms` reads them all to an end marker.
"""

from __future__ import annotations

import asyncio

from .base import JournalUnavailable
from .stream_connection import BROKER_ERRORS, Connection
from .stream_fold import FORGOTTEN, OPENED
from .stream_read import read

__all__ = ["Directory"]


class Directory:
    """The rooms directory, and which rooms this journal has put there since it last saw them forgotten."""

    def __init__(self, link: Connection, holder: str | None = None) -> None:
        self._link = link
        self._listed: set[str] = set()
        #: The holder journal's holder stream, named in each "opened" entry (header ``h``): the sweeper of
        #: dead holder streams learns from them which streams exist and which rooms each one held.
        self._holder = holder

    def listed(self, room: str) -> bool:
        return room in self._listed

    async def opened(self, room: str) -> None:
        """Put ``room`` in the directory unless this journal did since it last saw it forgotten."""
        if room not in self._listed:
            await self._note(room, OPENED, {"h": self._holder} if self._holder is not None else {})
            self._listed.add(room)

    def left(self, room: str) -> None:
        """``room`` was forgotten (by this journal or, seen in its stream, by another)."""
        self._listed.discard(room)

    async def forgotten(self, room: str) -> None:
        """Record in the directory that ``room`` was forgotten."""
        await self._note(room, FORGOTTEN)

    async def rooms(self) -> list[str]:
        present: dict[str, None] = {}
        for message in await read(self._link, self._link.layout.rooms_queue, "first") or ():
            room = message.headers.get("room")
            if not isinstance(room, str):
                continue
            if message.kind == OPENED:
                present[room] = None
            elif message.kind == FORGOTTEN:
                present.pop(room, None)
        return sorted(present)

    async def _note(self, room: str, kind: str, more: dict[str, str] | None = None) -> None:
        """Add an entry to the rooms directory (before the room's first claim, after its forget)."""
        await self.note({"k": kind, "room": room, **(more or {})})

    async def note(self, headers: dict[str, str]) -> None:
        """Add an entry with these headers to the rooms directory."""
        link = self._link
        queue = link.layout.rooms_queue
        try:
            async with asyncio.timeout(link.settings.append_timeout):
                await link.ensure_declared(queue)
                await link.publish(queue, b"", dict(headers))
        except TimeoutError as exc:
            raise JournalUnavailable(f"journal: the rooms directory took longer than "
                                     f"{link.settings.append_timeout} s") from exc
        except BROKER_ERRORS as exc:
            raise JournalUnavailable(
                f"journal: the rooms directory failed, RabbitMQ at {link.where}: {exc!r}") from exc
