"""Benchmark: the embedded journal (SQLite WAL, durable appends) against an append-only file with fsync.

Both stores run the same workloads in the same process, on the same disk, each with one writer
thread and group commit (appends that arrive while a commit is in progress go into the next one):

- sequential appends, one at a time: latency p50/p99 and appends per second;
- 1, 10 and 100 tasks appending at once for ``--duration`` seconds: appends per second and records per
  commit, and for SQLite the same with ``max_batch=1`` (one transaction per append: no group commit);
- replay of one room's 100,000 records among as many of other rooms' records.

The append-only file is a minimal prototype that lives only in this file: length-prefixed frames,
``fdatasync`` per group, offsets are byte positions, replay scans the whole file (it has no index,
no fencing table, no snapshots, no retention).  Every figure is the median of ``--reps`` runs.

Run ``python -m bench.journal_local`` (or ``python -m bench journal-local``); ``--tiny`` runs a very
small size quickly and does not write ``bench/RESULTS.md``.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and not __package__:  # `python bench/journal_local.py`: import the package
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))

import argparse
import asyncio
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench import report
from journal import JournalRecord
from journal.settings import JournalSettings
from journal.sqlite import SqliteJournal

__all__ = ["main", "FileLog"]

NAME = "journal-local"
BODY = bytes(200)  # a typical encoded room event
CONCURRENCY = (1, 10, 100)
REPLAY_RECORDS = 100_000


class _Store(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def append(self, room: str, epoch: int, body: bytes) -> int: ...
    async def replay(self, room: str, after: int = 0) -> list[JournalRecord]: ...


# --------------------------------------------------------------------------- append-only file prototype

_HEADER = struct.Struct("<IQH")  # body length, epoch, room length; then room, then body


class FileLog:
    """Records appended to one file and ``fdatasync``'d per group; replay scans the file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.commits = 0
        self.writes = 0
        self._fd = -1
        self._end = 0
        self._queue: list[tuple[bytes, asyncio.Future[int]]] = []
        self._committer: asyncio.Task[None] | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="filelog-writer")

    async def open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._end = os.fstat(self._fd).st_size

    async def close(self) -> None:
        while self._committer is not None:
            await self._committer
        os.close(self._fd)
        self._writer.shutdown()

    async def append(self, room: str, epoch: int, body: bytes) -> int:
        name = room.encode()
        frame = _HEADER.pack(len(body), epoch, len(name)) + name + body
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.append((frame, future))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_queued())
        return await future

    async def _commit_queued(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                group, self._queue = self._queue, []
                offsets = await loop.run_in_executor(self._writer, self._commit, [frame for frame, _ in group])
                for (_, future), offset in zip(group, offsets):
                    future.set_result(offset)
        finally:
            self._committer = None

    def _commit(self, frames: list[bytes]) -> list[int]:
        offsets = []
        for frame in frames:
            offsets.append(self._end + 1)  # positive, like a journal offset
            self._end += len(frame)
        os.write(self._fd, b"".join(frames))
        os.fdatasync(self._fd)
        self.commits += 1
        self.writes += len(frames)
        return offsets

    async def replay(self, room: str, after: int = 0) -> list[JournalRecord]:
        return await asyncio.get_running_loop().run_in_executor(self._writer, self._scan, room.encode(), after)

    def _scan(self, room: bytes, after: int) -> list[JournalRecord]:
        data = self.path.read_bytes()
        out, at, size = [], 0, _HEADER.size
        while at + size <= len(data):
            length, epoch, name_length = _HEADER.unpack_from(data, at)
            start = at + size + name_length
            if at + 1 > after and data[at + size:start] == room:
                out.append(JournalRecord(offset=at + 1, epoch=epoch, body=data[start:start + length]))
            at = start + length
        return out


# --------------------------------------------------------------------------- workloads


@dataclass
class _Appends:
    per_second: float
    per_commit: float
    p50_ms: float = 0.0
    p99_ms: float = 0.0


Make = Callable[[Path], "_Counted"]


class _Counted(_Store, Protocol):
    commits: int
    writes: int


async def _sequential(store: _Counted, duration: float) -> _Appends:
    latencies: list[float] = []
    start = time.perf_counter()
    while (now := time.perf_counter()) - start < duration:
        await store.append("room", 1, BODY)
        latencies.append(time.perf_counter() - now)
    elapsed = time.perf_counter() - start
    return _Appends(len(latencies) / elapsed, 1.0, report.percentile(latencies, 0.5) * 1000,
                    report.percentile(latencies, 0.99) * 1000)


async def _concurrent(store: _Counted, tasks: int, duration: float) -> _Appends:
    commits, writes = store.commits, store.writes
    deadline = time.perf_counter() + duration
    start = time.perf_counter()

    async def appender(task: int) -> None:
        room = f"room{task % 10}"
        while time.perf_counter() < deadline:
            await store.append(room, 1, BODY)

    await asyncio.gather(*(appender(task) for task in range(tasks)))
    elapsed = time.perf_counter() - start
    done = store.writes - writes
    return _Appends(done / elapsed, done / max(1, store.commits - commits))


async def _replay(store: _Store, records: int, reps: int) -> list[float]:
    for first in range(0, records, 500):  # one room's records among as many of other rooms'
        await asyncio.gather(*(append for i in range(first, min(records, first + 500))
                               for append in (store.append("target", 1, BODY), store.append(f"other{i % 50}", 1, BODY))))
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        got = await store.replay("target")
        times.append(time.perf_counter() - start)
        assert len(got) == records, (len(got), records)
    return times


async def _fresh(make: Make, work: Callable[[_Counted], Awaitable[_Appends]]) -> _Appends:
    with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
        store = make(Path(tmp))
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()


def _sqlite(durability: str = "full", max_batch: int = 1000) -> Make:
    settings = JournalSettings(durability="full" if durability == "full" else "off", max_batch=max_batch)
    return lambda tmp: SqliteJournal(tmp / "journal.sqlite3", settings)


def _file(tmp: Path) -> _Counted:
    return FileLog(tmp / "journal.log")


def _median(runs: list[_Appends]) -> _Appends:
    return _Appends(report.median([r.per_second for r in runs]), report.median([r.per_commit for r in runs]),
                    report.median([r.p50_ms for r in runs]), report.median([r.p99_ms for r in runs]))


# --------------------------------------------------------------------------- running and reporting


@dataclass
class _Results:
    sequential: dict[str, _Appends]
    concurrent: dict[tuple[str, int], _Appends]
    replay_ms: dict[str, float]
    load: tuple[float, float] = (0.0, 0.0)  # the machine's 1-minute load average before and after


STORES: dict[str, Make] = {
    "SQLite WAL, group commit": _sqlite(),
    "SQLite WAL, one commit per append": _sqlite(max_batch=1),
    "append-only file + fdatasync": _file,
}


async def _run(reps: int, duration: float, replay_records: int) -> _Results:
    # Every rep runs every case once, in turn, so a burst of load from elsewhere on the machine hits
    # the stores alike rather than one store's whole series.
    sequential_names = ("SQLite WAL, group commit", "append-only file + fdatasync")
    cases: list[tuple[str, int, Make]] = [(name, 0, STORES[name]) for name in sequential_names]
    cases += [(name, tasks, make) for tasks in CONCURRENCY for name, make in STORES.items()]
    runs: dict[tuple[str, int], list[_Appends]] = {(name, tasks): [] for name, tasks, _ in cases}
    for _ in range(reps):
        for name, tasks, make in cases:
            work = (lambda s: _sequential(s, duration)) if tasks == 0 else (lambda s: _concurrent(s, tasks, duration))
            runs[(name, tasks)].append(await _fresh(make, work))
    sequential = {name: _median(runs[(name, 0)]) for name in sequential_names}
    concurrent = {(name, tasks): _median(runs[(name, tasks)]) for name, tasks, _ in cases if tasks}
    for name, r in sequential.items():
        print(f"sequential  {name:<36} {r.per_second:>8.0f}/s  p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms")
    for (name, tasks), r in concurrent.items():
        print(f"{tasks:>3} tasks   {name:<36} {r.per_second:>8.0f}/s  {r.per_commit:.1f} per commit")
    replay_ms = {}
    for name, make in (("SQLite WAL", _sqlite("off")), ("append-only file", _file)):
        with tempfile.TemporaryDirectory(prefix="bench-journal-") as tmp:
            store = make(Path(tmp))
            await store.open()
            try:
                replay_ms[name] = report.median(await _replay(store, replay_records, reps)) * 1000
            finally:
                await store.close()
        print(f"replay      {name:<36} {replay_ms[name]:.0f} ms for {replay_records:,} records", flush=True)
    return _Results(sequential, concurrent, replay_ms)


def _section(results: _Results, reps: int, duration: float, replay_records: int) -> str:
    lines = [
        f"## {NAME}",
        "",
        "The embedded journal (`journal/sqlite.py`: SQLite WAL, `synchronous=FULL`, one writer thread, group",
        "commit) against a minimal append-only file with `fdatasync` per group (`bench/journal_local.py`).",
        "",
        f"- date: {report.today()}",
        f"- commit: {report.git_commit()}",
        f"- machine: {report.machine()}; files in the system temp directory (same disk as the checkout)",
        f"- records of {len(BODY)} bytes; {duration:g} s per run; median of {reps} runs, the cases taking turns",
        f"- load average (1 min) {results.load[0]:.1f} before, {results.load[1]:.1f} after: the machine is shared",
        "",
        "Sequential appends (one at a time, each durable before the next):",
        "",
        "| store | appends/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
    ]
    for name, r in results.sequential.items():
        lines.append(f"| {name} | {r.per_second:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} |")
    lines += ["", "Concurrent appenders (10 rooms), durable appends per second (records per commit):", "",
              "| store | " + " | ".join(f"{t} task{'s' if t > 1 else ''}" for t in CONCURRENCY) + " |",
              "|---|" + "---:|" * len(CONCURRENCY)]
    for name in STORES:
        cells = [results.concurrent[(name, t)] for t in CONCURRENCY]
        lines.append(f"| {name} | " + " | ".join(f"{c.per_second:,.0f} ({c.per_commit:.1f})" for c in cells) + " |")
    lines += ["", f"Replay of one room's {replay_records:,} records among {replay_records:,} of 50 other rooms:", ""]
    for name, ms in results.replay_ms.items():
        lines.append(f"- {name}: {ms:,.0f} ms")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the figures; record them in ``bench/RESULTS.md`` unless ``--tiny``."""
    parser = argparse.ArgumentParser(prog=f"bench {NAME}", description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="runs per figure (the median is reported)")
    parser.add_argument("--duration", type=float, default=1.5, help="seconds per append run")
    parser.add_argument("--replay-records", type=int, default=REPLAY_RECORDS)
    parser.add_argument("--broker", default="", help=argparse.SUPPRESS)  # taken for `bench all`, not used
    parser.add_argument("--tiny", action="store_true", help="a very short run that records nothing")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.tiny:
        args.reps, args.duration, args.replay_records = 1, 0.05, 200
    before = os.getloadavg()[0]
    results = asyncio.run(_run(args.reps, args.duration, args.replay_records))
    results.load = (before, os.getloadavg()[0])
    report.publish(NAME, _section(results, args.reps, args.duration, args.replay_records), args.tiny)
    return 0


if __name__ == "__main__":
    sys.exit(main())
