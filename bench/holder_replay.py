"""Holder journal: a dead holder's rooms taken over together, from a long holder stream.

On one throwaway RabbitMQ node (or ``--broker``), a holder journal (``journal.kind = "holder"``) claims
``--rooms`` rooms; then its holder stream gets ``--messages`` messages of ``--entries`` records each,
published as its own writer would (pipelined; the journal's tail reads them back and counts them as its
records).  The rooms are drawn with weights: ``--busy`` of them share all but ``--quiet-share`` of the
records, the others are quiet; the rooms are claimed one after the other along the first half of the stream.  A snapshot of a room is saved every ``--snapshot-every`` of its records (as
the controller's ``snapshot_every`` does), and, where the variant has them, whenever the journal says one is
due (``holder_snapshot_after = --after``; the controller's answer to ``watch_snapshots``).  Then the holder
is closed (dead: nothing fenced it) and a fresh journal recovers every room at once, as controllers taking
them over do: the newest snapshot, the replay after it, a claim; ``--concurrency`` at a time (the cluster
manager's ``failover_concurrency``, 16 by default, hands a dead controller's rooms over so many at once).

Measured per variant: the time until the last room is recovered, the holder messages the replays read (the
journal's ``replay_reads``), CPU seconds of this process and of the broker during the recovery.  Variants,
interleaved within each repetition (the order reversed every other one), each on a fresh prefix:

- ``phase1``: no shared read (``holder_replay_share_bytes = 0``), no forced snapshot (``holder_snapshot_after``
  at its maximum): the holder journal before this change;
- ``shared``: the shared read only;
- ``snapshots``: the forced snapshots only;
- ``both``: the defaults (both).

Run: ``python -m bench holder-replay [--rooms 25] [--messages 40000] [--after 5000] [--reps 3]``
(``--after``: ``holder_snapshot_after`` of the variants with forced snapshots; its default by default).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time
import uuid
from typing import Any

from bench.options import THROWAWAY_BROKER, add_run_options, parse_options, scenario_parser
from bench.proc import cpu_seconds
from bench.report import exit_status, git_commit, machine, median, publish, today
from bench.servers import Broker, broker as open_broker
from journal.base import Snapshot
from journal.holder import HolderJournal
from journal.holder_entries import HOLDER, RECORD, encode
from journal.settings import StreamJournalSettings

__all__ = ["main"]

NAME = "holder-replay"
VARIANTS = ("phase1", "shared", "snapshots", "both")
_STATE = bytes(2000)  # a room's snapshot body (its size only matters)
_RECORD = bytes(150)


def _settings(prefix: str, variant: str, after: int) -> StreamJournalSettings:
    shared = variant in ("shared", "both")
    forced = variant in ("snapshots", "both")
    return StreamJournalSettings(prefix=prefix, holder_snapshot_after=after if forced else 10_000_000,
                                 holder_replay_share_bytes=64_000_000 if shared else 0)


class _Run:
    """What one variant's recovery measured."""

    def __init__(self, variant: str, seconds: float, reads: int, cpu: float, broker_cpu: float, records: int,
                 snapshots: int, passes: str, failed: str = "") -> None:
        self.variant, self.seconds, self.reads, self.cpu, self.broker_cpu = variant, seconds, reads, cpu, broker_cpu
        self.records, self.snapshots, self.passes, self.failed = records, snapshots, passes, failed


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            total += cpu_seconds(pid)
        except OSError:  # a short-lived child of the broker's
            pass
    return total


