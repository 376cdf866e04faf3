"""The snapshots of a room in a stream of their own (``<prefix>snap.<room>``): :class:`Snapshots`.

The stream's retention keeps only the last few, so the newest is found by reading a bounded amount,
never the room's records; the one with the highest offset wins (an older one saved later is ignored).
A snapshot under an epoch older than the room's is refused (:class:`~journal.base.Fenced`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from .base import Fenced, JournalUnavailable, Snapshot
from .stream_connection import BROKER_ERRORS, Connection
from .stream_fold import SNAPSHOT
from .stream_read import read

__all__ = ["Snapshots"]


@contextlib.asynccontextmanager
async def _bounded(link: Connection, what: str) -> AsyncIterator[None]:
    """Broker work on a snapshot stream within ``append_timeout``; a failure or a timeout is
    :class:`~journal.base.JournalUnavailable` naming ``what``."""
    try:
        async with asyncio.timeout(link.settings.append_timeout):
            yield
    except TimeoutError as exc:
        raise JournalUnavailable(f"journal: {what} took longer than {link.settings.append_timeout} s") from exc
    except BROKER_ERRORS as exc:
        raise JournalUnavailable(f"journal: {what} failed, RabbitMQ at {link.where}: {exc!r}") from exc


class Snapshots:
    """Saving, finding and deleting a room's snapshots."""

    def __init__(self, link: Connection) -> None:
        self._link = link

    async def save(self, room: str, snapshot: Snapshot, current: Callable[[str], Awaitable[int]]) -> None:
        """Save ``snapshot`` unless the room's ``current`` epoch is newer (:class:`Fenced`)."""
        link = self._link
        queue = link.layout.snap_queue(room)
        async with _bounded(link, f"saving a snapshot of room {room}"):
            epoch = await current(room)
            if snapshot.epoch < epoch:
                raise Fenced(room, snapshot.epoch, epoch)
            await link.ensure_declared(queue)
            await link.publish(queue, snapshot.body, {"k": SNAPSHOT, "e": snapshot.epoch, "o": snapshot.offset})

    async def newest(self, room: str) -> Snapshot | None:
        newest: Snapshot | None = None
        for message in await read(self._link, self._link.layout.snap_queue(room), "first") or ():
            offset = message.headers.get("o")
            if message.kind != SNAPSHOT or not isinstance(offset, int):
                continue
            if newest is None or offset >= newest.offset:  # an older one saved later is ignored
                newest = Snapshot(offset=offset, epoch=message.epoch, body=message.body)
        return newest

    async def delete(self, room: str) -> None:
        """Delete the room's snapshot stream (when the room is forgotten)."""
        link = self._link
        queue = link.layout.snap_queue(room)
        async with _bounded(link, f"forgetting room {room}"):
            await link.delete(queue)
        link.undeclared(queue)
