"""The journal's hot path over AMQP 0.9.1 or over RabbitMQ's stream protocol: CPU per message, and mixing.

One throwaway RabbitMQ node with the ``rabbitmq_stream`` plugin (its own stream port). ``--rooms`` streams
each append one message every ``--interval`` (the relay's shape: 25 rooms, every 50 ms, ~450/s); every
append waits for its publisher confirm **and** for its message to come back through a consumer of that
stream (what the journal's tail does). Per variant, in interleaved runs of ``--seconds``: appends/s, the
median round trip, this process's CPU (publisher and consumer both) and the broker VM's CPU per message:

- ``amqp``: raw aio-pika, a confirm channel and one consumer per stream (``x-stream-offset: next``), as the
  stream journal does now;
- ``journal``: ``StreamJournal.submit`` itself (the same shape through the journal's code);
- ``stream``: the ``rstream`` client over the stream protocol (port 5552's protocol), one producer
  (a publisher per stream, one publish frame per append) and one consumer (a subscription per stream),
  messages in AMQP 1.0 (``AMQPMessage``, ``amqp_decoder``);
- ``stream-raw``: the same with opaque bytes (no AMQP 1.0 encoding or decoding): the floor of the client;
- ``amqp-confirm`` and ``stream-confirm``: ``amqp`` and ``stream`` without the consumer (confirm only);
- ``stream-shared``: what the stream protocol's batching could give: ``--shared-batch`` records (default 5:
  at 500/s, what a 10 ms window holds) in **one** publish frame to **one** shared stream (so one chunk), at the same total rate,
  all confirmed and read back (a layout the journal does not have: several rooms per stream, and records
  held back to fill a frame, see docs/design-notes.md);
- ``amqp-shared``: the same shape over AMQP 0.9.1 (the batch's publishes started in one loop turn);
- ``idle``: no traffic at all; its CPU columns are µs of CPU **per second**, the floor under the others.

``--erl-args '+sbwt none +sbwtdcpu none +sbwtdio none'`` runs the node without its schedulers' busy
waiting, to see how much of the broker's CPU per message is spinning rather than work.

Then two facts: a message published over the stream protocol read by an AMQP 0.9.1 consumer (and the
other way round): are headers, ``message_id``, body and offsets kept; and how long after a broker restart
a stream-protocol subscription and publish are first accepted.

Run: ``python -m bench.journal_stream_protocol`` (about two minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aio_pika
import aiormq.abc
from rstream import (AMQPMessage, ConfirmationStatus, Consumer, ConsumerOffsetSpecification, MessageContext,
                     OffsetType, Producer, Properties, RawMessage, amqp_decoder)

from bench.journal_stream import _BODY, _beam_pid
from bench.options import add_run_options, parse_options, scenario_parser
from bench.proc import cpu_seconds, free_port
from bench.report import exit_status, git_commit, machine, median, publish, today
from journal.settings import StreamJournalSettings
from journal.stream import StreamJournal
from switchboard.devbroker import DEFAULT_PLUGINS, RabbitNode

__all__ = ["main"]

NAME = "journal-stream-protocol"
_STREAM: dict[str, Any] = {"x-queue-type": "stream"}
_VARIANTS = ["idle", "amqp", "amqp-confirm", "journal", "stream", "stream-confirm", "stream-raw", "stream-shared",
             "amqp-shared"]


class _StreamNode(RabbitNode):
    """A throwaway node with the stream plugin listening on loopback at ``stream_port``."""

    def __init__(self, erl_args: str = "") -> None:
        super().__init__(plugins=(*DEFAULT_PLUGINS, "rabbitmq_stream"))
        self.erl_args = erl_args
        self.stream_port = free_port()
        (self.base / "rabbitmq.conf").write_text(
            f"stream.listeners.tcp.1 = 127.0.0.1:{self.stream_port}\nstream.advertised_host = 127.0.0.1\n")

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["RABBITMQ_CONFIG_FILE"] = str(self.base / "rabbitmq.conf")
        if self.erl_args:
            env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"] += " " + self.erl_args
        return env


# -- one paced run ---------------------------------------------------------------------------------

Append = Callable[[int], Awaitable[None]]


async def _paced(rooms: int, interval: float, seconds: float, append: Append, beam: int | None, per_call: int = 1
                 ) -> tuple[float, float, float, float]:
    """``rooms`` loops each calling ``append(room)`` every ``interval`` (each call ``per_call`` appends); (appends/s,
    p50 ms of a call, client µs, broker µs per append) over ``seconds`` after a one-second warm-up."""
    stop = False
    done = [0]
    trips: list[float] = []
    measuring = [False]

    async def loop(room: int) -> None:
        due = time.monotonic() + interval * room / rooms
        while not stop:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            due += interval
            start = time.perf_counter()
            await append(room)
            if measuring[0]:
                trips.append(time.perf_counter() - start)
                done[0] += per_call

    tasks = [asyncio.ensure_future(loop(room)) for room in range(rooms)]
    await asyncio.sleep(1.0)
    measuring[0] = True
    client0, broker0 = cpu_seconds(os.getpid()), cpu_seconds(beam) if beam else 0.0
    await asyncio.sleep(seconds)
    client, broker = cpu_seconds(os.getpid()) - client0, (cpu_seconds(beam) - broker0 if beam else 0.0)
    count = done[0]
    stop = True
    await asyncio.gather(*tasks)
    return count / seconds, median(trips) * 1000, client / count * 1e6, broker / count * 1e6


# -- variants --------------------------------------------------------------------------------------

async def _amqp(url: str, names: list[str], run: Callable[[Append], Awaitable[tuple[float, ...]]],
                read_back: bool, shared: int = 0) -> tuple[float, ...]:
    conn = await aio_pika.connect(url)
    try:
        publisher = await conn.channel(publisher_confirms=True)
        reader = await conn.channel()
        await reader.set_qos(prefetch_count=100)
        back: dict[str, asyncio.Future[None]] = {}
        seen = [0]
        for name in names[:1] if shared else names:
            await publisher.declare_queue(name, durable=True, arguments=_STREAM)

            queue = await reader.declare_queue(name, passive=True)

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                waiter = back.pop(message.message_id or "", None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                seen[0] += 1
                if seen[0] % 10 == 0:
                    await message.ack(multiple=True)

            if read_back:
                await queue.consume(on_message, arguments={"x-stream-offset": "next"})

        async def one(name: str) -> None:
            message_id = uuid.uuid4().hex
            waiter = back[message_id] = asyncio.get_running_loop().create_future()
            if not read_back:
                waiter.set_result(None)
            await publisher.default_exchange.publish(
                aio_pika.Message(_BODY, message_id=message_id, headers={"epoch": 1, "kind": "record"},
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=name)
            await waiter

        async def append(room: int) -> None:
            if shared:
                await asyncio.gather(*(one(names[0]) for _ in range(shared)))
            else:
                await one(names[room])

        return await run(append)
    finally:
        await conn.close()


async def _journal(url: str, names: list[str], run: Callable[[Append], Awaitable[tuple[float, ...]]]
                   ) -> tuple[float, ...]:
    journal = StreamJournal(url, StreamJournalSettings(prefix=f"bench.jp.{uuid.uuid4().hex[:6]}."))
    await journal.open()
    try:
        for name in names:
            await journal.claim(name, 1)

        async def append(room: int) -> None:
            await journal.submit(names[room], 1, _BODY)

        return await run(append)
    finally:
        await journal.close()


async def _stream(port: int, names: list[str], run: Callable[[Append], Awaitable[tuple[float, ...]]],
                  raw: bool, read_back: bool, shared: int = 0) -> tuple[float, ...]:
    producer = Producer("127.0.0.1", port, username="guest", password="guest")
    consumer = Consumer("127.0.0.1", port, username="guest", password="guest")
    await producer.start()
    await consumer.start()
    confirms: dict[int, asyncio.Future[None]] = {}
    back: dict[bytes, asyncio.Future[None]] = {}
    ids = [0]
    try:
        def on_confirm(status: ConfirmationStatus) -> None:
            waiter = confirms.pop(status.message_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        def on_raw(message: bytes, context: MessageContext) -> None:
            waiter = back.pop(message[:32], None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        def on_amqp(message: AMQPMessage, context: MessageContext) -> None:
            key = message.properties.message_id if message.properties else None
            waiter = back.pop(key.encode() if isinstance(key, str) else (key or b""), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        for name in names[:1] if shared else names:
            await producer.create_stream(name, exists_ok=True)
            if not read_back:
                continue
            if raw:
                await consumer.subscribe(name, on_raw, offset_specification=ConsumerOffsetSpecification(OffsetType.NEXT))
            else:
                await consumer.subscribe(name, on_amqp, decoder=amqp_decoder,
                                         offset_specification=ConsumerOffsetSpecification(OffsetType.NEXT))

        def one() -> tuple[RawMessage | AMQPMessage, list[asyncio.Future[None]]]:
            key = uuid.uuid4().hex.encode()
            ids[0] += 1
            loop = asyncio.get_running_loop()
            confirmed = confirms[ids[0]] = loop.create_future()
            waiter = back[key] = loop.create_future()
            if not read_back:
                waiter.set_result(None)
            message: RawMessage | AMQPMessage
            if raw:
                message = RawMessage(key + _BODY, publishing_id=ids[0])
            else:
                message = AMQPMessage(body=_BODY, properties=Properties(message_id=key.decode()),
                                      application_properties={"epoch": 1, "kind": "record"})
                message.publishing_id = ids[0]
            return message, [confirmed, waiter]

        async def append(room: int) -> None:
            batch = [one() for _ in range(shared or 1)]
            await producer.send_batch(names[0] if shared else names[room], [m for m, _ in batch],
                                      on_publish_confirm=on_confirm)
            await asyncio.gather(*(f for _, futures in batch for f in futures))

        return await run(append)
    finally:
        await consumer.close()
        await producer.close()


async def _idle(seconds: float, beam: int | None) -> tuple[float, ...]:
    """No traffic: CPU per second of this process and the broker, shown in the µs columns as µs per second."""
    client0, broker0 = cpu_seconds(os.getpid()), cpu_seconds(beam) if beam else 0.0
    await asyncio.sleep(seconds)
    client, broker = cpu_seconds(os.getpid()) - client0, (cpu_seconds(beam) - broker0 if beam else 0.0)
    return 0.0, 0.0, client / seconds * 1e6, broker / seconds * 1e6


# -- mixing and restart ------------------------------------------------------------------------------

async def _mixing(node: _StreamNode) -> list[str]:
    """A message written over one protocol, read over the other: what survives."""
    name = f"bench.mix.{uuid.uuid4().hex[:6]}"
    producer = Producer("127.0.0.1", node.stream_port, username="guest", password="guest")
    consumer = Consumer("127.0.0.1", node.stream_port, username="guest", password="guest")
    await producer.start()
    await consumer.start()
    conn = await aio_pika.connect(node.url)
    rows: list[str] = []
    try:
        channel = await conn.channel(publisher_confirms=True)
        await channel.declare_queue(name, durable=True, arguments=_STREAM)
        await producer.send_wait(name, AMQPMessage(body=b"from-stream", properties=Properties(message_id="m-stream"),
                                                   application_properties={"epoch": 7, "kind": "record"}))
        await channel.default_exchange.publish(
            aio_pika.Message(b"from-amqp", message_id="m-amqp", headers={"epoch": 8, "kind": "claim"}), routing_key=name)
        got: list[tuple[str, ...]] = []
        both = asyncio.get_running_loop().create_future()

        def on_stream(message: AMQPMessage, context: MessageContext) -> None:
            props = message.properties
            got.append(("stream protocol consumer", str(context.offset), repr(message.body),
                        repr(props.message_id if props else None), repr(message.application_properties)))

        await consumer.subscribe(name, on_stream, decoder=amqp_decoder,
                                 offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST))
        reader = await conn.channel()
        await reader.set_qos(prefetch_count=10)
        queue = await reader.declare_queue(name, passive=True)

        async def on_amqp(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            got.append(("AMQP 0.9.1 consumer", str((message.headers or {}).get("x-stream-offset")), repr(message.body),
                        repr(message.message_id), repr({k: v for k, v in (message.headers or {}).items()
                                                        if k != "x-stream-offset"})))
            await message.ack()
            if sum(1 for g in got if g[0].startswith("AMQP")) == 2 and not both.done():
                both.set_result(None)

        await queue.consume(on_amqp, arguments={"x-stream-offset": "first"})
        await asyncio.wait_for(both, 10)
        for _ in range(100):
            if len(got) >= 4:
                break
            await asyncio.sleep(0.05)
        rows = [f"| {' | '.join(g)} |" for g in sorted(got)]
        rows.append(await _opaque_to_amqp(producer, conn, f"{name}.opaque"))
    finally:
        await conn.close()
        await consumer.close()
        await producer.close()
    return rows


async def _opaque_to_amqp(producer: Producer, conn: aio_pika.abc.AbstractConnection, name: str) -> str:
    """Opaque bytes (not AMQP 1.0) published over the stream protocol, then an AMQP 0.9.1 consumer: what it gets."""
    await producer.create_stream(name)
    await producer.send_wait(name, RawMessage(b"opaque"))
    outcome = "nothing within 5 s"
    channel = await conn.channel()
    try:
        await channel.set_qos(prefetch_count=10)
        queue = await channel.declare_queue(name, passive=True)
        got: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            if not got.done():
                got.set_result(message.body)

        await queue.consume(on_message, arguments={"x-stream-offset": "first"})
        outcome = repr(await asyncio.wait_for(got, 5))
    except Exception as exc:  # noqa: BLE001 - what the broker does is the measurement
        outcome = f"{type(exc).__name__}: {exc}"[:80].replace("|", "/") or outcome
    await asyncio.sleep(1.0)
    return (f"| AMQP 0.9.1 consumer, opaque bytes from the stream protocol | 0 | – | – | {outcome} "
            f"(channel closed: {channel.is_closed}) |")


async def _after_restart(node: _StreamNode, limit: float) -> list[str]:
    """Seconds from a broker restart (AMQP port listening again) until a stream-protocol subscribe and publish, and
    an AMQP 0.9.1 consumer of the same stream, first succeed."""
    name = f"bench.restart.{uuid.uuid4().hex[:6]}"
    producer = Producer("127.0.0.1", node.stream_port, username="guest", password="guest")
    await producer.start()
    await producer.create_stream(name)
    # AMQP 1.0, as AMQP 0.9.1 readers need: opaque bytes make their connection close with 541 INTERNAL_ERROR
    await producer.send_wait(name, AMQPMessage(body=b"before"))
    await producer.close()
    await asyncio.to_thread(node.restart)
    listening = time.monotonic()
    rows: list[str] = []

    async def first_success(label: str, attempt: Callable[[], Awaitable[None]]) -> None:
        errors: list[str] = []
        while time.monotonic() - listening < limit:
            try:
                await asyncio.wait_for(attempt(), 5)
                rows.append(f"| {label} | {time.monotonic() - listening:.1f} s | {len(errors)} | "
                            f"{errors[0] if errors else '–'} |")
                return
            except Exception as exc:  # noqa: BLE001 - what the broker answers is the measurement
                errors.append(f"{type(exc).__name__}: {exc}"[:80].replace("|", "/"))
                await asyncio.sleep(0.25)
        rows.append(f"| {label} | not within {limit:g} s | {len(errors)} | {errors[-1] if errors else '–'} |")

    async def subscribe() -> None:
        consumer = Consumer("127.0.0.1", node.stream_port, username="guest", password="guest")
        got = asyncio.get_running_loop().create_future()

        def on_message(message: bytes, context: MessageContext) -> None:
            if not got.done():
                got.set_result(None)
        try:
            await consumer.start()
            await consumer.subscribe(name, on_message, offset_specification=ConsumerOffsetSpecification(OffsetType.FIRST))
            await got
        finally:
            await consumer.close()

    async def send() -> None:
        producer = Producer("127.0.0.1", node.stream_port, username="guest", password="guest")
        try:
            await producer.start()
            await producer.send_wait(name, AMQPMessage(body=b"after"))
        finally:
            await producer.close()

    async def amqp_consume() -> None:
        conn = await aio_pika.connect(node.url)
        try:
            channel = await conn.channel()
            await channel.set_qos(prefetch_count=10)
            queue = await channel.declare_queue(name, passive=True)
            got: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
                await message.ack()
                if not got.done():
                    got.set_result(None)

            await queue.consume(on_message, arguments={"x-stream-offset": "first"})
            await got
        finally:
            await conn.close()

    # all three from the same start, side by side
    await asyncio.gather(first_success("stream protocol: subscribe from the first offset, first delivery", subscribe),
                         first_success("stream protocol: publish with confirm", send),
                         first_success("AMQP 0.9.1: consume from the first offset, first delivery", amqp_consume))
    return sorted(rows)


# -- the run ---------------------------------------------------------------------------------------

async def _run(args: argparse.Namespace) -> str:
    load_before = os.getloadavg()[0]
    node = _StreamNode(args.erl_args)
    await asyncio.to_thread(node.start)
    rows: list[str] = []
    try:
        await _wait_stream_port(node)
        beam = _beam_pid(node)

        def runner(shared: bool = False) -> Callable[[Append], Awaitable[tuple[float, ...]]]:
            async def run(append: Append) -> tuple[float, ...]:
                if shared:  # one loop whose every call appends --shared-batch records, at the same rate in all
                    return await _paced(1, args.interval * args.shared_batch / args.rooms, args.seconds, append, beam,
                                        per_call=args.shared_batch)
                return await _paced(args.rooms, args.interval, args.seconds, append, beam)
            return run

        results: dict[str, list[tuple[float, ...]]] = {v: [] for v in args.variants}
        for rep in range(args.reps):
            for variant in args.variants:
                names = [f"bench.sp.{variant}.{rep}.{uuid.uuid4().hex[:4]}.{i}" for i in range(args.rooms)]
                if variant == "idle":
                    result = await _idle(args.seconds, beam)
                elif variant.startswith("amqp"):
                    result = await _amqp(node.url, names, runner(variant == "amqp-shared"),
                                         read_back=variant != "amqp-confirm",
                                         shared=args.shared_batch if variant == "amqp-shared" else 0)
                elif variant == "journal":
                    result = await _journal(node.url, names, runner())
                else:
                    result = await _stream(node.stream_port, names, runner(variant == "stream-shared"),
                                           raw=variant == "stream-raw", read_back=variant != "stream-confirm",
                                           shared=args.shared_batch if variant == "stream-shared" else 0)
                results[variant].append(result)
                rows.append(f"| {rep + 1} | {variant} | {result[0]:,.0f} | {result[1]:.1f} | {result[2]:.0f} | "
                            f"{result[3]:.0f} | {result[2] + result[3]:.0f} |")
        summary = [f"| {variant} | {median([r[0] for r in rs]):,.0f} | {median([r[2] for r in rs]):.0f} | "
                   f"{median([r[3] for r in rs]):.0f} | {median([r[2] + r[3] for r in rs]):.0f} |"
                   for variant, rs in results.items()]
        mixing = await _mixing(node)
        restart = await _after_restart(node, args.restart_limit) if not (args.tiny or args.no_restart) else []
    finally:
        await asyncio.to_thread(node.close)
    return "\n".join([
        f"## {NAME}",
        "",
        "The journal's hot path over AMQP 0.9.1 or over the stream protocol (`bench/journal_stream_protocol.py`):",
        f"{args.rooms} streams, each appending one {len(_BODY)}-byte message every {args.interval * 1000:g} ms; an append",
        "waits for its confirm **and** its message back through a consumer of the stream. One throwaway node",
        "(RabbitMQ 3.10.8, `rabbitmq_stream` enabled), client and broker on the same shared 2-core machine;",
        f"runs of {args.seconds:g} s after a 1 s warm-up, variants interleaved; CPU per append: this process",
        f"(publisher and consumer) and the broker's VM. `*-shared`: {args.shared_batch} records at once to one stream.",
        "`idle`: no traffic, its CPU columns are µs **per second**. Variants: the module's docstring.",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}; load average (1 min) before / after "
        f"the run: {load_before:.1f} / {os.getloadavg()[0]:.1f}; extra VM flags: {args.erl_args or 'none'}",
        "",
        "| run | variant | appends/s | p50 round trip ms | client µs | broker µs | both µs |",
        "|---:|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Medians:",
        "",
        "| variant | appends/s | client µs | broker µs | both µs |",
        "|---|---:|---:|---:|---:|",
        *summary,
        "",
        "One message written over each protocol, read over each (body, `message_id`, headers / application",
        "properties, offset):",
        "",
        "| read by | offset | body | message_id | headers |",
        "|---|---|---|---|---|",
        *mixing,
        "",
        f"After a broker restart holding the {sum(v != 'idle' for v in args.variants) * args.reps * args.rooms + 3} streams of",
        "this run, from the node's AMQP port listening again, the first success of each (tried side by side every",
        "0.25 s, each try given 5 s):",
        "",
        "| operation | after | failed attempts | first error |",
        "|---|---|---:|---|",
        *restart,
    ])


async def _wait_stream_port(node: _StreamNode) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", node.stream_port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = scenario_parser(NAME, __doc__ or "")
    add_run_options(parser, reps=3, reps_help="interleaved runs of each variant")
    parser.add_argument("--rooms", type=int, default=25, help="streams appended to at once")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between a stream's appends")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    parser.add_argument("--variants", nargs="+", default=_VARIANTS, choices=_VARIANTS,
                        help="what to measure (idle: no traffic, the µs columns are CPU µs per second)")
    parser.add_argument("--shared-batch", type=int, default=5, help="records at once to one stream in the *-shared variants")
    parser.add_argument("--erl-args", default="", help="more Erlang VM flags for the node (e.g. '+sbwt none')")
    parser.add_argument("--no-restart", action="store_true", help="skip the restart measurement")
    parser.add_argument("--restart-limit", type=float, default=60.0, help="how long to try after a restart")
    args = parse_options(parser, argv, {"reps": 1, "rooms": 2, "seconds": 0.5, "shared_batch": 2})
    section = asyncio.run(_run(args))
    publish(NAME, section, args.tiny)
    return exit_status(True, args.tiny, True)


if __name__ == "__main__":
    raise SystemExit(main())
