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
from pathlib import Path
from typing import Any

import aiohttp

from bench import profiling, servers
from bench.loadgen import Control, split, window
from bench.measure import Run, measure_window
from bench.options import HIDDEN, PROFILE_ONCE, add_run_options, parse_options, scenario_parser
from bench.participants import connector, join
from bench.report import exit_status, git_commit, machine, publish, today
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


async def _one(mode: str, args: argparse.Namespace, profile: Path | None = None) -> Run:
    server = await (servers.echo() if mode == "bare" else servers.embedded())
    try:
        loops = [f"p{i}" for i in range(args.loops)]
        configs = [{"mode": mode, "api": server.api_url, "portal": server.portal_url, "loops": chunk}
                   for chunk in split(loops, args.procs)]
        return await measure_window(server, "bench.login:_worker", configs, f"login {mode}", args.warmup,
                                    args.duration, profile={server.pids[0]: profile} if profile else None,
                                    ready_timeout=60)
    finally:
        await server.close()


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
        publish("login profile", profile, args.tiny)
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
    publish("login", "\n".join(lines), args.tiny)
    return exit_status(passed, args.tiny, ours.rate > 0 and ours.errors == 0)


def main(argv: list[str] | None = None) -> int:
    parser = scenario_parser("login", __doc__)
    parser.add_argument("--loops", type=int, default=20)
    add_run_options(parser, procs=2, reps=3, reps_help="≥ 1", warmup=2.0, duration=5.0,
                    broker=HIDDEN, profile=PROFILE_ONCE)
    args = parse_options(parser, argv, tiny={"loops": 2, "procs": 1, "reps": 1, "warmup": 0.2, "duration": 0.5})
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    sys.exit(main())
