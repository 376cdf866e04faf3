"""One measured window of load-generator workers against a server, and the figures it gives (:class:`Run`).

The workers (``bench/loadgen.py``: ``relay``'s message pairs, ``login``'s cycles) report when they are
ready, get the window (wall-clock ``begin``, ``t0``, ``t1``), work from ``begin``, count what ends
between ``t0`` and ``t1``, and report ``latencies``, ``errors`` (a sample) and ``error_count``.  The
server's CPU and the load generators' CPU are read over ``t0``..``t1``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import profiling, servers
from bench.loadgen import Workers
from bench.proc import CpuMeter
from bench.report import median, percentile

__all__ = ["Run", "measure_window"]


@dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # server CPU per operation (a relayed message, a login cycle)
    cpu_pct: float  # server CPU over the window, % of one core
    gen_pct: float  # load generators' CPU, % of one core
    errors: int  # a count; `summary` adds it up over the repetitions: one error in any of them fails
    #: CPU per operation, µs, of each of the measured processes (by pid); not kept by `summary`.
    cpu_us_by_pid: dict[int, float] = field(default_factory=dict)
    #: Other latency samples the workers reported (``<name>_latencies``), s, by name; not kept by `summary`.
    samples: dict[str, list[float]] = field(default_factory=dict)

    @staticmethod
    def summary(runs: list[Run]) -> Run:
        return Run(
            rate=median([r.rate for r in runs]),
            p50_ms=median([r.p50_ms for r in runs]),
            p99_ms=median([r.p99_ms for r in runs]),
            cpu_us=median([r.cpu_us for r in runs]),
            cpu_pct=median([r.cpu_pct for r in runs]),
            gen_pct=median([r.gen_pct for r in runs]),
            errors=sum(r.errors for r in runs),
        )


async def measure_window(server: servers.Server, target: str, configs: list[dict[str, Any]], label: str,
                         warmup: float, duration: float, cpu_pids: list[int] | None = None,
                         profile: dict[int, Path] | None = None, ready_timeout: float = 120) -> Run:
    """Workers running ``target`` (``"module:function"``), one per config, through ``warmup`` + ``duration`` s.

    CPU is that of ``cpu_pids`` (default: the server's); ``profile`` maps server pids to files: py-spy
    samples them over the measured window.  Errors are printed to stderr, ``label`` first.
    """
    server_cpu = CpuMeter(cpu_pids or server.pids)
    async with Workers(target, configs) as workers:
        await workers.reports(timeout=ready_timeout)
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
        gen = gen_cpu.stop(gone_ok=True)  # a load generator may end right at t1 (informational only)
        results = await workers.reports(timeout=60)
        for spy in spies:
            await spy.wait()
    latencies = [x for r in results for x in r["latencies"]]
    errors = sum(r["error_count"] for r in results)
    for r in results:
        for e in r["errors"][:3]:
            print(f"{label}: error {e}", file=sys.stderr)
    count = len(latencies)
    return Run(
        rate=count / duration,
        p50_ms=percentile(latencies, 0.5) * 1e3,
        p99_ms=percentile(latencies, 0.99) * 1e3,
        cpu_us=cpu / count * 1e6 if count else float("inf"),
        cpu_pct=cpu / duration * 100,
        gen_pct=gen / duration * 100,
        errors=errors,
        cpu_us_by_pid={pid: used / count * 1e6 for pid, used in server_cpu.used.items()} if count else {},
        samples={key[:-len("_latencies")]: [x for r in results for x in r[key]]
                 for key in (results[0] if results else {}) if key.endswith("_latencies")},
    )
