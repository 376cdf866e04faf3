"""Relay: logged-in clients in pairs, each sends ``text`` to its partner and waits for the delivery.

Embedded mode (``switchboard up`` in a subprocess).  The baseline, in the same run and interleaved
(baseline, ours, baseline, …), is the bare python-socketio acked echo server (``bench/baselines.py``)
driven by the same clients: each sends ``echo`` and waits for the ack.  Every client has one message
in flight; a relayed message counts when both its ack and its delivery to the partner arrived.
The figure that does not depend on how fast the load generator is: the **server process's CPU
time per message** (``/proc/<pid>/stat``) over the measured window.

Run: ``python -m bench relay [--clients 50] [--procs 2] [--reps 3] [--duration 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bench import profiling, servers
from bench.loadgen import Control, Workers, split, window
from bench.participants import connector, gather_limited, join_retrying
from bench.proc import CpuMeter
from bench.report import git_commit, machine, median, percentile, today, write_section
from bench.sioclient import SioClient

__all__ = ["main", "Run", "run_pairs"]

GOAL_CPU_RATIO = 2.5
GOAL_RATE = 4000.0
GOAL_P99_MS = 50.0
MESSAGE = "x" * 64


# -- load generator (worker process) --------------------------------------------------------------

class _Inbox:
    """Where a client's deliveries land: the future its partner's current message waits on."""

    __slots__ = ("future",)

    def __init__(self) -> None:
        self.future: asyncio.Future[Any] | None = None

    def deliver(self, data: Any) -> None:
        future = self.future
        if future is not None and not future.done():
            future.set_result(data)


async def _worker(config: dict[str, Any], control: Control) -> dict[str, Any]:
    mode = config["mode"]
    async with aiohttp.ClientSession(connector=connector()) as session:
        clients: list[SioClient] = []
        inboxes: list[_Inbox] = []
        ids: list[str] = []
        if mode == "echo":
            for _ in config["clients"]:
                client = SioClient()
                await client.connect(session, config["portal"])
                clients.append(client)
                inboxes.append(_Inbox())
                ids.append(client.sid)
        else:
            async def one(user: str, room: str) -> tuple[Any, _Inbox]:
                inbox = _Inbox()
                p = await join_retrying(session, config["api"], room, user,
                               handlers={"text": inbox.deliver})
                return p, inbox

            joined = await gather_limited([one(u, r) for u, r in config["clients"]], 10)
            for p, inbox in joined:
                clients.append(p.client)
                inboxes.append(inbox)
                ids.append(p.id)
        command = await control.report({"ready": len(clients)})
        begin, t0, t1 = command["begin"], *window(command)
        begin += time.perf_counter() - time.time()
        latencies: list[float] = []
        errors: list[str] = []
        loop = asyncio.get_running_loop()
        perf = time.perf_counter

        async def run(me: int) -> None:
            partner = me ^ 1  # clients come in pairs: 0-1, 2-3, …
            client, inbox, to = clients[me], inboxes[partner], ids[partner]
            payload = {"to": to, "message": MESSAGE}
            event = "echo" if mode == "echo" else "text"
            await asyncio.sleep(max(0.0, begin - perf()))
            while True:
                start = perf()
                if start >= t1:
                    return
                try:
                    async with asyncio.timeout(10):
                        if mode == "echo":
                            ack = await client.call(event, payload)
                        else:
                            inbox.future = delivered = loop.create_future()
                            ack = await client.call(event, payload)
                            await delivered
                except TimeoutError:
                    errors.append("timeout")
                    continue
                end = perf()
                if ack[0] != "ok" and mode != "echo":
                    errors.append(str(ack)[:200])
                elif t0 <= end <= t1:
                    latencies.append(end - start)

        await asyncio.gather(*(run(i) for i in range(len(clients))))
        await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)
    return {"latencies": latencies, "errors": errors[:20], "error_count": len(errors)}


# -- parent -------------------------------------------------------------------------------------------

@dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # server CPU per message
    cpu_pct: float  # server CPU over the window, % of one core
    gen_pct: float  # load generators' CPU, % of one core
    errors: float  # a count, but `summary` takes the median over repetitions: it may end in .5

    @staticmethod
    def summary(runs: list[Run]) -> Run:
        return Run(*(median([getattr(r, f) for r in runs]) for f in
                     ("rate", "p50_ms", "p99_ms", "cpu_us", "cpu_pct", "gen_pct", "errors")))


async def run_pairs(server: servers.Server, mode: str, clients: int, procs: int, warmup: float,
                    duration: float, cpu_pids: list[int] | None = None,
                    profile: dict[int, Path] | None = None) -> Run:
    """Drive ``server`` with ``clients`` clients in pairs over ``procs`` load-generator processes.

    ``profile`` maps server pids to files: py-spy samples them over the measured window.
    """
    pairs = [[(f"u{i}a", f"relay{i}"), (f"u{i}b", f"relay{i}")] for i in range(max(1, clients // 2))]
    configs = [{"mode": mode, "api": server.api_url, "portal": server.portal_url,
                "clients": [c for pair in chunk for c in pair]} for chunk in split(pairs, procs)]
    server_cpu = CpuMeter(cpu_pids or server.pids)
    async with Workers("bench.relay:_worker", configs) as workers:
        await workers.reports(timeout=120)
        gen_cpu = CpuMeter(workers.pids)
        begin = time.time() + 0.2
        t0 = begin + warmup
        t1 = t0 + duration
        await workers.send({"begin": begin, "t0": t0, "t1": t1})
        await asyncio.sleep(t0 - time.time())
        spies = [await profiling.sample(pid, duration, out) for pid, out in (profile or {}).items()]
        server_cpu.start()
        gen_cpu.start()
        await asyncio.sleep(t1 - time.time())
        cpu = server_cpu.stop()
        gen = gen_cpu.stop()
        results = await workers.reports(timeout=60)
        for spy in spies:
            await spy.wait()
    latencies = [x for r in results for x in r["latencies"]]
    errors = sum(r["error_count"] for r in results)
    for r in results:
        for e in r["errors"][:3]:
            print(f"relay {mode}: error {e}", file=sys.stderr)
    count = len(latencies)
    return Run(
        rate=count / duration,
        p50_ms=percentile(latencies, 0.5) * 1e3,
        p99_ms=percentile(latencies, 0.99) * 1e3,
        cpu_us=cpu / count * 1e6 if count else float("inf"),
        cpu_pct=cpu / duration * 100,
        gen_pct=gen / duration * 100,
        errors=errors,
    )


async def _bench(args: argparse.Namespace) -> int:
    runs: dict[str, list[Run]] = {"echo": [], "ours": []}
    for rep in range(args.reps):
        for kind in ("echo", "ours"):
            server = await (servers.echo() if kind == "echo" else servers.embedded())
            try:
                run = await run_pairs(server, kind, args.clients, args.procs, args.warmup, args.duration)
            finally:
                await server.close()
            runs[kind].append(run)
            print(f"relay rep {rep + 1} {kind}: {run}", flush=True)
    if args.profile:
        # An extra run under py-spy (not in the medians: sampling costs CPU on the same cores).
        server = await servers.embedded()
        try:
            run = await run_pairs(server, "ours", args.clients, args.procs, args.warmup, args.duration,
                                  profile={server.pid("embedded"): args.profile})
        finally:
            await server.close()
        print(f"relay profiled: {run}")
        profile = profiling.section("relay profile", args.profile, run.cpu_us, "msg",
                                    f"the embedded server during one extra `relay` run ({run.rate:,.0f} msgs/s)")
        print(profile)
        if not args.tiny:
            write_section("relay profile", profile)
    section, passed = _section(runs, args)
    print(section)
    if args.tiny:  # records nothing; fails only when nothing got through
        ours = Run.summary(runs["ours"])
        return 0 if ours.rate > 0 and ours.errors == 0 else 1
    write_section("relay", section)
    return 0 if passed else 1


def _section(runs: dict[str, list[Run]], args: argparse.Namespace) -> tuple[str, bool]:
    ours, base = Run.summary(runs["ours"]), Run.summary(runs["echo"])
    ratio = ours.cpu_us / base.cpu_us if base.cpu_us else float("inf")
    checks = [
        (f"server CPU per relayed message ≤ {GOAL_CPU_RATIO}× the echo's per ack", ratio <= GOAL_CPU_RATIO, f"{ratio:.2f}×"),
        (f"≥ {GOAL_RATE:,.0f} messages/s", ours.rate >= GOAL_RATE, f"{ours.rate:,.0f}/s"),
        (f"p99 ≤ {GOAL_P99_MS:g} ms", ours.p99_ms <= GOAL_P99_MS, f"{ours.p99_ms:.1f} ms"),
        ("no errors", ours.errors == 0, f"{ours.errors:g}"),
    ]
    passed = all(ok for _, ok, _ in checks)

    def row(name: str, r: Run) -> str:
        return (f"| {name} | {r.rate:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.cpu_pct:.0f} | {r.cpu_us:.0f} | "
                f"{r.gen_pct:.0f} | {r.errors:g} |")

    per_run = "; ".join(f"{k}: " + ", ".join(f"{r.rate:,.0f}/s {r.cpu_us:.0f} µs" for r in v) for k, v in runs.items())
    lines = [
        "## relay",
        "",
        f"{args.clients} logged-in clients in pairs (one room per pair), each sending `text` (64-byte message) to its",
        "partner and waiting for the ack and the delivery, one message in flight per client; embedded",
        "server (`switchboard up`, uvloop) in its own process. Baseline in the same run, interleaved: the",
        "bare python-socketio acked echo server (uvloop) driven by the same clients (`echo`, wait for the ack).",
        f"Load generator: {args.procs} processes, uvloop, a raw Engine.IO/Socket.IO websocket client (`bench/sioclient.py`).",
        f"{args.reps} repetitions of {args.warmup:g} s warm-up + {args.duration:g} s measured, medians (`bench/relay.py`).",
        "CPU = server process utime+stime from `/proc` over the measured window.",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}",
        f"- goal: server CPU per relayed message ≤ {GOAL_CPU_RATIO}× the echo's CPU per ack; ≥ {GOAL_RATE:,.0f} messages/s; "
        f"p99 ≤ {GOAL_P99_MS:g} ms",
        "- settings lifted for the load generator: `portal.rate_limit_per_second`/`rate_limit_burst` (50/s per socket)",
        "",
        "| server | msgs/s | p50 ms | p99 ms | server CPU % | server CPU µs/msg | load gen CPU % | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        row("bare echo (baseline)", base),
        row("switchboard relay", ours),
        "",
        f"Runs: {per_run}.",
        "",
    ]
    for name, ok, value in checks:
        lines.append(f"- {'pass' if ok else '**miss**'}: {name} — {value}")
    lines += ["", f"**{'pass' if passed else 'miss'}**: CPU ratio {ratio:.2f}× (goal ≤ {GOAL_CPU_RATIO}×), "
              f"{ours.rate:,.0f} msgs/s, p99 {ours.p99_ms:.1f} ms."]
    return "\n".join(lines), passed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench relay", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--reps", type=int, default=3, help="≥ 1")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--broker", default="", help=argparse.SUPPRESS)  # accepted for `bench all`
    parser.add_argument("--profile", type=Path, help="also run once under py-spy, collapsed stacks to this file")
    parser.add_argument("--tiny", action="store_true", help="a very short run that records nothing")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.tiny:
        args.clients, args.procs, args.reps, args.warmup, args.duration = 4, 1, 1, 0.2, 0.5
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    sys.exit(main())
