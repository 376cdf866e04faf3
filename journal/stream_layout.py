"""The streams of the stream journal and their arguments: :class:`Layout`.

- ``<prefix>room.<room>``: one stream per room holding its records and its claims, in append order;
- ``<prefix>snap.<room>``: the room's snapshots, a small stream whose retention keeps only the last
  few, so the newest is found by reading a bounded amount, never the room's records;
- ``<prefix>rooms``: the directory, one small entry per claim and per forget.
- ``<prefix>holder.<name>``: with the holder journal, one per journal instance, holding the records of
  all its rooms (``<prefix>room.<room>`` then keeps only the room's claims), sized by ``holder_max_bytes``;
- ``<prefix>holders``: with the holder journal, each journal instance's signs of life ("alive" every
  quarter of ``holder_dead_after``, "closed" at its close), read by the sweepers of dead holder streams
  (:mod:`journal.holder_sweeper`); small, fixed sizes (:data:`HOLDERS_MAX_BYTES`).
"""

from __future__ import annotations

from typing import Any

from .settings import StreamJournalSettings

__all__ = ["HOLDERS_MAX_BYTES", "HOLDERS_SEGMENT_BYTES", "Layout"]

#: Retention of ``<prefix>holders``: an entry is ~100 bytes, so 20 journals noting one every 150 s fill a
#: segment in about a day; a sweeper reads only the last ``holder_dead_after`` of it (a timestamp offset).
HOLDERS_MAX_BYTES = 20_000_000
HOLDERS_SEGMENT_BYTES = 2_000_000


class Layout:
    """Stream names under ``settings.prefix``, and the sizes each kind of stream is declared with."""

    def __init__(self, settings: StreamJournalSettings) -> None:
        self.settings = settings

    @property
    def rooms_queue(self) -> str:
        return f"{self.settings.prefix}rooms"

    def room_queue(self, room: str) -> str:
        return f"{self.settings.prefix}room.{room}"

    def holder_queue(self, name: str) -> str:
        """A holder stream of the holder journal (:mod:`journal.holder`): one per journal instance."""
        return f"{self.settings.prefix}holder.{name}"

    @property
    def holders_queue(self) -> str:
        """The holder journals' signs of life (:mod:`journal.holder_sweeper`)."""
        return f"{self.settings.prefix}holders"

    def snap_queue(self, room: str) -> str:
        return f"{self.settings.prefix}snap.{room}"

    def arguments(self, queue: str) -> dict[str, Any]:
        s = self.settings
        if queue == self.rooms_queue:
            size, segment = s.rooms_max_bytes, s.rooms_segment_bytes
        elif queue == self.holders_queue:
            size, segment = HOLDERS_MAX_BYTES, HOLDERS_SEGMENT_BYTES
        elif queue.startswith(f"{s.prefix}holder."):
            size, segment = s.holder_max_bytes, s.holder_segment_bytes
        elif queue.startswith(f"{s.prefix}snap."):
            size, segment = s.snapshot_max_bytes, s.snapshot_segment_bytes
        else:
            size, segment = s.room_max_bytes, s.room_segment_bytes
        return {"x-queue-type": "stream", "x-max-length-bytes": size, "x-stream-max-segment-size-bytes": segment}
