"""Relay over RabbitMQ: the ``relay`` scenario with portal and controller in processes of their own.

Our side: cluster manager, token API, controller and one portal, each its own process, on one
throwaway RabbitMQ node (or ``--broker``); the same clients in pairs as ``bench/relay.py``.  A relayed
message costs :data:`RPCS_PER_RELAY` RPCs: the portal's ``text`` call to the controller and the
controller's ``deliver`` call back to the portal (the plain-client ``ack`` cast is batched and
not counted).

Baseline, same run, interleaved: ``aio_pika.patterns.JsonRPC`` round trips (callee in its own
process, as in ``bench/rpc.py``; caller in a load-generator process) with as many calls in flight
as there are clients, × :data:`RPCS_PER_RELAY`.  CPU = the processes doing the work over the measured
window: ours portal + controller + broker; baseline caller + callee + broker.

Run: ``python -m bench relay-cluster [--clients 50] [--broker URL]``.

``--kinds K1,K2,… --rate-per-client R`` drives the cluster open loop instead: every client sends ``text``
to its partner R times a second on a fixed schedule (the clients' phases spread evenly over the period,
or at random with ``--phases random``), whatever the replies; it reports send → delivery at the partner
and send → ack of the messages sent in the measured window, and CPU per delivered message, so that a
journal's latency at a light, fixed load can be compared (a closed loop only shows it at saturation).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import profiling, servers
from bench.loadgen import Control, Workers, split, window
from bench.measure import measure_window
from bench.participants import connector, gather_limited, join_retrying
from bench.proc import CpuMeter
from bench.options import THROWAWAY_BROKER, add_run_options, parse_options, scenario_parser
from bench.relay import MESSAGE, run_pairs
from bench.sioclient import SioError
from bench.report import exit_status, git_commit, machine, median, percentile, publish, today

__all__ = ["main", "RPCS_PER_RELAY"]

GOAL_RATIO = 1.5
#: The journal's cost on the relay path: CPU per message with it ≤ this × without it (same run).
JOURNAL_GOAL_RATIO = 1.2
RPCS_PER_RELAY = 2
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


async def _jsonrpc_worker(config: dict[str, Any], control: Control) -> dict[str, Any]:
    import aio_pika
    from aio_pika.patterns import JsonRPC

    conn = await aio_pika.connect_robust(config["broker"])
    channel = await conn.channel()
    rpc = await JsonRPC.create(channel)
    payload = {"to": "x" * 32, "message": MESSAGE}
    command = await control.report({"ready": 1})
    begin, t0, t1 = command["begin"], *window(command)
    begin += time.perf_counter() - time.time()
    latencies: list[float] = []
    perf = time.perf_counter

    async def run() -> None:
        await asyncio.sleep(max(0.0, begin - perf()))
        while True:
            start = perf()
            if start >= t1:
                return
            await asyncio.wait_for(rpc.call("bench_echo", kwargs={"value": payload}), 10)
            end = perf()
            if t0 <= end <= t1:
                latencies.append(end - start)

    await asyncio.gather(*(run() for _ in range(config["in_flight"])))
    await rpc.close()
    await conn.close()
    return {"latencies": latencies}


async def _rate_worker(config: dict[str, Any], control: Control) -> dict[str, Any]:
    """Open loop (``--rate-per-client``) — each client sends ``text`` to its partner every ``interval`` s on a fixed
    schedule, however many are in flight; reports send → delivery (``latencies``) and send → ack."""
    import aiohttp

    interval, first, total = config["interval"], config["first"], config["total"]
    perf = time.perf_counter
    #: message text -> its send time, until delivered
    sent: dict[str, float] = {}
    window_ = [0.0, 0.0]
    delivered: list[float] = []
    acked: list[float] = []
    late: list[float] = []
    errors: list[str] = []

    def on_text(data: Any) -> None:
        start = sent.pop(data.get("message", "") if isinstance(data, dict) else "", None)
        if start is not None and window_[0] <= start < window_[1]:
            delivered.append(perf() - start)

    async with aiohttp.ClientSession(connector=connector()) as session:
        joined = await gather_limited([join_retrying(session, config["api"], room, user, handlers={"text": on_text})
                                       for user, room in config["clients"]], 10)
        clients = [p.client for p in joined]
        ids = [p.id for p in joined]
        command = await control.report({"ready": len(clients)})
        begin, t0, t1 = command["begin"], *window(command)
        begin += perf() - time.time()
        window_[:] = [t0, t1]

        async def one(client: Any, payload: dict[str, str], start: float) -> None:
            try:
                ack = await client.call("text", payload, timeout=10)
            except (TimeoutError, SioError) as e:
                errors.append(f"ack: {e!r}")
                return
            end = perf()
            if ack[0] != "ok":
                errors.append(str(ack)[:200])
            elif t0 <= start < t1:
                acked.append(end - start)

        async def run(me: int) -> None:
            client, to = clients[me], ids[me ^ 1]
            # the clients' phases in the period: spread evenly, or random (the same in every run: seeded)
            share = random.Random(first + me).random() if config["phases"] == "random" else (first + me) / total
            due = begin + interval * share
            seq = 0
            tasks: set[asyncio.Task[None]] = set()
            while True:
                await asyncio.sleep(max(0.0, due - perf()))
                start = perf()
                if start >= t1:
                    break
                text = f"{first + me}:{seq}:".ljust(len(MESSAGE), "x")
                sent[text] = start
                if t0 <= start < t1:
                    late.append(start - due)
                task = asyncio.ensure_future(one(client, {"to": to, "message": text}, start))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                seq += 1
                due += interval
            await asyncio.gather(*tasks)

        await asyncio.gather(*(run(i) for i in range(len(clients))))
        deadline = perf() + 10
        while perf() < deadline and any(t0 <= start < t1 for start in sent.values()):
            await asyncio.sleep(0.05)
        lost = sum(1 for start in sent.values() if t0 <= start < t1)
        count = len(errors) + lost
        if lost:
            errors.append(f"{lost} messages sent in the window not delivered within 10 s")
        await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)
    return {"latencies": delivered, "ack_latencies": acked, "late_latencies": late, "errors": errors[:20],
            "error_count": count}


@dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # per relayed message (ours) or per call (JsonRPC)
    errors: int  # a count; `summary` adds it up over the repetitions: one error in any of them fails
    #: ``cpu_us`` split by process (ours: portal, controller, broker), µs per relayed message.
    split: dict[str, float] = field(default_factory=dict)
    #: What else the run learned (the holder journal: entries per holder message).
    note: str = ""
    #: Open loop: send → ack p50 / p99, ms.
    ack_p50_ms: float = 0.0
    ack_p99_ms: float = 0.0

    @staticmethod
    def summary(runs: list[Run]) -> Run:
        return Run(
            rate=median([r.rate for r in runs]),
            p50_ms=median([r.p50_ms for r in runs]),
            p99_ms=median([r.p99_ms for r in runs]),
            cpu_us=median([r.cpu_us for r in runs]),
            errors=sum(r.errors for r in runs),
            split={k: median([r.split.get(k, 0.0) for r in runs]) for k in runs[0].split} if runs else {},
            ack_p50_ms=median([r.ack_p50_ms for r in runs]),
            ack_p99_ms=median([r.ack_p99_ms for r in runs]),
        )


async def _jsonrpc(broker: servers.Broker, args: argparse.Namespace) -> Run:
    callee = subprocess.Popen([sys.executable, "-m", "bench.rpc", "--serve", "jsonrpc", "--broker", broker.url],
                              stdout=subprocess.PIPE, text=True, cwd=_ROOT)
    try:
        assert callee.stdout is not None
        line = await asyncio.to_thread(callee.stdout.readline)
        if "READY" not in line:
            raise RuntimeError(f"JsonRPC callee did not start: {line!r}")
        async with Workers("bench.relay_cluster:_jsonrpc_worker",
                           [{"broker": broker.url, "in_flight": args.clients}]) as workers:
            await workers.reports(timeout=60)
            meter = CpuMeter([callee.pid, *workers.pids, *_beam(broker)])
            begin = time.time() + 0.2
            t0 = begin + args.warmup
            t1 = t0 + args.duration
            await workers.send({"begin": begin, "t0": t0, "t1": t1})
            await asyncio.sleep(t0 - time.time())
            meter.start()
            await asyncio.sleep(t1 - time.time())
            cpu = meter.stop()
            results = await workers.reports(timeout=60)
    finally:
        callee.terminate()
        callee.wait(10)
    latencies = [x for r in results for x in r["latencies"]]
    n = len(latencies)
    return Run(n / args.duration, percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3,
               cpu / n * 1e6 if n else float("inf"), 0)


def _beam(broker: servers.Broker) -> list[int]:
    """The throwaway node's Erlang VM (its short-lived helper processes may be gone before the window ends)."""
    pids = []
    for pid in broker.pids:
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().startswith("beam"):
                    pids.append(pid)
        except OSError:
            continue
    return pids


