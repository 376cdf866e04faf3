"""Capacity: 10,000 logged-in clients on one portal process; every client gets a room-wide message within 5 s.

The crowd (``bench/crowd.py``, several load-generator processes) logs in to the embedded server
(``switchboard up``: one portal) in rooms of ``--room-size``; then the first client of every room
sends ``text`` to ``all`` at the same moment, and every client (the senders too: `all` includes
them) must receive its room's message within ``--deadline`` seconds of that moment.  Repeated
``--reps`` times on the same crowd.  Server CPU and RSS are read too.

Run: ``python -m bench capacity [--clients 10000] [--room-size 100]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from bench import profiling, servers
from bench.crowd import layout
from bench.loadgen import Workers, split
from bench.memory import shares
from bench.proc import CpuMeter, rss_bytes
from bench.options import add_run_options, parse_options, scenario_parser
from bench.report import git_commit, machine, percentile, publish, today

__all__ = ["main"]


async def _bench(args: argparse.Namespace) -> int:
    async with servers.broker(args.broker, needed=args.mode == "cluster") as broker:
        server = await (servers.cluster(broker.url) if args.mode == "cluster" else servers.embedded())
        try:
            result = await _run(server, args)
        finally:
            await server.close()
    code = _report(result, args)
    if args.profile:
        rounds = result["rounds"]
        delivered = rounds[-1]["expected"] - rounds[-1]["missing"] if rounds else 0
        per = rounds[-1]["cpu"] / delivered * 1e6 if delivered else 0.0
        profile = profiling.section("capacity profile", args.profile, per, "delivery",
                                    f"the embedded server during the last round ({delivered:,} deliveries)")
        publish("capacity profile", profile, args.tiny)
    return code


async def _run(server: servers.Server, args: argparse.Namespace) -> dict[str, Any]:
    crowd = layout(args.clients, args.room_size, "c")
    chunks = split(crowd, args.procs)
    configs = [{"api": server.api_url, "clients": chunk, "concurrency": args.concurrency} for chunk in chunks]
    rounds: list[dict[str, Any]] = []
    meter = CpuMeter(server.pids)
    async with Workers("bench.crowd:crowd_worker", configs) as workers:
        await workers.reports(timeout=60)
        meter.start()
        started = time.perf_counter()
        reports = await workers.step([{"op": "join", "count": n} for n in shares(args.clients, [len(c) for c in chunks])],
                                     timeout=3600)
        join_s = time.perf_counter() - started
        join_cpu = meter.stop()
        joined = sum(r["joined"] for r in reports)
        join_errors = sum(r["error_count"] for r in reports)
        for r in reports:
            for e in r["errors"][:3]:
                print(f"capacity: {e}", file=sys.stderr)
        print(f"capacity: {joined} joined ({join_errors} errors) in {join_s:.1f} s", flush=True)
        # Join notifications may still be on their way: wait until the server is (nearly) idle.
        settled = time.perf_counter()
        await asyncio.sleep(args.settle)
        while time.perf_counter() - settled < args.max_settle:
            meter.start()
            await asyncio.sleep(1.0)
            if meter.stop() < 0.1:
                break
        settle_s = time.perf_counter() - settled
        print(f"capacity: server idle {settle_s:.1f} s after the last login", flush=True)
        for rep in range(args.reps):
            tag = f"capacity-{rep}-{time.time():.3f}"
            at = time.time() + 0.5
            spy = None
            if args.profile and rep == args.reps - 1:  # the last round under py-spy
                spy = await profiling.sample(server.pids[0], args.deadline + 1.0, args.profile)
            meter.start()
            sent = await workers.step({"op": "send", "at": at, "tag": tag}, timeout=120)
            await asyncio.sleep(max(0.0, at + args.deadline + 1.0 - time.time()))
            cpu = meter.stop()
            if spy is not None:
                await spy.wait()
            got = await workers.step({"op": "collect", "at": at}, timeout=120)
            latencies = [x for r in got for x in r["latencies"]]
            rounds.append({
                "senders": sum(r["senders"] for r in sent), "bad_acks": sum(r["bad_count"] for r in sent),
                "expected": sum(r["expected"] for r in got), "missing": sum(r["missing"] for r in got),
                "disconnected": sum(r["disconnected"] for r in got),
                "late": sum(1 for x in latencies if x > args.deadline),
                "p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                "max": max(latencies) if latencies else float("inf"), "cpu": cpu,
            })
            for r in sent:
                for e in r["bad_acks"][:3]:
                    print(f"capacity: bad ack {e}", file=sys.stderr)
            print(f"capacity round {rep + 1}: {rounds[-1]}", flush=True)
            if rounds[-1]["missing"]:
                print("capacity: missing e.g. " + ", ".join(u for r in got for u in r["missing_users"]), file=sys.stderr)
                for role in server.procs:
                    print(f"--- {role} log tail:\n{server.log_tail(role, 15)}", file=sys.stderr)
        rss = {role: rss_bytes(server.pid(role)) for role in server.procs}
        await workers.step({"op": "stop"}, timeout=120)
    return {"joined": joined, "join_errors": join_errors, "join_s": join_s, "join_cpu": join_cpu, "settle_s": settle_s,
            "rounds": rounds, "rss": rss}


def _report(res: dict[str, Any], args: argparse.Namespace) -> int:
    rounds = res["rounds"]
    ok_rounds = [r["missing"] == 0 and r["late"] == 0 and r["bad_acks"] == 0 for r in rounds]
    # Logins refused once (503 while the server was saturated) were retried; the goal counts who got in.
    passed = res["joined"] == args.clients and bool(rounds) and all(ok_rounds)
    rooms = -(-args.clients // args.room_size)
    lines = [
        "## capacity",
        "",
        f"{args.clients:,} clients log in to one portal ({args.mode} server) in {rooms:,} rooms of {args.room_size:,}",
        f"(held by {args.procs} load-generator processes, `bench/crowd.py`); then the first client of every room sends",
        f"`text` to `all` at the same moment and every client must get its room's message within {args.deadline:g} s.",
        f"{args.reps} rounds on the same crowd (`bench/capacity.py`).",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}",
        f"- goal: all {args.clients:,} logged in, every client gets the room-wide message within {args.deadline:g} s",
        f"- logins: {res['joined']:,} in {res['join_s']:.1f} s ({res['joined'] / res['join_s']:,.0f}/s), "
        f"{res['join_errors']} errors, server CPU {res['join_cpu'] / max(res['joined'], 1) * 1e3:.2f} ms per login; "
        f"the server was idle again (< 10 % CPU) {res['settle_s']:.1f} s after the last login ack (join notifications "
        "still being delivered until then); the rounds start after that",
        "- server RSS after the rounds: " + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in res["rss"].items()),
        "",
        "| round | messages sent | clients expected | received | late | p50 s | p99 s | max s | server CPU s | verdict |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for i, (r, ok) in enumerate(zip(rounds, ok_rounds, strict=True), 1):
        lines.append(f"| {i} | {r['senders']:,} | {r['expected']:,} | {r['expected'] - r['missing']:,} | {r['late']} | "
                     f"{r['p50']:.3f} | {r['p99']:.3f} | {r['max']:.3f} | {r['cpu']:.2f} | {'pass' if ok else '**miss**'} |")
    lines += ["", f"**{'pass' if passed else 'miss'}**."]
    publish("capacity", "\n".join(lines), args.tiny)
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    parser = scenario_parser("capacity", __doc__)
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--room-size", type=int, default=100)
    parser.add_argument("--mode", choices=["embedded", "cluster"], default="embedded")
    parser.add_argument("--deadline", type=float, default=5.0, help="seconds every client has to get the message")
    parser.add_argument("--concurrency", type=int, default=20, help="logins at once per load-generator process")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to wait after the logins, at least")
    parser.add_argument("--max-settle", type=float, default=300.0, help="… and at most, for the server to go idle")
    add_run_options(parser, procs=4, reps=3, broker="amqp:// URL (cluster mode; default: start a throwaway node)",
                    profile="run the last round under py-spy, collapsed stacks to this file")
    args = parse_options(parser, argv, tiny={"clients": 4, "room_size": 2, "reps": 1, "procs": 1, "settle": 0.1,
                                             "deadline": 2.0})
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    sys.exit(main())
