"""Rebuild a big room from the journal: 1,000 participants, 100,000 journaled events.

A room is driven through the room core (``conference_controller.machine``) as a busy controller
would: 1,000 joins, then texts — to everyone and to one participant —, acks from each participant's
portal, holds and resumes, one journal record per command, appended to each of the embedded server's
journals on local disk (``--journals``: ``sqlite``, with ``durability = off`` while filling it, which
changes nothing of the reading; ``file``, the append-only file journal), with a snapshot every
``--snapshot-every`` records as the controller saves them.  Measured: what a controller taking the room
over does before it can serve it — open the journal, read the newest snapshot and decode it, read the
records after it, decode and apply them — and, for comparison, the same from the first record with no
snapshot.  Medians of ``--reps`` rebuilds, each from a freshly opened journal, the kinds interleaved.

Run: ``python -m bench replay [--participants 1000] [--events 100000] [--snapshot-every 1000]
[--journals sqlite,file]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

import msgspec

from bench.options import add_run_options, parse_options, scenario_parser
from bench.report import exit_status, git_commit, machine, median, publish, today
from conference_controller import machine as core
from conference_controller.events import Event, decode_events, encode_events
from contracts.controller import ParticipantInit
from contracts.rooms import RoomConfig
from conference_controller.state import Limits, RoomState
from journal import Journal, Snapshot
from journal.logfile import FileJournal
from journal.settings import JournalSettings
from journal.sqlite import SqliteJournal

__all__ = ["main"]

GOAL_MS = 250.0
ROOM = "big-room"
#: The journal kinds measured: how each is made over a path, to fill it and to read it.
KINDS = ("sqlite", "file")
_encode_state = msgspec.msgpack.Encoder()
_decode_state = msgspec.msgpack.Decoder(RoomState)


def _commands(state: RoomState, participants: int, events: int, rng: random.Random) -> list[list[Event]]:
    """The records of a busy room: joins, then texts, acks, holds and resumes until ``events`` events."""
    at = 0.0
    records: list[list[Event]] = []
    config = msgspec.convert({"id": ROOM, "roles": [{"role": "presenter"}]}, RoomConfig)
    records.append(core.decide_open(ROOM, config, Limits(), 1, "controller-1"))
    core.apply_all(state, records[-1])
    ids = [f"p{n:04d}" for n in range(participants)]
    count = 1
    for pid in ids:
        record = core.decide_join(state, ParticipantInit(id=pid, user=pid, role="presenter", portal="portal-1"),
                                  f"ticket-{pid}", True, at)
        core.apply_all(state, record)
        records.append(record)
        count += len(record)
        if len(state.participants) % 50 == 0:  # portals ack what they delivered, in batches
            acks = [e for p in list(state.participants.values())
                    for e in core.decide_ack(state, p.id, p.outbox.last_seq, p.portal, by_client=True)]
            core.apply_all(state, acks)
            records.append(acks)
            count += len(acks)
    tickets = {pid: f"ticket-{pid}" for pid in ids}
    while count < events:
        at += 0.01
        roll = rng.random()
        sender = rng.choice(ids)
        if roll < 0.02:
            record = core.decide_text(state, sender, "all", "to everyone", at)
        elif roll < 0.80:
            record = core.decide_text(state, sender, rng.choice(ids), "hello", at)
        elif roll < 0.97:
            batch: list[Event] = []
            for pid in rng.sample(ids, 20):
                p = state.participants[pid]
                batch += core.decide_ack(state, pid, p.outbox.last_seq, p.portal, by_client=True)
            record = batch
        elif roll < 0.985:
            record = core.decide_hold(state, sender, state.participants[sender].portal, at)
        else:
            held = state.participants[sender]
            record = []
            if not held.connected and held.hold_deadline is not None and at < held.hold_deadline:
                new = f"{tickets[sender]}+"
                record = core.decide_resume(state, sender, tickets[sender], new, "portal-2", None, None, at)
                tickets[sender] = new
        if record:
            core.apply_all(state, record)
            records.append(record)
            count += len(record)
    return records


def _journal(kind: str, path: Path, *, filling: bool = False) -> Journal:
    if kind == "file":
        return FileJournal(path)
    return SqliteJournal(path, JournalSettings(durability="off") if filling else None)


async def _fill(kind: str, path: Path, records: list[list[Event]], snapshot_every: int, states: list[bytes]) -> int:
    journal = _journal(kind, path, filling=True)
    await journal.open()
    await journal.claim(ROOM, 1)
    offset = 0
    for index, record in enumerate(records):
        offset = await journal.append(ROOM, 1, encode_events(record))
        if snapshot_every and (index + 1) % snapshot_every == 0:
            await journal.save_snapshot(ROOM, Snapshot(offset=offset, epoch=1, body=states[index]))
    await journal.close()
    return offset


async def _rebuild(kind: str, path: Path, use_snapshot: bool) -> tuple[float, RoomState, int]:
    """Seconds from opening the journal to the state rebuilt; the state and the records replayed."""
    start = time.perf_counter()
    journal = _journal(kind, path)
    await journal.open()
    snapshot = await journal.snapshot(ROOM) if use_snapshot else None
    state = core.new_room(ROOM) if snapshot is None else _decode_state.decode(snapshot.body)
    records = await journal.replay(ROOM, snapshot.offset if snapshot is not None else 0)
    for record in records:
        core.apply_all(state, decode_events(record.body))
    elapsed = time.perf_counter() - start
    await journal.close()
    return elapsed, state, len(records)


async def _bench(args: argparse.Namespace) -> int:
    rng = random.Random(7)
    live = core.new_room(ROOM)
    records = _commands(live, args.participants, args.events, rng)
    # The state after each record, as the controller would have snapshotted it then.
    replayed = core.new_room(ROOM)
    states: list[bytes] = []
    for record in records:
        core.apply_all(replayed, record)
        states.append(_encode_state.encode(replayed) if args.snapshot_every and
                      (len(states) + 1) % args.snapshot_every == 0 else b"")
    events = sum(len(r) for r in records)
    kinds = args.journals
    timings: dict[tuple[str, str], list[float]] = {(kind, how): [] for kind in kinds for how in ("snapshot", "full")}
    sizes: dict[str, int] = {}
    replayed_after = 0
    with tempfile.TemporaryDirectory(prefix="sb-replay-") as tmp:
        for kind in kinds:
            await _fill(kind, Path(tmp) / f"with.{kind}", records, args.snapshot_every, states)
            await _fill(kind, Path(tmp) / f"without.{kind}", records, 0, states)
            sizes[kind] = sum(_size(p) for p in Path(tmp).glob(f"with.{kind}*"))
        for _ in range(args.reps):
            for kind in kinds:  # interleaved
                seconds, state, replayed_after = await _rebuild(kind, Path(tmp) / f"with.{kind}", True)
                assert state == live, f"{kind}: the rebuilt room differs from the live one"
                timings[kind, "snapshot"].append(seconds)
                seconds, state, _ = await _rebuild(kind, Path(tmp) / f"without.{kind}", False)
                assert state == live, f"{kind}: the room replayed from the first record differs from the live one"
                timings[kind, "full"].append(seconds)
    fast = {kind: median(timings[kind, "snapshot"]) * 1e3 for kind in kinds}
    passed = all(ms <= GOAL_MS for ms in fast.values())
    lines = [
        "## replay",
        "",
        f"A room of {args.participants:,} participants whose {events:,} events ({len(records):,} journal records: joins,",
        "texts to one and to all, batched acks, holds and resumes) went through the room core into each of the",
        f"embedded server's journals ({', '.join(kinds)}), with a snapshot every {args.snapshot_every:,} records as the",
        "controller saves them.  Timed: open the journal, read and decode the newest snapshot, read, decode and",
        "apply the records after it — what a controller does before it serves a room it takes over; "
        f"{args.reps} rebuilds",
        "per journal, interleaved, medians; each rebuilt state is checked equal to the live one (`bench/replay.py`).",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}",
        f"- goal: the rebuild of the room ≤ {GOAL_MS:g} ms",
        "",
        "| journal | rebuild | records replayed | ms (median) | runs ms |",
        "|---|---|---:|---:|---|",
    ]
    for kind in kinds:
        lines += [
            f"| {kind} | from the newest snapshot | {replayed_after:,} | {fast[kind]:.1f} | "
            + ", ".join(f"{t * 1e3:.1f}" for t in timings[kind, "snapshot"]) + " |",
            f"| {kind} | from the first record (no snapshot) | {len(records):,} | "
            f"{median(timings[kind, 'full']) * 1e3:.1f} | "
            + ", ".join(f"{t * 1e3:.1f}" for t in timings[kind, "full"]) + " |",
        ]
    lines += [
        "",
        "Journal with snapshots on disk: " + ", ".join(f"{kind} {sizes[kind] / 1e6:.1f} MB" for kind in kinds) + ".",
        "",
        f"**{'pass' if passed else 'miss'}**: "
        + ", ".join(f"{kind} {fast[kind]:.1f} ms" for kind in kinds) + f" from the newest snapshot (goal ≤ {GOAL_MS:g} ms).",
    ]
    publish("replay", "\n".join(lines), args.tiny)
    return exit_status(passed, args.tiny, True)


def _size(path: Path) -> int:
    """Bytes of a file, or of the files in a directory."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


def _kinds(text: str) -> tuple[str, ...]:
    kinds = tuple(kind.strip() for kind in text.split(",") if kind.strip())
    unknown = [kind for kind in kinds if kind not in KINDS]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(f"journals: a comma-separated list of {', '.join(KINDS)}")
    return kinds


def main(argv: list[str] | None = None) -> int:
    parser = scenario_parser("replay", __doc__)
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--snapshot-every", type=int, default=1000)
    parser.add_argument("--journals", type=_kinds, default=KINDS, help="the journal kinds measured, comma-separated")
    add_run_options(parser, reps=5)
    args = parse_options(parser, argv, tiny={"participants": 20, "events": 600, "snapshot_every": 50, "reps": 1})
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    sys.exit(main())
