"""Login cycles: concurrent loops of mint token → connect → ``login`` → ``logout``.

Embedded mode (``switchboard up`` in a subprocess; the token API is in the same process, so minting
is part of the measured server CPU).  Baseline, same run, interleaved: a bare Socket.IO connect +
disconnect cycle on the bare python-socketio server (``bench/baselines.py``), same clients, same
number of loops.  Each loop uses a room of its own; every cycle opens a new websocket.

Run: ``python -m bench login [--loops 20] [--procs 2] [--reps 3] [--duration 5]``.
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
from bench.participants import connector, join
from bench.proc import CpuMeter
from bench.report import git_commit, machine, median, percentile, today, write_section
from bench.sioclient import SioClient

__all__ = ["main"]

GOAL_RATE_RATIO = 0.4


async def _worker(config: dict[str, Any], control: Control) -> dict[str, Any]:
    mode = config["mode"]
    async with aiohttp.ClientSession(connector=connector()) as session:
        command = await control.report({"ready": len(config["loops"])})
        begin, t0, t1 = command["begin"], *window(command)
        begin += time.perf_counter() - time.time()
        latencies: list[float] = []
        errors: list[str] = []
        perf = time.perf_counter

        async def cycle(name: str, n: int) -> None:
            if mode == "bare":
                client = SioClient()
                await client.connect(session, config["portal"])
                await client.disconnect()
            else:
                p = await join(session, config["api"], f"login-{name}", f"{name}-{n}", portal=config["portal"])
                await p.logout()

        async def run(name: str) -> None:
            await asyncio.sleep(max(0.0, begin - perf()))
            n = 0
            while True:
                start = perf()
                if start >= t1:
                    return
                n += 1
                try:
                    async with asyncio.timeout(10):
                        await cycle(name, n)
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    errors.append(repr(exc)[:200])
                    await asyncio.sleep(0.05)
                    continue
                end = perf()
                if t0 <= end <= t1:
                    latencies.append(end - start)

        await asyncio.gather(*(run(name) for name in config["loops"]))
    return {"latencies": latencies, "errors": errors[:20], "error_count": len(errors)}


@dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    cpu_pct: float
    gen_pct: float
    errors: float  # a count, but `summary` takes the median over repetitions: it may end in .5

    @staticmethod
    def summary(runs: list[Run]) -> Run:
        return Run(*(median([getattr(r, f) for r in runs]) for f in
                     ("rate", "p50_ms", "p99_ms", "cpu_us", "cpu_pct", "gen_pct", "errors")))


async def _one(mode: str, args: argparse.Namespace, profile: Path | None = None) -> Run:
    server = await (servers.echo() if mode == "bare" else servers.embedded())
    try:
        loops = [f"p{i}" for i in range(args.loops)]
        configs = [{"mode": mode, "api": server.api_url, "portal": server.portal_url, "loops": chunk}
                   for chunk in split(loops, args.procs)]
        server_cpu = CpuMeter(server.pids)
        async with Workers("bench.login:_worker", configs) as workers:
            await workers.reports(timeout=60)
            gen_cpu = CpuMeter(workers.pids)
            begin = time.time() + 0.2
            t0 = begin + args.warmup
            t1 = t0 + args.duration
            await workers.send({"begin": begin, "t0": t0, "t1": t1})
            await asyncio.sleep(t0 - time.time())
            spy = await profiling.sample(server.pids[0], args.duration, profile) if profile else None
            server_cpu.start()
            gen_cpu.start()
            await asyncio.sleep(t1 - time.time())
            cpu, gen = server_cpu.stop(), gen_cpu.stop()
            results = await workers.reports(timeout=60)
            if spy is not None:
                await spy.wait()
    finally:
        await server.close()
    latencies = [x for r in results for x in r["latencies"]]
    for r in results:
        for e in r["errors"][:3]:
            print(f"login {mode}: error {e}", file=sys.stderr)
    count = len(latencies)
    return Run(count / args.duration, percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3,
               cpu / count * 1e6 if count else float("inf"), cpu / args.duration * 100, gen / args.duration * 100,
               sum(r["error_count"] for r in results))


async def _bench(args: argparse.Namespace) -> int:
    runs: dict[str, list[Run]] = {"bare": [], "ours": []}
    for rep in range(args.reps):
        for mode in ("bare", "ours"):
            run = await _one(mode, args)
            runs[mode].append(run)
            print(f"login rep {rep + 1} {mode}: {run}", flush=True)
    if args.profile:
        # An extra run under py-spy (not in the medians: sampling costs CPU on the same cores).
        run = await _one("ours", args, args.profile)
        print(f"login profiled: {run}")
        profile = profiling.section("login profile", args.profile, run.cpu_us, "cycle",
                                    f"the embedded server during one extra `login` run ({run.rate:,.0f} cycles/s)")
        print(profile)
        if not args.tiny:
            write_section("login profile", profile)
    ours, base = Run.summary(runs["ours"]), Run.summary(runs["bare"])
    ratio = ours.rate / base.rate if base.rate else 0.0
    passed = ratio >= GOAL_RATE_RATIO and ours.errors == 0

    def row(name: str, r: Run) -> str:
        return (f"| {name} | {r.rate:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.cpu_pct:.0f} | "
                f"{r.cpu_us / 1000:.2f} | {r.gen_pct:.0f} | {r.errors:g} |")

    per_run = "; ".join(f"{k}: " + ", ".join(f"{r.rate:,.0f}/s" for r in v) for k, v in runs.items())
    lines = [
        "## login",
        "",
        f"{args.loops} concurrent loops of mint token (`POST /token`) → websocket connect → `login` → `logout`",
        "(a new socket per cycle, a room per loop) against the embedded server (`switchboard up`, own process).",
        "Baseline in the same run, interleaved: bare Socket.IO connect + disconnect cycles on the bare",
        "python-socketio server (uvloop), same client and loops.",
        f"Load generator: {args.procs} processes, uvloop, raw websocket client. {args.reps} repetitions of",
        f"{args.warmup:g} s warm-up + {args.duration:g} s measured, medians (`bench/login.py`).",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}",
        f"- goal: login cycle rate ≥ {GOAL_RATE_RATIO}× the bare connect cycle rate",
        "",
        "| cycle | cycles/s | p50 ms | p99 ms | server CPU % | server CPU ms/cycle | load gen CPU % | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        row("bare connect + disconnect (baseline)", base),
        row("mint + connect + login + logout", ours),
        "",
        f"Runs: {per_run}.",
        "",
        f"**{'pass' if passed else 'miss'}**: {ratio:.2f}× the bare cycle rate (goal ≥ {GOAL_RATE_RATIO}×); "
        f"server CPU per cycle {ours.cpu_us / base.cpu_us if base.cpu_us else 0:.1f}× the bare one's.",
    ]
    section = "\n".join(lines)
    print(section)
    if args.tiny:  # records nothing; fails only when nothing got through
        return 0 if ours.rate > 0 and ours.errors == 0 else 1
    write_section("login", section)
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench login", description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=20)
    parser.add_argument("--procs", type=int, default=2, help="load-generator processes")
    parser.add_argument("--reps", type=int, default=3, help="≥ 1")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--broker", default="", help=argparse.SUPPRESS)
    parser.add_argument("--profile", type=Path, help="also run once under py-spy, collapsed stacks to this file")
    parser.add_argument("--tiny", action="store_true", help="a very short run that records nothing")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.tiny:
        args.loops, args.procs, args.reps, args.warmup, args.duration = 2, 1, 1, 0.2, 0.5
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    sys.exit(main())
