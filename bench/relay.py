"""Relay: logged-in clients in pairs, each sends ``text`` to its partner and waits for the delivery.

Embedded mode (``switchboard up`` in a subprocess).  The baseline, in the same run and interleaved
(baseline, ours, baseline, …), is the bare python-socketio acked echo server (``bench/baselines.py``)
driven by the same clients: each sends ``echo`` and waits for the ack.  Every client has one message
in flight; a relayed message counts when both its ack and its delivery to the partner arrived.
The figure that does not depend on how fast the load generator is: the **server process's CPU
time per message** (``/proc/<pid>/stat``) over the measured window.  The embedded server runs with
its room journal (the default: the append-only file journal, ``journal/logfile.py``, default settings,
a fresh directory per run); a third server in the same interleaving, ``journal.kind = off``, shows what
the journal costs.  With ``--with-sqlite`` a fourth, ``journal.kind = sqlite`` (the default before
2026-12-05), and with ``--with-file-each`` the file journal with ``journal.file.commit = each`` join
the interleaving.

Run: ``python -m bench relay [--clients 50] [--procs 2] [--reps 3] [--duration 5] [--with-sqlite]``.
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
from bench.participants import connector, gather_limited, join_retrying
from bench.report import exit_status, git_commit, machine, publish, today
from bench.sioclient import SioClient

__all__ = ["main", "Run", "run_pairs"]

#: Issue 14: the embedded relay, room journal on, within 1.5× the bare echo's CPU per message.
GOAL_CPU_RATIO = 1.5
GOAL_RATE = 4000.0
GOAL_P99_MS = 50.0
MESSAGE = "x" * 64
#: The third server of the interleaving: the same embedded server without a room journal.
_NO_JOURNAL = {"JOURNAL__KIND": "off"}
#: The others (``--with-sqlite``, ``--with-file-each``): what they run, and their name in the report.
_EXTRAS: dict[str, tuple[dict[str, str], str]] = {
    "sqlite journal": ({"JOURNAL__KIND": "sqlite"}, "`journal.kind = sqlite`"),
    "file journal, each": ({"JOURNAL__KIND": "file", "JOURNAL__FILE__COMMIT": "each"},
                           "`journal.kind = file`, `journal.file.commit = each`"),
}
_SETTINGS: dict[str, dict[str, str] | None] = {
    "ours": None, "no journal": _NO_JOURNAL, **{kind: settings for kind, (settings, _) in _EXTRAS.items()},
}


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

async def run_pairs(server: servers.Server, mode: str, clients: int, procs: int, warmup: float,
                    duration: float, cpu_pids: list[int] | None = None,
                    profile: dict[int, Path] | None = None) -> Run:
    """Drive ``server`` with ``clients`` clients in pairs over ``procs`` load-generator processes.

    ``profile`` maps server pids to files: py-spy samples them over the measured window.
    """
    pairs = [[(f"u{i}a", f"relay{i}"), (f"u{i}b", f"relay{i}")] for i in range(max(1, clients // 2))]
    configs = [{"mode": mode, "api": server.api_url, "portal": server.portal_url,
                "clients": [c for pair in chunk for c in pair]} for chunk in split(pairs, procs)]
    return await measure_window(server, "bench.relay:_worker", configs, f"relay {mode}", warmup, duration,
                                cpu_pids, profile)


async def _bench(args: argparse.Namespace) -> int:
    runs: dict[str, list[Run]] = {"echo": [], "ours": [], "no journal": []}
    if args.with_sqlite:
        runs["sqlite journal"] = []
    if args.with_file_each:
        runs["file journal, each"] = []
    for rep in range(args.reps):
        for kind in runs:
            server = await (servers.echo() if kind == "echo" else servers.embedded(_SETTINGS[kind]))
            try:
                run = await run_pairs(server, "echo" if kind == "echo" else "ours", args.clients, args.procs,
                                      args.warmup, args.duration)
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
        publish("relay profile", profile, args.tiny)
    section, passed = _section(runs, args)
    publish("relay", section, args.tiny)
    ours = Run.summary(runs["ours"])
    return exit_status(passed, args.tiny, ours.rate > 0 and ours.errors == 0)


def _section(runs: dict[str, list[Run]], args: argparse.Namespace) -> tuple[str, bool]:
    ours, base, bare = Run.summary(runs["ours"]), Run.summary(runs["echo"]), Run.summary(runs["no journal"])
    ratio = ours.cpu_us / base.cpu_us if base.cpu_us else float("inf")
    bare_ratio = bare.cpu_us / base.cpu_us if base.cpu_us else float("inf")
    extras = {kind: Run.summary(runs[kind]) for kind in _EXTRAS if runs.get(kind)}
    checks = [
        (f"server CPU per relayed message, journal on, ≤ {GOAL_CPU_RATIO}× the echo's per ack", ratio <= GOAL_CPU_RATIO,
         f"{ratio:.2f}× ({bare_ratio:.2f}× with `journal.kind = off`)"),
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
        "bare python-socketio acked echo server (uvloop) driven by the same clients (`echo`, wait for the ack),",
        "and the embedded server with `journal.kind = off` (what the room journal costs). Each embedded server",
        "journals to a fresh directory of its own (the default journal: the append-only file journal, default settings).",
        f"Load generator: {args.procs} processes, uvloop, a raw Engine.IO/Socket.IO websocket client (`bench/sioclient.py`).",
        f"{args.reps} repetitions of {args.warmup:g} s warm-up + {args.duration:g} s measured, medians (`bench/relay.py`).",
        "CPU = server process utime+stime from `/proc` over the measured window.",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}",
        f"- goal: server CPU per relayed message with the room journal on (the default file journal, `durability = normal`: "
        f"survives `kill -9`) ≤ {GOAL_CPU_RATIO}× the echo's CPU per ack; ≥ {GOAL_RATE:,.0f} messages/s; "
        f"p99 ≤ {GOAL_P99_MS:g} ms",
        "- settings lifted for the load generator: `portal.rate_limit_per_second`/`rate_limit_burst` (50/s per socket)",
        "",
        "| server | msgs/s | p50 ms | p99 ms | server CPU % | server CPU µs/msg | load gen CPU % | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        row("bare echo (baseline)", base),
        row("switchboard relay", ours),
        row("… with `journal.kind = off`", bare),
        *(row(f"… with {_EXTRAS[kind][1]}", run) for kind, run in extras.items()),
        "",
        f"Runs: {per_run}.",
        "",
    ]
    for name, ok, value in checks:
        lines.append(f"- {'pass' if ok else '**miss**'}: {name} — {value}")
    lines += ["", f"**{'pass' if passed else 'miss'}**: CPU ratio {ratio:.2f}× (goal ≤ {GOAL_CPU_RATIO}×; "
              f"{bare_ratio:.2f}× without the journal), {ours.rate:,.0f} msgs/s, p99 {ours.p99_ms:.1f} ms."]
    for kind, extra in extras.items():
        lines += ["", f"With {_EXTRAS[kind][1]}: CPU ratio "
                      f"{extra.cpu_us / base.cpu_us if base.cpu_us else float('inf'):.2f}×, {extra.rate:,.0f} msgs/s, "
                      f"p99 {extra.p99_ms:.1f} ms, {extra.errors:g} errors."]
    return "\n".join(lines), passed


def main(argv: list[str] | None = None) -> int:
    parser = scenario_parser("relay", __doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--with-sqlite", action="store_true",
                        help="a server more in the interleaving: journal.kind = sqlite")
    parser.add_argument("--with-file-each", action="store_true",
                        help="a server more in the interleaving: journal.kind = file, journal.file.commit = each")
    add_run_options(parser, procs=2, reps=3, reps_help="≥ 1", warmup=2.0, duration=5.0,
                    broker=HIDDEN, profile=PROFILE_ONCE)  # --broker: accepted for `bench all`
    args = parse_options(parser, argv, tiny={"clients": 4, "procs": 1, "reps": 1, "warmup": 0.2, "duration": 0.5})
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    sys.exit(main())
