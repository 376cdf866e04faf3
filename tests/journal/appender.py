"""A process that appends to a SQLite journal from several tasks until it is killed, printing each
offset once ``append`` has returned it: ``python -m tests.journal.appender PATH [TASKS [DURABILITY]]``
(used by the ``kill -9`` test in ``test_sqlite.py``)."""

from __future__ import annotations

import asyncio
import sys

import msgspec

from journal.settings import JournalSettings
from journal.sqlite import SqliteJournal

__all__ = ["main"]


async def _append_forever(path: str, tasks: int, durability: str) -> None:
    journal = SqliteJournal(path, msgspec.convert({"durability": durability}, JournalSettings))
    await journal.open()

    async def appender(task: int) -> None:
        room = f"room{task % 3}"
        n = 0
        while True:
            n += 1
            offset = await journal.append(room, 1, f"{task}:{n}".encode())
            sys.stdout.write(f"{room} {offset}\n")
            sys.stdout.flush()

    await asyncio.gather(*(appender(task) for task in range(tasks)))


def main() -> None:
    asyncio.run(_append_forever(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8,
                                sys.argv[3] if len(sys.argv) > 3 else "full"))


if __name__ == "__main__":
    main()
