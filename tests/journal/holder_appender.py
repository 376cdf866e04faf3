"""A process that holds a room in a HolderJournal and appends to it from several tasks until its appends
are fenced off: ``python -m tests.journal.holder_appender URL PREFIX ROOM`` (used by the SIGSTOP test in
``test_holder.py``).  Prints ``claimed``, then ``ok <body> <offset>`` for each append done and
``fenced <body>`` for each refused; exits after a few refusals."""

from __future__ import annotations

import asyncio
import itertools
import sys

from journal.base import Fenced
from journal.holder import HolderJournal
from journal.settings import StreamJournalSettings

__all__ = ["main"]


async def _append_until_fenced(url: str, prefix: str, room: str) -> None:
    settings = StreamJournalSettings(prefix=prefix, room_max_bytes=5_000_000, room_segment_bytes=1_000_000,
                                     snapshot_max_bytes=200_000, snapshot_segment_bytes=100_000,
                                     rooms_max_bytes=1_000_000, rooms_segment_bytes=500_000)
    journal = HolderJournal(url, settings, name="appender")
    await journal.open()
    await journal.claim(room, 1)
    print("claimed", flush=True)
    counter = itertools.count()
    refused = 0

    async def appender() -> None:
        nonlocal refused
        while refused < 3:
            body = f"old{next(counter)}"
            try:
                offset = await journal.append(room, 1, body.encode())
            except Fenced:
                refused += 1
                print("fenced", body, flush=True)
            else:
                print("ok", body, offset, flush=True)

    await asyncio.gather(*(appender() for _ in range(4)))
    await journal.close()


def main() -> None:
    asyncio.run(_append_until_fenced(sys.argv[1], sys.argv[2], sys.argv[3]))


if __name__ == "__main__":
    main()
