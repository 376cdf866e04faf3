"""Memory: RSS of portal + controller with 0, 2,000 and 10,000 idle logged-in clients.

Idle clients (rooms of ``--room-size``, plain OWT clients answering pings) are held by several
load-generator processes (``bench/crowd.py``).  After each level is reached and has settled, the
resident set sizes (``/proc/<pid>/statm``) are read:

- **cluster**: the portal process and the controller process, each alone (cluster manager and
  token API in processes of their own, one throwaway RabbitMQ node or ``--broker``);
- **embedded**: the one ``switchboard up`` process (token API and cluster manager included).

Per participant = (RSS at N − RSS at 0) / N.  Run: ``python -m bench memory [--levels 0,2000,10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import servers
from bench.crowd import layout
from bench.loadgen import Workers, split
from bench.proc import rss_bytes
from bench.memtrace import diff
from bench.options import THROWAWAY_BROKER, add_run_options, parse_options, scenario_parser
from bench.report import exit_status, git_commit, machine, publish, today

__all__ = ["main", "shares"]

GOAL_KB = 30.0


def shares(total: int, sizes: list[int]) -> list[int]:
    """``total`` split over workers holding ``sizes`` clients, proportionally (sums to ``total``)."""
    whole = sum(sizes)
    out = [total * s // whole for s in sizes]
    for i in range(total - sum(out)):
        out[i % len(out)] += 1
    return out


async def _measure_mode(mode: str, broker: str, args: argparse.Namespace, levels: list[int] | None = None,
                        trace: Path | None = None) -> dict[str, Any]:
    levels = levels or args.levels
    if mode == "cluster":
        server, roles = await servers.cluster(broker), ["portal0", "controller"]
    elif mode == "bare":
        server, roles = await servers.echo(), ["echo"]
    else:
        server, roles = await servers.embedded(tracemalloc_out=trace), ["embedded"]
    rows: list[dict[str, Any]] = []
    try:
        crowd = layout(max(levels), args.room_size, "m")
        chunks = split(crowd, args.procs)
        configs = [{"api": server.api_url, "portal": server.portal_url, "bare": mode == "bare", "clients": chunk,
                    "concurrency": args.concurrency} for chunk in chunks]
        async with Workers("bench.crowd:crowd_worker", configs) as workers:
            await workers.reports(timeout=60)
            for level in levels:
                started = time.perf_counter()
                reports = await workers.step([{"op": "join", "count": n} for n in shares(level, [len(c) for c in chunks])],
                                             timeout=1800)
                took = time.perf_counter() - started
                joined = sum(r["joined"] for r in reports)
                errors = sum(r["error_count"] for r in reports)
                for r in reports:
                    for e in r["errors"][:3]:
                        print(f"memory {mode}: {e}", file=sys.stderr)
                await asyncio.sleep(args.settle)
                server.check()
                rss = {role: rss_bytes(server.pid(role)) for role in roles}
                if trace is not None:  # the heap by allocation site, at this level
                    trace.unlink(missing_ok=True)
                    os.kill(server.pid("embedded"), signal.SIGUSR1)
                    while not trace.exists():
                        await asyncio.sleep(0.2)
                    shutil.copy(trace, trace.with_name(f"{trace.stem}-{level}.jsonl"))
                rows.append({"level": level, "joined": joined, "errors": errors, "rss": rss,
                             "rate": (joined - (rows[-1]["joined"] if rows else 0)) / took if took > 0 else 0})
                print(f"memory {mode}: {joined} joined ({errors} errors) in {took:.1f} s; RSS "
                      + ", ".join(f"{r} {v / 2**20:.1f} MiB" for r, v in rss.items()), flush=True)
            await workers.step({"op": "stop"}, timeout=120)
    finally:
        await server.close()
    return {"mode": mode, "roles": roles, "rows": rows}


async def _bench(args: argparse.Namespace) -> int:
    results = []
    async with servers.broker(args.broker, needed="cluster" in args.modes) as broker:
        for mode in args.modes:
            results.append(await _measure_mode(mode, broker.url, args))
    code = _report(results, args)
    if args.tracemalloc:
        await _profile(args)
    return code


async def _profile(args: argparse.Namespace) -> None:
    """The embedded server again, under tracemalloc: which allocation sites grow per participant."""
    n = args.tracemalloc
    with tempfile.TemporaryDirectory(prefix="sb-memtrace-") as tmp:
        trace = Path(tmp) / "heap.jsonl"
        res = await _measure_mode("embedded", "", args, levels=[0, n], trace=trace)
        joined = res["rows"][-1]["joined"]
        table = diff(trace.with_name("heap-0.jsonl"), trace.with_name(f"heap-{n}.jsonl"), joined, top=25)
    section = "\n".join([
        "## memory profile",
        "",
        f"Where the embedded server's memory per participant goes: the same server under `tracemalloc` (8 frames,",
        f"`bench/memtrace.py`), heap dumped with 0 and {n:,} idle logged-in clients (rooms of {args.room_size}), live",
        "blocks grouped by the innermost project frame → innermost frame (`python -m bench memory --tracemalloc N`).",
        "RSS is larger than the traced heap: pymalloc arenas, fragmentation, and memory allocated outside Python",
        "(uvloop/libuv buffers, OpenSSL, sockets' kernel buffers are not in RSS at all).",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}",
        "",
        table,
    ])
    publish("memory profile", section, args.tiny)


def _report(results: list[dict[str, Any]], args: argparse.Namespace) -> int:
    lines = [
        "## memory",
        "",
        f"Resident memory (`/proc/<pid>/statm`) with {', '.join(f'{n:,}' for n in args.levels)} idle logged-in clients",
        f"(plain OWT clients in rooms of {args.room_size}, answering pings), held by {args.procs} load-generator processes",
        f"(`bench/crowd.py`, raw websocket client); read {args.settle:g} s after each level was reached (`bench/memory.py`).",
        "Cluster: portal and controller each in a process of their own (cluster manager, token API apart, one",
        "RabbitMQ node); embedded: the one `switchboard up` process (token API and cluster manager included);",
        "bare (baseline): the bare python-socketio server (uvloop) holding as many plain Socket.IO connections (no login).",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}",
        f"- goal: ≤ {GOAL_KB:g} KB per participant (portal + controller), (RSS at N − RSS at 0) / N",
        "",
        "| mode | clients | joined | login errors | logins/s | " + "RSS MiB | " + "per participant KB (from 0) | per participant KB (from previous level) |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    verdicts = []
    for res in results:
        rows = res["rows"]
        base = sum(rows[0]["rss"].values())
        prev_total, prev_n = base, rows[0]["joined"]
        for row in rows:
            total = sum(row["rss"].values())
            n = row["joined"]
            per = (total - base) / n / 1024 if n else 0.0
            marginal = (total - prev_total) / (n - prev_n) / 1024 if n > prev_n else 0.0
            rss = " + ".join(f"{r.replace('0', '')} {v / 2**20:.1f}" for r, v in row["rss"].items())
            if len(row["rss"]) > 1:
                rss += f" = {total / 2**20:.1f}"
            lines.append(f"| {res['mode']} | {row['level']:,} | {n:,} | {row['errors']} | "
                         f"{row['rate']:,.0f} | {rss} | {per:.1f} | {marginal:.1f} |" if n else
                         f"| {res['mode']} | {row['level']:,} | {n:,} | {row['errors']} | – | {rss} | – | – |")
            prev_total, prev_n = total, n
        last = rows[-1]
        n = last["joined"]
        per_role = {r: (last["rss"][r] - rows[0]["rss"][r]) / n / 1024 if n else 0.0 for r in res["roles"]}
        per = sum(per_role.values())
        ok = n == last["level"] and per <= GOAL_KB
        verdicts.append((res["mode"], ok, per, per_role))
    lines.append("")
    for mode, ok, per, per_role in verdicts:
        split_txt = ", ".join(f"{r.replace('0', '')} {v:.1f} KB" for r, v in per_role.items())
        if mode == "bare":
            lines.append(f"- bare (baseline, no goal): {per:.1f} KB per bare python-socketio connection")
        else:
            lines.append(f"- {mode}: {'pass' if ok else '**miss**'} — {per:.1f} KB per participant ({split_txt})")
    # The goal names portal + controller: judge on the cluster run when there is one.
    judged = next((v for v in verdicts if v[0] == "cluster"), next(v for v in verdicts if v[0] != "bare"))
    passed = judged[1]
    lines += ["", f"**{'pass' if passed else 'miss'}** ({judged[0]}): {judged[2]:.1f} KB per participant "
              f"(goal ≤ {GOAL_KB:g} KB)."]
    publish("memory", "\n".join(lines), args.tiny)
    # A tiny run fails only when the clients did not all get in.
    return exit_status(passed, args.tiny, all(r["rows"][-1]["joined"] == r["rows"][-1]["level"] for r in results))


def main(argv: list[str] | None = None) -> int:
    parser = scenario_parser("memory", __doc__)
    parser.add_argument("--levels", default="0,2000,10000", help="client counts, ascending, starting at 0")
    parser.add_argument("--modes", default="cluster,embedded,bare",
                        help="cluster, embedded and/or bare (python-socketio connections, no login: the baseline)")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="N",
                        help="also profile the heap growth with N participants (embedded, tracemalloc)")
    parser.add_argument("--room-size", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=20, help="logins at once per load-generator process")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to wait before reading RSS")
    add_run_options(parser, procs=4, broker=THROWAWAY_BROKER)
    args = parse_options(parser, argv, tiny={"levels": "0,4", "modes": "embedded,bare", "procs": 1, "settle": 0.1,
                                             "room_size": 2})
    args.levels = [int(x) for x in str(args.levels).split(",")]
    args.modes = [m for m in str(args.modes).split(",") if m]
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    sys.exit(main())