async def _fill(holder: HolderJournal, args: argparse.Namespace, rooms: list[str]) -> int:
    """The dead holder's life: its rooms claimed, ``--messages`` holder messages; the snapshots it saved."""
    rng = random.Random(1)
    busy = rooms[:args.busy]
    counts = dict.fromkeys(rooms, 0)
    saves: list[asyncio.Future[None]] = []
    holdings = holder._holdings  # the bench stands in for the controller: it snapshots at the last record

    def save(room: str) -> None:
        last = holdings[room].last
        if last:
            saves.append(asyncio.ensure_future(holder.save_snapshot(room, Snapshot(offset=last, epoch=1, body=_STATE))))

    holder.watch_snapshots(save)
    link = holder._link
    due: set[str] = set()
    first: set[str] = set()
    chunk = 100
    chunks = -(-args.messages // chunk)
    # the rooms are claimed along the first half of the stream (busy ones first): each at its own phase
    claim_at = {room: n * chunks // (2 * len(rooms)) for n, room in enumerate(rooms)}
    held_busy: list[str] = []
    held_quiet: list[str] = []
    for c in range(chunks):
        for room in rooms:
            if claim_at[room] == c:
                await holder.claim(room, 1)
                (held_busy if room in busy else held_quiet).append(room)
        bodies = []
        for _ in range(min(chunk, args.messages - c * chunk)):
            entries: list[tuple[int, str, int, bytes]] = []
            for _ in range(args.entries):
                room = (rng.choice(held_quiet) if held_quiet and rng.random() < args.quiet_share
                        else rng.choice(held_busy))
                entries.append((RECORD, room, 1, _RECORD))
                counts[room] += 1
                if counts[room] % args.snapshot_every == 0:
                    due.add(room)
            bodies.append(encode(entries))
        await asyncio.gather(*(link.publish(holder.holder, body, {"k": HOLDER}) for body in bodies))
        # read back by its tail (an append goes through it): the rooms' last records are known
        await holder.append(held_busy[0], 1, _RECORD)
        # every room gets a first snapshot with its first records: concurrent reads of missing snapshot streams
        # (a passive declare the broker refuses, closing the channel) make the connection fail under aiormq
        # 7.2.4 ("second 'channel.open' seen"), which would end the recovery of every variant alike
        due.update(room for room in held_busy + held_quiet if counts[room] and room not in first)
        first.update(due)
        for room in due:
            save(room)
        due.clear()
    await asyncio.gather(*saves)
    return len(saves)


async def _variant(broker: Broker, args: argparse.Namespace, variant: str) -> _Run:
    prefix = f"hb{uuid.uuid4().hex[:8]}."
    settings = _settings(prefix, variant, args.after)
    rooms = [f"room{n}" for n in range(args.rooms)]
    holder = HolderJournal(broker.url, settings, name="dead")
    await holder.open()
    filling = time.perf_counter()
    try:
        snapshots = await _fill(holder, args, rooms)
    finally:
        await holder.close()
    print(f"  {variant}: filled in {time.perf_counter() - filling:.1f} s", flush=True)
    taker = HolderJournal(broker.url, settings, name="taker")
    await taker.open()
    try:
        await taker.rooms()  # connected, warm

        slots = asyncio.Semaphore(args.concurrency)

        async def recover(room: str) -> int:
            async with slots:
                return await recovered(room)

        async def recovered(room: str) -> int:
            snapshot = await taker.snapshot(room)
            records = await taker.replay(room, snapshot.offset if snapshot is not None else 0)
            await taker.claim(room, 2)
            return len(records)

        pids = broker.pids
        broker_before = _cpu(pids)
        cpu_before = time.process_time()
        started = time.perf_counter()
        failed = ""
        try:
            replayed = await asyncio.gather(*(recover(room) for room in rooms))
        except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - a recovery that fails is an outcome too
            # (aiormq raises CancelledError into a read whose channel the broker closed)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            failed, replayed = repr(exc)[:160], []
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
        broker_cpu = _cpu(pids) - broker_before
        reads = taker._reads
        return _Run(variant, seconds, taker.replay_reads, cpu, broker_cpu, sum(replayed), snapshots,
                    f"{reads.started}/{reads.extended}/{reads.alone}", failed)
    finally:
        await taker.close()


async def _bench(args: argparse.Namespace) -> int:
    runs: list[_Run] = []
    load_before = os.getloadavg()
    async with open_broker(args.broker) as broker:
        for rep in range(args.reps):
            order = VARIANTS if rep % 2 == 0 else tuple(reversed(VARIANTS))
            for variant in order:
                run = await _variant(broker, args, variant)
                runs.append(run)
                print(f"rep {rep + 1} {variant}: {run.seconds:.3f} s, {run.reads:,} messages read, cpu {run.cpu:.2f} s, "
                      f"broker cpu {run.broker_cpu:.2f} s, {run.records:,} records replayed, {run.snapshots} snapshots "
                      f"saved, passes/extensions/alone {run.passes}, load {os.getloadavg()[0]:.1f}"
                      + (f", FAILED after {run.seconds:.1f} s: {run.failed}" if run.failed else ""), flush=True)
    load_after = os.getloadavg()
    lines = [
        f"## {NAME}",
        "",
        f"A dead holder's {args.rooms} rooms recovered by a fresh holder journal, {args.concurrency} at a time (newest",
        f"snapshot, replay, claim) from a holder stream of {args.messages:,} messages of {args.entries} records; {args.busy} busy rooms,",
        f"the others sharing {args.quiet_share:.0%} of the records; a snapshot every {args.snapshot_every:,} records of a",
        f"room, and in `snapshots` / `both` when the journal says one is due (`holder_snapshot_after` = {args.after:,}).",
        f"{args.reps} repetitions, the variants interleaved (`bench/holder_replay.py`).",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}; load average (1/5/15 min) before "
        f"{load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, after {load_after[0]:.1f}/{load_after[1]:.1f}/"
        f"{load_after[2]:.1f}",
        "",
        "| variant | recovery s, per rep (median) | holder messages read (median) | bench CPU s (median) | "
        "broker CPU s (median) |",
        "|---|---|---:|---:|---:|",
    ]
    for variant in VARIANTS:
        mine = [run for run in runs if run.variant == variant]
        lines.append(f"| {variant} | {', '.join(f'{run.seconds:.2f}' + (' failed' if run.failed else '') for run in mine)} "
                     f"({median([run.seconds for run in mine]):.2f}) | {median([run.reads for run in mine]):,.0f} | "
                     f"{median([run.cpu for run in mine]):.2f} | {median([run.broker_cpu for run in mine]):.2f} |")
    lines += ["", "`failed`: that recovery ended with an error; its messages read and CPU are those until then."]
    publish(NAME, "\n".join(lines), args.tiny)
    return exit_status(True, args.tiny, bool(runs))


def main(argv: list[str] | None = None) -> int:
    parser = scenario_parser(NAME, __doc__)
    parser.add_argument("--rooms", type=int, default=25)
    parser.add_argument("--messages", type=int, default=40_000)
    parser.add_argument("--entries", type=int, default=3, help="records per holder message")
    parser.add_argument("--busy", type=int, default=5)
    parser.add_argument("--quiet-share", type=float, default=0.02)
    parser.add_argument("--snapshot-every", type=int, default=1000)
    parser.add_argument("--after", type=int, default=StreamJournalSettings().holder_snapshot_after)
    parser.add_argument("--concurrency", type=int, default=16,
                        help="rooms recovering at once (the cluster manager's failover_concurrency)")
    add_run_options(parser, reps=3, broker=THROWAWAY_BROKER)
    args: Any = parse_options(parser, argv, tiny={"rooms": 5, "messages": 2000, "busy": 2, "after": 500,
                                                   "snapshot_every": 200, "reps": 1})
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    sys.exit(main())
