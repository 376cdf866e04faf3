"""Relogin: transport close → new socket → ``relogin`` ack, at the same portal and at another portal.

Logged-in clients (one room each) loop: close the websocket without a Socket.IO disconnect (what a
network loss looks like), open a new one, send ``relogin`` with the latest reconnection ticket and
wait for its ack; then pause ``--interval`` seconds.  Latency = from the close to the ack.

- same portal, embedded mode (``switchboard up``);
- same portal and **other portal** in cluster mode: cluster manager, token API, controller and two
  portals in processes of their own on a throwaway RabbitMQ node (or ``--broker``); "other" sends
  every relogin to the portal the client was not on.

No baseline (absolute goals).  Run: ``python -m bench relogin [--clients 20] [--interval 0.5]``.
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
from bench.options import THROWAWAY_BROKER, add_run_options, parse_options, scenario_parser
from bench.report import exit_status, git_commit, machine, median, percentile, publish, today

__all__ = ["main"]

GOAL_SAME_P99_MS = 20.0
GOAL_OTHER_P99_MS = 50.0


async def _worker(config: dict[str, Any], control: Control) -> dict[str, Any]:
    portals: list[str] = config["portals"]
    async with aiohttp.ClientSession(connector=connector()) as session:
        joined = await gather_limited([join_retrying(session, config["api"], room, user)
                                       for user, room in config["clients"]], 10)
        results: dict[str, Any] = {}
        command = await control.report({"ready": len(joined)})
        while command.get("mode"):
            mode = command["mode"]
            begin, t0, t1 = command["begin"], *window(command)
            begin += time.perf_counter() - time.time()
            latencies: list[float] = []
            errors: list[str] = []
            perf = time.perf_counter

            async def run(i: int) -> None:
                p = joined[i]
                # Spread the clients' cycles over the interval.
                await asyncio.sleep(max(0.0, begin - perf()) + command["interval"] * i / len(joined))
                while True:
                    start = perf()
                    if start >= t1:
                        return
                    target = p.portal
                    if mode == "other":
                        target = portals[(portals.index(p.portal) + 1) % len(portals)]
                    try:
                        async with asyncio.timeout(10):
                            await p.client.drop()
                            await p.relogin(session, target)
                    except Exception as exc:  # noqa: BLE001 - counted and reported
                        errors.append(repr(exc)[:200])
                        return  # this participant is gone (its ticket may be spent)
                    end = perf()
                    if t0 <= end <= t1:
                        latencies.append(end - start)
                    await asyncio.sleep(command["interval"])

            await asyncio.gather(*(run(i) for i in range(len(joined))))
            results = {"latencies": latencies, "errors": errors[:20], "error_count": len(errors)}
            command = await control.report(results)
        await asyncio.gather(*(p.client.disconnect() for p in joined), return_exceptions=True)
    return {}


@dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_ms: float
    errors: int  # a count; `summary` adds it up over the repetitions: one error in any of them fails

    @staticmethod
    def summary(runs: list[Run]) -> Run:
        return Run(
            rate=median([r.rate for r in runs]),
            p50_ms=median([r.p50_ms for r in runs]),
            p99_ms=median([r.p99_ms for r in runs]),
            cpu_ms=median([r.cpu_ms for r in runs]),
            errors=sum(r.errors for r in runs),
        )


async def _measure(server: servers.Server, workers: Workers, mode: str, args: argparse.Namespace,
                   profile: Path | None = None) -> Run:
    meter = CpuMeter(server.pids)
    begin = time.time() + 0.2
    t0 = begin + args.warmup
    t1 = t0 + args.duration
    await workers.send({"mode": mode, "interval": args.interval, "begin": begin, "t0": t0, "t1": t1})
    await asyncio.sleep(t0 - time.time())
    spies = [await profiling.sample(server.pid(role), args.duration, profile / f"{role}.prof")
             for role in server.procs] if profile else []
    meter.start()
    await asyncio.sleep(t1 - time.time())
    cpu = meter.stop()
    results = await workers.reports(timeout=60)
    for spy in spies:
        await spy.wait()
    n = sum(len(r["latencies"]) for r in results)
    if profile and n:
        per_role = {role: meter.used[server.pid(role)] / n * 1e3 for role in server.procs}
        sections = [f"## relogin profile", "",
                    f"py-spy (200 Hz) on every switchboard process of the cluster during one extra `{mode}` relogin run",
                    f"({n / args.duration:,.0f} relogins/s); server CPU per relogin by process: "
                    + ", ".join(f"{r} {v:.2f} ms" for r, v in per_role.items()) + ".", "",
                    f"- date: {today()}; commit: {git_commit()}; machine: {machine()}", ""]
        for role in sorted(per_role, key=lambda r: -per_role[r])[:3]:
            sections += [f"### {role} ({per_role[role]:.2f} ms per relogin)", "",
                         profiling.summary(profile / f"{role}.prof", 15, True, per_role[role] * 1e3, "relogin"), ""]
        publish("relogin profile", "\n".join(sections), args.tiny)
    latencies = [x for r in results for x in r["latencies"]]
    for r in results:
        for e in r["errors"][:3]:
            print(f"relogin {mode}: error {e}", file=sys.stderr)
    n = len(latencies)
    return Run(n / args.duration, percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3,
               cpu / n * 1e3 if n else float("inf"), sum(r["error_count"] for r in results))


async def _with(server: servers.Server, modes: list[str], args: argparse.Namespace) -> dict[str, Run]:
    clients = [(f"r{i}", f"relogin{i}") for i in range(args.clients)]
    configs = [{"api": server.api_url, "portals": server.portal_urls, "clients": chunk}
               for chunk in split(clients, args.procs)]
    out: dict[str, Run] = {}
    async with Workers("bench.relogin:_worker", configs) as workers:
        await workers.reports(timeout=120)
        for mode in modes:
            out[mode] = await _measure(server, workers, mode, args)
        if args.profile and "other" in modes:  # an extra run under py-spy, not in the medians
            args.profile.mkdir(parents=True, exist_ok=True)
            await _measure(server, workers, "other", args, args.profile)
            args.profile = None
        await workers.send({})
        await workers.reports(timeout=30)
    return out


async def _bench(args: argparse.Namespace) -> int:
    runs: dict[str, list[Run]] = {"embedded-same": [], "cluster-same": [], "cluster-other": []}
    async with servers.broker(args.broker) as broker:
        for rep in range(args.reps):
            server = await servers.embedded()
            try:
                runs["embedded-same"].append((await _with(server, ["same"], args))["same"])
            finally:
                await server.close()
            server = await servers.cluster(broker.url, portals=2)
            try:
                got = await _with(server, ["same", "other"], args)
            finally:
                await server.close()
            runs["cluster-same"].append(got["same"])
            runs["cluster-other"].append(got["other"])
            print(f"relogin rep {rep + 1}: " + ", ".join(f"{k} {v[-1]}" for k, v in runs.items()), flush=True)
    return _report(runs, args)


def _report(runs: dict[str, list[Run]], args: argparse.Namespace) -> int:
    s = {k: Run.summary(v) for k, v in runs.items()}
    goals = {"embedded-same": GOAL_SAME_P99_MS, "cluster-same": GOAL_SAME_P99_MS, "cluster-other": GOAL_OTHER_P99_MS}
    names = {"embedded-same": "same portal, embedded", "cluster-same": "same portal, cluster",
             "cluster-other": "other portal, cluster"}
    lines = [
        "## relogin",
        "",
        f"{args.clients} logged-in clients (a room each) loop: close the websocket (no Socket.IO disconnect), open a",
        f"new one, `relogin` with the latest ticket, wait for the ack, pause {args.interval * 1000:g} ms. Latency = close → ack.",
        "Embedded server (`switchboard up`) and a cluster (cluster manager, token API, controller, 2 portals,",
        "each its own process, one throwaway RabbitMQ node); \"other portal\" relogs every time at the portal the",
        f"client was not on. {args.reps} repetitions of {args.warmup:g} s warm-up + {args.duration:g} s measured, medians",
        "(`bench/relogin.py`). Server CPU = all switchboard processes (not the broker), per relogin.",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}",
        f"- goal: p99 ≤ {GOAL_SAME_P99_MS:g} ms at the same portal, ≤ {GOAL_OTHER_P99_MS:g} ms at another portal (cluster)",
        "",
        "| relogin | relogins/s | p50 ms | p99 ms | server CPU ms/relogin | errors | goal p99 | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    passed = True
    for key, r in s.items():
        ok = r.p99_ms <= goals[key] and r.errors == 0
        passed &= ok
        lines.append(f"| {names[key]} | {r.rate:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.cpu_ms:.2f} | {r.errors:g} | "
                     f"≤ {goals[key]:g} ms | {'pass' if ok else '**miss**'} |")
    lines += ["", "Runs (p99 ms): " + "; ".join(f"{names[k]}: " + ", ".join(f"{r.p99_ms:.1f}" for r in v)
                                              for k, v in runs.items()) + ".",
              "", f"**{'pass' if passed else 'miss'}**."]
    publish("relogin", "\n".join(lines), args.tiny)
    return exit_status(passed, args.tiny, all(r.rate > 0 and r.errors == 0 for r in s.values()))


def main(argv: list[str] | None = None) -> int:
    parser = scenario_parser("relogin", __doc__)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5, help="pause between a client's relogins, s")
    add_run_options(parser, procs=1, reps=3, warmup=1.0, duration=8.0, broker=THROWAWAY_BROKER,
                    profile="also run `other portal` once under py-spy (every process), stacks to DIR",
                    profile_metavar="DIR")
    args = parse_options(parser, argv,
                         tiny={"clients": 2, "reps": 1, "warmup": 0.2, "duration": 0.5, "interval": 0.02})
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    sys.exit(main())
