"""RPC round trips: our AmqpTransport against aio_pika.patterns.JsonRPC, same broker, same run.

Each side has its callee in a separate process (as in the reference measurement); the caller runs
here.  Sequential calls (1 in flight) and 50 in flight, several repetitions interleaved
(ours, JsonRPC, ours, …), medians reported.  Also: LocalTransport calls per second in-process.

Run: ``python -m bench rpc`` (starts a throwaway RabbitMQ node) or ``--broker amqp://…``.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika
from aio_pika.patterns import JsonRPC

from bench import servers
from bench.options import THROWAWAY_BROKER, add_run_options, parse_options, scenario_parser
from bench.proc import spawn_ready
from bench.report import exit_status, git_commit, machine, median, percentile, publish, today
from rpc import LocalBroker, RpcSettings, rpc_method
from rpc.amqp import AmqpTransport

__all__ = ["main"]

GOAL_RATIO = 1.5
PAYLOAD = {"seq": 0, "pad": "x" * 64}


class _Echo:
    @rpc_method
    async def echo(self, value: object) -> object:
        return value


async def _echo_kw(*, value: object) -> object:
    return value


# -- callee processes -----------------------------------------------------------------------------

async def _serve(kind: str, broker: str) -> None:
    if kind == "ours":
        transport = AmqpTransport("bench-callee", RpcSettings(broker_url=broker, prefetch=128))
        await transport.start()
        await transport.serve("bench.echo", _Echo())
    else:
        conn = await aio_pika.connect_robust(broker)
        channel = await conn.channel()
        await channel.set_qos(prefetch_count=128)
        rpc = await JsonRPC.create(channel)
        await rpc.register("bench_echo", _echo_kw, auto_delete=True)
    print("READY", flush=True)
    await asyncio.Event().wait()


def _start_callee(kind: str, broker: str) -> subprocess.Popen[str]:
    return spawn_ready("bench.rpc", ["--serve", kind, "--broker", broker], f"callee {kind}")


# -- measurement ----------------------------------------------------------------------------------

@dataclass
class Run:
    calls_per_s: float
    p50_ms: float
    p99_ms: float


async def _measure(call: Callable[[], Awaitable[object]], in_flight: int, warmup: float, duration: float) -> Run:
    latencies: list[float] = []
    stop_at = 0.0
    measuring = False

    async def loop() -> None:
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                return
            await call()
            if measuring:
                latencies.append(time.perf_counter() - started)

    stop_at = time.perf_counter() + warmup
    await asyncio.gather(*(loop() for _ in range(in_flight)))
    measuring = True
    begin = time.perf_counter()
    stop_at = begin + duration
    await asyncio.gather(*(loop() for _ in range(in_flight)))
    elapsed = time.perf_counter() - begin
    return Run(len(latencies) / elapsed, percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3)


async def _ours_caller(broker: str) -> tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[None]]]:
    transport = AmqpTransport("bench-caller", RpcSettings(broker_url=broker, call_timeout=10))
    await transport.start()

    async def call() -> object:
        return await transport.call("bench.echo", "echo", {"value": PAYLOAD})

    return call, transport.close


async def _jsonrpc_caller(broker: str) -> tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[None]]]:
    conn = await aio_pika.connect_robust(broker)
    channel = await conn.channel()
    rpc = await JsonRPC.create(channel)

    async def call() -> object:
        return await asyncio.wait_for(rpc.call("bench_echo", kwargs={"value": PAYLOAD}), 10)

    async def close() -> None:
        await rpc.close()
        await conn.close()

    return call, close


async def _local_calls_per_s(duration: float, roundtrip: bool) -> float:
    broker = LocalBroker(roundtrip=roundtrip)
    server, client = broker.transport("s"), broker.transport("c")
    await server.serve("bench.echo", _Echo())
    count = 0
    end = time.perf_counter() + duration
    while time.perf_counter() < end:
        for _ in range(100):
            await client.call("bench.echo", "echo", {"value": PAYLOAD})
        count += 100
    return count / duration


async def _run(broker: str, reps: int, warmup: float, duration: float) -> dict[str, dict[int, list[Run]]]:
    results: dict[str, dict[int, list[Run]]] = {"ours": {1: [], 50: []}, "jsonrpc": {1: [], 50: []}}
    for _ in range(reps):
        for kind in ("ours", "jsonrpc"):
            callee = _start_callee(kind, broker)
            try:
                call, close = await (_ours_caller(broker) if kind == "ours" else _jsonrpc_caller(broker))
                for in_flight in (1, 50):
                    results[kind][in_flight].append(await _measure(call, in_flight, warmup, duration))
                await close()
            finally:
                callee.terminate()
                callee.wait(10)
    return results


def _summary(runs: list[Run]) -> Run:
    return Run(median([r.calls_per_s for r in runs]), median([r.p50_ms for r in runs]), median([r.p99_ms for r in runs]))


def _section(results: dict[str, dict[int, list[Run]]], local: tuple[float, float], reps: int, duration: float) -> tuple[str, bool]:
    lines = [
        "## rpc",
        "",
        "Round trips of `rpc.amqp.AmqpTransport` against `aio_pika.patterns.JsonRPC` (the baseline),",
        "each with its callee in its own process, one throwaway RabbitMQ node, same run, interleaved;",
        f"{reps} repetitions of {duration:g} s, medians (`bench/rpc.py`).",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}",
        f"- goal: latency ≤ {GOAL_RATIO}× JsonRPC's",
        "",
        "| in flight | ours calls/s | ours p50 ms | ours p99 ms | JsonRPC calls/s | JsonRPC p50 ms | JsonRPC p99 ms | p50 ratio | verdict |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    passed = True
    for in_flight in (1, 50):
        ours, base = _summary(results["ours"][in_flight]), _summary(results["jsonrpc"][in_flight])
        ratio = ours.p50_ms / base.p50_ms if base.p50_ms else float("inf")
        ok = ratio <= GOAL_RATIO
        passed &= ok
        lines.append(
            f"| {in_flight} | {ours.calls_per_s:,.0f} | {ours.p50_ms:.2f} | {ours.p99_ms:.2f} | "
            f"{base.calls_per_s:,.0f} | {base.p50_ms:.2f} | {base.p99_ms:.2f} | {ratio:.2f} | {'pass' if ok else 'miss'} |"
        )
    lines += [
        "",
        f"In-process `LocalTransport`: {local[0]:,.0f} calls/s; with the JSON round trip the tests use: {local[1]:,.0f} calls/s.",
    ]
    return "\n".join(lines), passed


async def _bench(args: argparse.Namespace) -> int:
    async with servers.broker(args.broker) as broker:
        results = await _run(broker.url, args.reps, args.warmup, args.duration)
        local = (await _local_calls_per_s(args.duration / 2, False), await _local_calls_per_s(args.duration / 2, True))
    section, passed = _section(results, local, args.reps, args.duration)
    publish("rpc", section, args.tiny)
    return exit_status(passed, args.tiny, True)


def main(argv: list[str] | None = None) -> int:
    parser = scenario_parser("rpc", __doc__)
    add_run_options(parser, reps=3, warmup=1.0, duration=5.0, broker=THROWAWAY_BROKER)
    parser.add_argument("--serve", choices=["ours", "jsonrpc"], help=argparse.SUPPRESS)
    args = parse_options(parser, argv, tiny={"reps": 1, "warmup": 0.1, "duration": 0.3})
    if args.serve:
        asyncio.run(_serve(args.serve, args.broker))
        return 0
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    sys.exit(main())
