"""A process that appends to a journal until it is killed, printing ``room offset body`` for each
record once its outcome was handed over: ``python -m tests.journal.appender PATH [TASKS [DURABILITY
[KIND]]]`` (used by the ``kill -9`` tests in ``test_sqlite.py`` and ``test_logfile.py``).

``KIND`` ``sqlite`` (the default): ``TASKS`` tasks looping on ``append``.  ``file``: the same, plus a
callback on the event loop that queues a few records with ``submit_then`` each loop turn (as the
controller does), printing each one's offset when it is handed over.  ``file-slow-index``: as ``file``,
each index written in two halves 20 ms apart (a kill is likely to cut one short).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from journal import logfile_index
from journal.logfile import FileJournal
from journal.settings import FileJournalSettings, JournalSettings
from journal.sqlite import SqliteJournal

__all__ = ["main", "appended_until_killed"]

ROOT = Path(__file__).resolve().parents[2]


def _printed(room: str, offset: int, body: bytes) -> None:
    sys.stdout.write(f"{room} {offset} {body.decode()}\n")
    sys.stdout.flush()


async def _append_forever(path: str, tasks: int, durability: str, kind: str) -> None:
    journal: SqliteJournal | FileJournal
    if kind == "file-slow-index":
        _slow_index_writes()
        kind = "file"
    if kind == "file":
        journal = FileJournal(path, msgspec.convert({"durability": durability, "segment_bytes": 64 * 1024},
                                                    FileJournalSettings))
    else:
        journal = SqliteJournal(path, msgspec.convert({"durability": durability}, JournalSettings))
    await journal.open()

    async def appender(task: int) -> None:
        room = f"room{task % 3}"
        n = 0
        while True:
            n += 1
            body = f"{task}:{n}".encode()
            offset = await journal.append(room, 1, body)
            _printed(room, offset, body)

    def submitter(journal: FileJournal, turn: int) -> None:
        for i in range(3):
            room, body = f"room{i}", f"then:{turn}:{i}".encode()

            def then(outcome: int | Exception, room: str = room, body: bytes = body) -> None:
                if isinstance(outcome, Exception):
                    raise outcome
                _printed(room, outcome, body)

            journal.submit_then(room, 1, body, then)
        asyncio.get_running_loop().call_soon(submitter, journal, turn + 1)

    if isinstance(journal, FileJournal):
        submitter(journal, 1)
    await asyncio.gather(*(appender(task) for task in range(tasks)))


def _slow_index_writes() -> None:
    from journal.logfile_index import TMP_SUFFIX, index_path

    real = logfile_index.write_index
    written = [0]

    def slow(directory: Path, segment: int, size: int, rooms: list[logfile_index.RoomCopy]) -> Path:
        scratch = directory / "scratch"
        scratch.mkdir(exist_ok=True)
        whole = real(scratch, segment, size, rooms).read_bytes()
        # Half of it, where the real write puts it before renaming it into place; the kill comes now.
        index_path(directory, segment).with_suffix(TMP_SUFFIX).write_bytes(whole[: len(whole) // 2])
        written[0] += 1
        # The first index is finished (the test waits for a whole one too); every later one stays half
        # written until the kill (on the writer's thread: the appends go on), however late the kill comes.
        time.sleep(0.02 if written[0] == 1 else 600)
        return real(directory, segment, size, rooms)

    logfile_index.write_index = slow


async def appended_until_killed(path: Path, durability: str, kind: str, *, lines: int = 300,
                                tasks: int = 8, until: Callable[[], bool] | None = None) -> list[tuple[str, int, bytes]]:
    """Run the appender on ``path`` until it printed ``lines`` records (and ``until()`` holds, if
    given), ``kill -9`` it; every ``(room, offset, body)`` it printed in full, in the order printed."""
    child = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.journal.appender", str(path), str(tasks),
                                                 durability, kind, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    out = b""
    try:
        while out.count(b"\n") < lines or (until is not None and not until()):
            chunk = await asyncio.wait_for(child.stdout.read(65536), timeout=60)
            assert chunk, "the appender stopped before it was killed"
            out += chunk
    finally:
        child.kill()  # SIGKILL, mid-appends
    out += await child.stdout.read()
    await child.wait()
    assert child.returncode == -signal.SIGKILL
    printed = []
    for text in out.decode().splitlines(keepends=True):
        if text.endswith("\n"):  # a line cut by the kill was not printed in full
            room, offset, body = text.split()
            printed.append((room, int(offset), body.encode()))
    return printed


def main() -> None:
    asyncio.run(_append_forever(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 8,
                                sys.argv[3] if len(sys.argv) > 3 else "full", sys.argv[4] if len(sys.argv) > 4 else "sqlite"))


if __name__ == "__main__":
    main()
