"""Room journal on RabbitMQ streams: the cost of a layout (streams per room or partitions) and StreamJournal's numbers.

Measured on one throwaway RabbitMQ node (or ``--broker``), raw aio-pika for the layout part:

- declaring 1, 100 and 1,000 stream queues (cumulative): time per batch, broker memory
  (``rabbitmqctl status``) and the broker's open file descriptors after each, then deleting them;
- appending (publisher confirms) one at a time and pipelined, to one stream and spread over 100;
- replaying ONE room of ``--room-events`` events to an end marker: from its own stream, and from a
  partition that also holds the events of ``--others`` other rooms (interleaved, the room's events
  filtered out by header), starting at the partition's first offset;
- StreamJournal itself: append one at a time and 10/100 concurrent (its confirms pipeline), replay,
  claim, and the newest snapshot of a room with many snapshots;
- StreamJournal's CPU per append through ``submit`` (the controller's path), ``--cpu-rooms`` rooms with
  ``--cpu-in-flight`` appends in flight each: the journal's process and the broker's VM.

Run: ``python -m bench.journal_stream`` (or ``python -m bench journal-stream``).  Keep runs short on a
shared machine: the defaults take about a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from bench.proc import cpu_seconds
from bench.options import THROWAWAY_BROKER, add_run_options, parse_options, scenario_parser
from bench.report import exit_status, git_commit, machine, median, percentile, publish, today
from journal.base import Snapshot
from journal.stream import StreamJournal
from journal.settings import StreamJournalSettings
from switchboard.devbroker import RabbitNode

__all__ = ["main"]

NAME = "journal-stream"
_STREAM: dict[str, Any] = {"x-queue-type": "stream"}
_BODY = json.dumps({"type": "participant_joined", "participant": "p" * 16, "pad": "x" * 60}).encode()


def _broker_status(node: RabbitNode | None) -> tuple[float, int]:
    """Broker memory (MB) and open file descriptors of the Erlang VM; (0, 0) without a node of ours."""
    if node is None:
        return 0.0, 0
    try:
        status = json.loads(node.ctl("status", "--formatter", "json"))
    except ValueError:
        return 0.0, 0
    memory = status.get("memory", {}).get("total", {})
    total = memory.get("erlang", 0) if isinstance(memory, dict) else memory
    fds = status.get("file_descriptors", {}).get("total_used", 0)
    return float(total) / 1e6, int(fds)


def _os_fds(node: RabbitNode | None) -> int:
    """Open files of the beam process (from /proc), which ``status`` may undercount for streams."""
    if node is None or node.pid is None:
        return 0
    for pid in [node.pid, *_children(node.pid)]:
        try:
            if "beam" in Path(f"/proc/{pid}/comm").read_text():
                return len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
    return 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                out.append(int(entry.name))
                out.extend(_children(int(entry.name)))
    return out


async def _timed(fn: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await fn()
    return time.perf_counter() - start


# -- layout: declaring many streams ----------------------------------------------------------------

async def _declare_costs(url: str, node: RabbitNode | None, sizes: Sequence[int]) -> list[str]:
    conn = await aio_pika.connect(url)
    channel = await conn.channel()
    rows: list[str] = []
    mem0, fd0 = _broker_status(node)
    os0 = _os_fds(node)
    rows.append(f"| 0 (baseline) | – | – | {mem0:.1f} | – | {fd0} / {os0} |")
    made = 0
    prefix = f"bench.decl.{uuid.uuid4().hex[:6]}."
    for size in sizes:
        batch = range(made, size)

        async def declare() -> None:
            for i in batch:
                await channel.declare_queue(f"{prefix}{i}", durable=True, arguments=_STREAM)

        seconds = await _timed(declare)
        made = size
        mem, fds = _broker_status(node)
        per_stream_kb = (mem - mem0) * 1000 / size if size else 0.0
        rows.append(f"| {size:,} | {len(batch):,} | {seconds * 1000 / max(len(batch), 1):.1f} | {mem:.1f} | "
                    f"{per_stream_kb:.0f} | {fds} / {_os_fds(node)} |")

    async def delete() -> None:
        for i in range(made):
            await channel.queue_delete(f"{prefix}{i}")

    seconds = await _timed(delete)
    rows.append(f"| deleted all | {made:,} | {seconds * 1000 / max(made, 1):.1f} | {_broker_status(node)[0]:.1f} | – | "
                f"{_broker_status(node)[1]} / {_os_fds(node)} |")
    await conn.close()
    return rows


# -- layout: appends --------------------------------------------------------------------------------

async def _publish_rate(channel: AbstractChannel, queues: list[str], count: int, in_flight: int) -> tuple[float, float]:
    """events/s and median confirm latency (ms) publishing ``count`` events round-robin over ``queues``."""
    latencies: list[float] = []

    async def one(i: int) -> None:
        start = time.perf_counter()
        await channel.default_exchange.publish(
            aio_pika.Message(_BODY, headers={"room": f"r{i % 7}"}, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=queues[i % len(queues)])
        latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    for base in range(0, count, in_flight):
        await asyncio.gather(*(one(i) for i in range(base, min(count, base + in_flight))))
    return count / (time.perf_counter() - start), median(latencies) * 1000


async def _append_costs(url: str, count: int, reps: int) -> list[str]:
    conn = await aio_pika.connect(url)
    channel = await conn.channel(publisher_confirms=True)
    tag = uuid.uuid4().hex[:6]
    one = [f"bench.app.{tag}.one"]
    many = [f"bench.app.{tag}.many.{i}" for i in range(100)]
    for name in one + many:
        await channel.declare_queue(name, durable=True, arguments=_STREAM)
    rows: list[str] = []
    for label, queues in (("1 stream", one), ("100 streams (round-robin)", many)):
        for in_flight in (1, 10, 100):
            runs = [await _publish_rate(channel, queues, count, in_flight) for _ in range(reps)]
            rows.append(f"| {label} | {in_flight} | {median([r[0] for r in runs]):,.0f} | "
                        f"{median([r[1] for r in runs]):.2f} |")
    # what StreamJournal.append does, in raw aio-pika: publish with confirm, wait for the message to come
    # back through a consumer on the same stream (the offset, and what precedes it)
    consumer = await conn.channel()
    await consumer.set_qos(prefetch_count=1000)
    stream = await consumer.declare_queue(one[0], passive=True)
    back: dict[str, asyncio.Future[None]] = {}
    seen = [0]

    async def on_message(message: AbstractIncomingMessage) -> None:
        waiter = back.pop(message.message_id or "", None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        seen[0] += 1
        if seen[0] % 100 == 0:
            await message.ack(multiple=True)

    await stream.consume(on_message, arguments={"x-stream-offset": "next"})

    async def round_trip() -> None:
        message_id = uuid.uuid4().hex
        back[message_id] = asyncio.get_running_loop().create_future()
        waiter = back[message_id]
        await channel.default_exchange.publish(
            aio_pika.Message(_BODY, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=one[0])
        await waiter

    for in_flight in (1, 10, 100):
        rates = []
        for _ in range(reps):
            start = time.perf_counter()
            for base in range(0, count, in_flight):
                await asyncio.gather(*(round_trip() for _ in range(min(in_flight, count - base))))
            rates.append(count / (time.perf_counter() - start))
        rows.append(f"| 1 stream, confirm **and** delivery back to a consumer | {in_flight} | {median(rates):,.0f} | – |")
    await consumer.close()
    for name in one + many:
        await channel.queue_delete(name)
    await conn.close()
    return rows


# -- layout: replaying one room ----------------------------------------------------------------------

async def _replay_room(url: str, queue: str, room: str) -> tuple[float, int, int]:
    """Seconds to read ``room``'s events from the stream's first offset to a fresh end marker; (seconds,
    room events, messages read)."""
    conn = await aio_pika.connect(url)
    start = time.perf_counter()
    publisher = await conn.channel(publisher_confirms=True)
    marker = uuid.uuid4().hex
    await publisher.default_exchange.publish(aio_pika.Message(b"", headers={"marker": marker}), routing_key=queue)
    channel = await conn.channel()
    await channel.set_qos(prefetch_count=1000)
    stream = await channel.declare_queue(queue, passive=True)
    done = asyncio.get_running_loop().create_future()
    counts = [0, 0]

    async def on_message(message: AbstractIncomingMessage) -> None:
        counts[1] += 1
        headers = message.headers
        if headers.get("room") == room:
            counts[0] += 1
        if counts[1] % 100 == 0 or headers.get("marker") == marker:
            await message.ack(multiple=True)
        if headers.get("marker") == marker and not done.done():
            done.set_result(None)

    tag = await stream.consume(on_message, arguments={"x-stream-offset": "first"})
    await done
    seconds = time.perf_counter() - start
    await stream.cancel(tag)
    await conn.close()
    return seconds, counts[0], counts[1]


async def _replay_costs(url: str, room_events: int, others: Sequence[int], reps: int) -> list[str]:
    conn = await aio_pika.connect(url)
    channel = await conn.channel(publisher_confirms=True)
    tag = uuid.uuid4().hex[:6]
    rows: list[str] = []
    for other_rooms in (0, *others):
        queue = f"bench.replay.{tag}.{other_rooms}"
        await channel.declare_queue(queue, durable=True, arguments=_STREAM)
        rooms = ["target", *(f"other{i}" for i in range(other_rooms))]
        # interleaved, as rooms that live at the same time write: one event of each room in turn
        for base in range(room_events):
            await asyncio.gather(*(channel.default_exchange.publish(
                aio_pika.Message(_BODY, headers={"room": room}), routing_key=queue) for room in rooms))
        runs = [await _replay_room(url, queue, "target") for _ in range(reps)]
        assert all(r[1] == room_events for r in runs), runs
        label = "own stream" if other_rooms == 0 else f"partition with {other_rooms} other rooms"
        seconds = median([r[0] for r in runs])
        rows.append(f"| {label} | {runs[0][2]:,} | {seconds * 1000:,.0f} | {runs[0][2] / seconds:,.0f} |")
        await channel.queue_delete(queue)
    await conn.close()
    return rows


# -- StreamJournal ----------------------------------------------------------------------------------

async def _journal_costs(url: str, count: int, reps: int, snapshots: int) -> list[str]:
    settings = StreamJournalSettings(prefix=f"bench.j.{uuid.uuid4().hex[:6]}.")
    journal = StreamJournal(url, settings)
    await journal.open()
    rows: list[str] = []
    try:
        for in_flight in (1, 10, 100):
            rates: list[float] = []
            latencies: list[float] = []
            for rep in range(reps):
                room = f"append-{in_flight}-{rep}"
                await journal.claim(room, 1)

                async def one() -> None:
                    start = time.perf_counter()
                    await journal.append(room, 1, _BODY)
                    latencies.append(time.perf_counter() - start)

                start = time.perf_counter()
                for base in range(0, count, in_flight):
                    await asyncio.gather(*(one() for _ in range(min(in_flight, count - base))))
                rates.append(count / (time.perf_counter() - start))
            rows.append(f"| append, {in_flight} in flight | {count:,} | {median(rates):,.0f} events/s | "
                        f"p50 {median(latencies) * 1000:.2f} ms, p99 {percentile(latencies, 0.99) * 1000:.2f} ms |")
        replays = []
        for _ in range(reps):
            start = time.perf_counter()
            records = await journal.replay("append-1-0")
            replays.append(time.perf_counter() - start)
            assert len(records) == count, len(records)
        rows.append(f"| replay one room (own stream) | {count:,} | {count / median(replays):,.0f} events/s | "
                    f"{median(replays) * 1000:.0f} ms |")
        claims = []
        for epoch in range(2, 2 + reps):
            start = time.perf_counter()
            await journal.claim("append-1-0", epoch)
            claims.append(time.perf_counter() - start)
        rows.append(f"| claim (new epoch) of a room with {count:,} records, no snapshot | 1 | – | "
                    f"{median(claims) * 1000:.0f} ms |")
        firsts = []
        for rep in range(reps):
            start = time.perf_counter()
            await journal.claim(f"new-{rep}", 1)
            firsts.append(time.perf_counter() - start)
        rows.append(f"| first claim of a new room (declares its streams, attaches its tail) | – | – | "
                    f"{median(firsts) * 1000:.0f} ms |")
        takeovers = []
        for rep in range(reps):
            successor = StreamJournal(url, settings, name="bench-successor")
            await successor.open()
            try:
                start = time.perf_counter()
                await successor.claim("append-1-0", 10 + rep)
                takeovers.append(time.perf_counter() - start)
            finally:
                await successor.close()
        rows.append(f"| takeover: a second journal's claim of a room with {count:,} records, no snapshot (its "
                    f"tail reads the room) | {count:,} | – | {median(takeovers) * 1000:.0f} ms |")
        room = "snapshots"
        await journal.claim(room, 1)
        for i in range(snapshots):
            offset = await journal.append(room, 1, _BODY)
            await journal.save_snapshot(room, Snapshot(offset=offset, epoch=1, body=_BODY * 20))
        reads = []
        for _ in range(reps):
            start = time.perf_counter()
            newest = await journal.snapshot(room)
            reads.append(time.perf_counter() - start)
            assert newest is not None and newest.offset == offset
        rows.append(f"| newest snapshot of a room that saved {snapshots} (2.8 kB each) | 1 | – | "
                    f"{median(reads) * 1000:.0f} ms |")
    finally:
        await journal.close()
    return rows


async def _cpu_costs(url: str, node: RabbitNode | None, rooms: int, in_flight: int, seconds: float,
                     reps: int) -> list[str]:
    """CPU per append through ``submit`` (the controller's path): ``rooms`` rooms with ``in_flight`` appends
    in flight each, for ``seconds``; this process (the journal) and the broker's VM."""
    beam = _beam_pid(node)
    rows: list[str] = []
    for rep in range(reps):
        journal = StreamJournal(url, StreamJournalSettings(prefix=f"bench.c.{uuid.uuid4().hex[:6]}."))
        await journal.open()
        try:
            names = [f"cpu-{i}" for i in range(rooms)]
            for room in names:
                await journal.claim(room, 1)
            done = 0
            stop = False

            async def writer(room: str) -> None:
                nonlocal done
                while not stop:
                    await journal.submit(room, 1, _BODY)
                    done += 1

            tasks = [asyncio.ensure_future(writer(room)) for room in names for _ in range(in_flight)]
            await asyncio.sleep(min(1.0, seconds))  # warm-up
            count, client, broker = done, cpu_seconds(os.getpid()), cpu_seconds(beam) if beam else 0.0
            await asyncio.sleep(seconds)
            count, client = done - count, cpu_seconds(os.getpid()) - client
            broker = cpu_seconds(beam) - broker if beam else 0.0
            stop = True
            await asyncio.gather(*tasks)
        finally:
            await journal.close()
        rows.append(f"| {rep + 1} | {rooms} × {in_flight} | {count / seconds:,.0f} | {client / count * 1e6:.0f} | "
                    + (f"{broker / count * 1e6:.0f} |" if beam else "– |"))
    return rows


def _beam_pid(node: RabbitNode | None) -> int | None:
    """The Erlang VM of our throwaway node (its CPU is the broker's)."""
    if node is None or node.pid is None:
        return None
    for pid in [node.pid, *_children(node.pid)]:
        try:
            if Path(f"/proc/{pid}/comm").read_text().startswith("beam"):
                return pid
        except OSError:
            continue
    return None


# -- the run ----------------------------------------------------------------------------------------

async def _run(args: argparse.Namespace) -> str:
    load_before = os.getloadavg()[0]
    node: RabbitNode | None = None
    url = args.broker
    if not url:
        node = RabbitNode()
        await asyncio.to_thread(node.start)
        url = node.url
    try:
        layout = "layout" in args.parts
        declare = await _declare_costs(url, node, args.streams) if layout else []
        appends = await _append_costs(url, args.appends, args.reps) if layout else []
        replays = await _replay_costs(url, args.room_events, args.others, args.reps) if layout else []
        journal = await _journal_costs(url, args.appends, args.reps, args.snapshots) if "journal" in args.parts else []
        cpu = (await _cpu_costs(url, node, args.cpu_rooms, args.cpu_in_flight, args.cpu_seconds, args.reps)
               if "journal" in args.parts else [])
    finally:
        if node is not None:
            await asyncio.to_thread(node.close)
    return "\n".join([
        f"## {NAME}",
        "",
        "Room journal on RabbitMQ 3.10.8 stream queues (`bench/journal_stream.py`): what a layout costs the",
        "broker, append and replay rates, and `journal.stream.StreamJournal`'s own numbers. One throwaway node,",
        "client and broker on the same **shared 2-core machine** (other people's runs were going on): short",
        f"runs, medians of {args.reps}; read the numbers as orders of magnitude.",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}; load average (1 min) before / after "
        f"the run: {load_before:.1f} / {os.getloadavg()[0]:.1f}",
        "",
        "Declaring streams (one at a time, one channel; cumulative), broker memory from `rabbitmqctl status`,",
        "open files as the broker counts them / as /proc counts the beam process:",
        "",
        "| streams | declared in batch | ms per declare | broker MB | added kB per stream | fds (status / proc) |",
        "|---:|---:|---:|---:|---:|---|",
        *declare,
        "",
        f"Appending {args.appends:,} events of {len(_BODY)} bytes with publisher confirms:",
        "",
        "| target | in flight | events/s | median confirm ms |",
        "|---|---:|---:|---:|",
        *appends,
        "",
        f"Replaying one room of {args.room_events:,} events to an end marker (first offset, prefetch 1,000,",
        "ack every 100), the room's events picked by header:",
        "",
        "| the room's stream | messages read | ms | messages/s |",
        "|---|---:|---:|---:|",
        *replays,
        "",
        "StreamJournal (one stream per room; append = confirm + the room's tail consumer seeing the record):",
        "",
        "| operation | events | rate | time |",
        "|---|---:|---|---|",
        *journal,
        "",
        f"StreamJournal's CPU per append through `submit` (the controller's path), {args.cpu_rooms} rooms with",
        f"{args.cpu_in_flight} appends in flight each, {args.cpu_seconds:g} s per run after a warm-up: this process (the",
        "journal) and the broker's VM (`beam.smp`, `/proc`):",
        "",
        "| run | rooms × in flight | appends/s | journal µs per append | broker µs per append |",
        "|---:|---|---:|---:|---:|",
        *cpu,
    ])


