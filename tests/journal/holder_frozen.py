"""A process that holds a room in a HolderJournal and appends to it until its appends are refused (used by
the sweeper's SIGSTOP test in ``test_holder_sweeper.py``): ``python -m tests.journal.holder_frozen URL
PREFIX ROOM DEAD_AFTER``.  Prints ``holder <stream>``, then ``ok <body> <offset>`` for each append done and
``refused <body> <error class>`` for each refused; after a few refusals it claims another room (a START in
its holder stream), prints ``claim refused <error class>`` or ``claim done``, then (claim done) appends to
that room and prints ``anew <offset>`` and ``holder <stream>`` (its holder stream now), and exits."""

from __future__ import annotations

import asyncio
import itertools
import sys

from journal.base import Fenced, JournalUnavailable
from journal.holder import HolderJournal
from journal.settings import StreamJournalSettings

__all__ = ["main"]


async def _append_until_refused(url: str, prefix: str, room: str, dead_after: float) -> None:
    settings = StreamJournalSettings(prefix=prefix, room_max_bytes=5_000_000, room_segment_bytes=1_000_000,
                                     snapshot_max_bytes=200_000, snapshot_segment_bytes=100_000,
                                     rooms_max_bytes=1_000_000, rooms_segment_bytes=500_000,
                                     holder_max_bytes=5_000_000, holder_segment_bytes=1_000_000,
                                     holder_dead_after=dead_after, holder_sweep_interval=0)
    journal = HolderJournal(url, settings, name="frozen")
    await journal.open()
    await journal.claim(room, 1)
    print("holder", journal.holder, flush=True)
    refused = 0
    for n in itertools.count():
        body = f"old{n}"
        try:
            offset = await journal.append(room, 1, body.encode())
        except (Fenced, JournalUnavailable) as exc:
            refused += 1
            print("refused", body, type(exc).__name__, flush=True)
            if refused >= 3:
                break
        else:
            print("ok", body, offset, flush=True)
        await asyncio.sleep(0.02)
    try:  # a room it never held: its START needs its holder stream
        await journal.claim(f"{room}.other", 1)
    except (Fenced, JournalUnavailable) as exc:
        print("claim refused", type(exc).__name__, flush=True)
    else:
        print("claim done", flush=True)
        print("anew", await journal.append(f"{room}.other", 1, b"anew"), flush=True)
        print("holder", journal.holder, flush=True)
    await journal.close()


def main() -> None:
    asyncio.run(_append_until_refused(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])))


if __name__ == "__main__":
    main()