async def _ours(broker: servers.Broker, args: argparse.Namespace, journal: bool = True,
                profile: Path | None = None, kind: str | None = None, rate: float = 0.0) -> Run:
    """Our cluster with its default journal (the holder journal on RabbitMQ streams) or with ``journal.kind = off``
    (``kind``: that ``journal.kind``); ``profile``: py-spy samples the controller into this file; ``rate``:
    open loop at that many messages a second per client (0: closed loop)."""
    if kind is None and not journal:
        kind = "off"
    # ``--kinds``: every kind at log level info (the holder journal logs its message counts at close);
    # ``holder@8``: the holder journal with ``journal.stream.holder_hold`` 8 ms
    kind, _, hold_ms = (kind or "").partition("@")
    # Every run its journal's streams of its own: the rooms' names are the same in every run, and a history left
    # by an earlier run on the broker would be recovered at the joins (the holder journal's replay then reads
    # the earlier runs' holder streams).
    extra = {"JOURNAL__STREAM__PREFIX": f"bench{uuid.uuid4().hex[:8]}.journal.",
             **({"JOURNAL__KIND": kind} if kind else {}), **({"LOG__LEVEL": "info"} if args.kinds else {}),
             **({"JOURNAL__STREAM__HOLDER_HOLD": str(float(hold_ms) / 1000)} if hold_ms else {})}
    server = await servers.cluster(broker.url, extra_settings=extra)
    note = ""
    try:
        roles = {"portal": [server.pid("portal0")], "controller": [server.pid("controller")], "broker": _beam(broker)}
        pids = [pid for group in roles.values() for pid in group]
        if rate:
            r = await _run_rate(server, args, rate, pids)
        else:
            r = await run_pairs(server, "ours", args.clients, args.procs, args.warmup, args.duration, cpu_pids=pids,
                                profile={server.pid("controller"): profile} if profile else None)
        if kind == "holder":
            note = _holder_messages(server)
    finally:
        await server.close()
    split = {role: sum(r.cpu_us_by_pid.get(pid, 0.0) for pid in group) for role, group in roles.items()}
    acked = r.samples.get("ack", [])
    return Run(r.rate, r.p50_ms, r.p99_ms, r.cpu_us, int(r.errors), split, note,
               percentile(acked, 0.5) * 1e3 if acked else 0.0, percentile(acked, 0.99) * 1e3 if acked else 0.0)