def main(argv: Sequence[str] | None = None) -> int:
    parser = scenario_parser(NAME, __doc__ or "")
    add_run_options(parser, reps=3, reps_help="repetitions of each timing", broker=THROWAWAY_BROKER)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 100, 1000], help="cumulative stream counts")
    parser.add_argument("--appends", type=int, default=2000, help="events per append run")
    parser.add_argument("--room-events", type=int, default=1000, help="events of the replayed room")
    parser.add_argument("--others", type=int, nargs="+", default=[9, 49], help="other rooms in a partition")
    parser.add_argument("--snapshots", type=int, default=50, help="snapshots saved before reading the newest")
    parser.add_argument("--cpu-rooms", type=int, default=25, help="rooms written to at once (CPU per append)")
    parser.add_argument("--cpu-in-flight", type=int, default=2, help="appends in flight per room (CPU per append)")
    parser.add_argument("--cpu-seconds", type=float, default=4.0, help="measured seconds per run (CPU per append)")
    parser.add_argument("--parts", nargs="+", choices=["layout", "journal"], default=["layout", "journal"],
                        help="what to measure (a run of only some parts records nothing)")
    args = parse_options(parser, argv, {"reps": 1, "streams": [1, 10], "appends": 100, "room_events": 50,
                                        "others": [4], "snapshots": 5,
                                        "cpu_rooms": 2, "cpu_in_flight": 1, "cpu_seconds": 0.3})
    section = asyncio.run(_run(args))
    publish(NAME, section, args.tiny or len(args.parts) < 2)
    return exit_status(True, args.tiny, True)


if __name__ == "__main__":
    raise SystemExit(main())