async def _run_rate(server: servers.Server, args: argparse.Namespace, rate: float, pids: list[int]) -> Any:
    """:func:`_rate_worker` over ``args.procs`` processes, each pair kept in one process."""
    pairs = [[(f"u{i}a", f"relay{i}"), (f"u{i}b", f"relay{i}")] for i in range(max(1, args.clients // 2))]
    chunks = split(pairs, args.procs)
    total = sum(2 * len(chunk) for chunk in chunks)
    configs, first = [], 0
    for chunk in chunks:
        configs.append({"api": server.api_url, "interval": 1.0 / rate, "first": first, "total": total,
                        "phases": args.phases, "clients": [c for pair in chunk for c in pair]})
        first += 2 * len(chunk)
    return await measure_window(server, "bench.relay_cluster:_rate_worker", configs, f"relay-cluster {rate:g}/s",
                                args.warmup, args.duration, pids)


def _holder_messages(server: servers.Server) -> str:
    """The controller stopped, what its holder journal logged at close: holder messages and entries in them."""
    controller = server.procs["controller"]
    controller.terminate()
    controller.wait(10)
    found = re.search(rb"journal_holder_closed .*?messages=(\d+) entries=(\d+) held=(\d+)",
                      (server.workdir / "controller.log").read_bytes())
    if found is None:
        return "holder messages: not logged"
    messages, entries, held = int(found[1]), int(found[2]), int(found[3])
    return (f"{entries:,} entries in {messages:,} holder messages ({entries / max(messages, 1):.2f} per message), "
            f"{held:,} held")


async def _kinds(args: argparse.Namespace) -> int:
    """``--kinds``: the cluster with each ``journal.kind`` given, interleaved (the order reversed every
    other repetition); CPU per relayed message by process, and each kind's ratio to ``off``.  Prints only."""
    kinds = args.kinds.split(",")
    runs: dict[str, list[Run]] = {kind: [] for kind in kinds}
    async with servers.broker(args.broker) as broker:
        for rep in range(args.reps):
            for kind in kinds if rep % 2 == 0 else kinds[::-1]:
                run = await _ours(broker, args, kind=kind, rate=args.rate_per_client)
                runs[kind].append(run)
                split = ", ".join(f"{role} {us:.0f}" for role, us in run.split.items())
                acks = f", ack p50 {run.ack_p50_ms:.2f} p99 {run.ack_p99_ms:.2f} ms" if args.rate_per_client else ""
                print(f"rep {rep + 1} {kind}: {run.rate:,.0f}/s p50 {run.p50_ms:.2f} p99 {run.p99_ms:.2f} ms{acks}, "
                      f"{run.cpu_us:.0f} µs ({split}), errors {run.errors} {run.note}", flush=True)
    if "off" in runs:
        for kind in kinds:
            ratios = [r.cpu_us / o.cpu_us for r, o in zip(runs[kind], runs["off"]) if o.cpu_us]
            median = Run.summary(runs[kind])
            print(f"{kind}: median {median.cpu_us:.0f} µs, p50 {median.p50_ms:.2f} p99 {median.p99_ms:.2f} ms; ratio to off per repetition "
                  + ", ".join(f"{ratio:.2f}" for ratio in ratios)
                  + (f"; median {sorted(ratios)[len(ratios) // 2]:.2f}" if ratios else ""), flush=True)
    return 0


async def _bench(args: argparse.Namespace) -> int:
    if args.kinds:
        return await _kinds(args)
    runs: dict[str, list[Run]] = {"jsonrpc": [], "ours": [], "no journal": []}
    async with servers.broker(args.broker) as broker:
        for rep in range(args.reps):
            runs["jsonrpc"].append(await _jsonrpc(broker, args))
            runs["ours"].append(await _ours(broker, args))
            runs["no journal"].append(await _ours(broker, args, journal=False))
            print(f"relay-cluster rep {rep + 1}: jsonrpc {runs['jsonrpc'][-1]}, ours {runs['ours'][-1]}, "
                  f"no journal {runs['no journal'][-1]}", flush=True)
        if args.profile:
            # An extra run under py-spy (not in the medians: sampling costs CPU on the same cores).
            run = await _ours(broker, args, profile=args.profile)
            print(f"relay-cluster profiled: {run}", flush=True)
            publish("relay-cluster profile", profiling.section(
                "relay-cluster profile", args.profile, run.split.get("controller", 0.0), "msg",
                f"the controller during one extra `relay-cluster` run with the journal ({run.rate:,.0f} msgs/s)"),
                args.tiny)
    ours, base, bare = Run.summary(runs["ours"]), Run.summary(runs["jsonrpc"]), Run.summary(runs["no journal"])
    budget = base.cpu_us * RPCS_PER_RELAY
    ratio = ours.cpu_us / budget if budget else float("inf")
    journal_ratio = ours.cpu_us / bare.cpu_us if bare.cpu_us else float("inf")
    lat_ratio = ours.p50_ms / (base.p50_ms * RPCS_PER_RELAY) if base.p50_ms else float("inf")
    passed = ratio <= GOAL_RATIO and journal_ratio <= JOURNAL_GOAL_RATIO and ours.errors == 0 and bare.errors == 0
    broker_note = "broker (beam.smp) included" if broker.pid else "broker not included (external `--broker`)"
    lines = [
        "## relay-cluster",
        "",
        f"The `relay` scenario ({args.clients} clients in pairs, `text` to the partner, wait for ack + delivery) with",
        "cluster manager, token API, controller and one portal each in its own process on one throwaway RabbitMQ",
        f"node. A relay needs {RPCS_PER_RELAY} RPCs (portal → controller `text`, controller → portal `deliver`).",
        f"Baseline, same run, interleaved: `aio_pika.patterns.JsonRPC` round trips, {args.clients} in flight, callee and",
        f"caller in processes of their own, × {RPCS_PER_RELAY}. CPU over the measured window: ours portal + controller;",
        f"baseline caller + callee; {broker_note}. {args.reps} repetitions of {args.warmup:g} s warm-up +",
        f"{args.duration:g} s measured, medians (`bench/relay_cluster.py`).",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}",
        f"- goal: CPU per relayed message ≤ {GOAL_RATIO}× ({RPCS_PER_RELAY} × JsonRPC CPU per call), and with the",
        f"  journal (RabbitMQ streams, the default) ≤ {JOURNAL_GOAL_RATIO}× the same cluster with `journal.kind = off`",
        "",
        "| what | per s | p50 ms | p99 ms | CPU µs each | errors |",
        "|---|---:|---:|---:|---:|---:|",
        f"| JsonRPC call (baseline) | {base.rate:,.0f} | {base.p50_ms:.2f} | {base.p99_ms:.2f} | {base.cpu_us:.0f} | – |",
        f"| {RPCS_PER_RELAY} × JsonRPC call | – | {base.p50_ms * RPCS_PER_RELAY:.2f} | – | {budget:.0f} | – |",
        f"| switchboard relayed message | {ours.rate:,.0f} | {ours.p50_ms:.2f} | {ours.p99_ms:.2f} | {ours.cpu_us:.0f} | "
        f"{ours.errors:g} |",
        f"| … with `journal.kind = off` | {bare.rate:,.0f} | {bare.p50_ms:.2f} | {bare.p99_ms:.2f} | {bare.cpu_us:.0f} | "
        f"{bare.errors:g} |",
        "",
        "CPU µs per relayed message by process (medians): " + "; ".join(
            f"{label}: " + ", ".join(f"{role} {us:.0f}" for role, us in run.split.items())
            for label, run in (("with the journal", ours), ("`journal.kind = off`", bare))) + ".",
        "",
        "Runs: " + "; ".join(f"{k}: " + ", ".join(f"{r.rate:,.0f}/s {r.cpu_us:.0f} µs" for r in v)
                             for k, v in runs.items()) + ".",
        "",
        f"**{'pass' if passed else 'miss'}**: CPU ratio {ratio:.2f}× (goal ≤ {GOAL_RATIO}×); the journal's cost "
        f"{journal_ratio:.2f}× (goal ≤ {JOURNAL_GOAL_RATIO}×); p50 latency "
        f"{lat_ratio:.2f}× {RPCS_PER_RELAY} JsonRPC round trips.",
    ]
    publish("relay-cluster", "\n".join(lines), args.tiny)
    return exit_status(passed, args.tiny, ours.rate > 0 and ours.errors == 0 and bare.errors == 0)


def main(argv: list[str] | None = None) -> int:
    parser = scenario_parser("relay-cluster", __doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--kinds", default="", help="comma-separated journal.kind values (e.g. stream,holder,off; "
                        "holder@8: with journal.stream.holder_hold 8 ms): only those, interleaved, each kind's "
                        "CPU ratio to off printed (nothing recorded)")
    parser.add_argument("--rate-per-client", type=float, default=0.0,
                        help="with --kinds: open loop, this many texts a second per client on a fixed schedule "
                             "(latency at a light load); 0: closed loop")
    parser.add_argument("--phases", choices=("even", "random"), default="even",
                        help="with --rate-per-client: the clients' send times spread evenly over the period, or at "
                             "random (seeded: the same in every run)")
    add_run_options(parser, procs=2, reps=3, warmup=2.0, duration=5.0, broker=THROWAWAY_BROKER,
                    profile="also run the cluster with the journal once with py-spy on the controller, "
                            "collapsed stacks to this file")
    args = parse_options(parser, argv, tiny={"clients": 4, "procs": 1, "reps": 1, "warmup": 0.2, "duration": 0.5})
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    sys.exit(main())
