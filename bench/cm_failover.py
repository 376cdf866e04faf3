"""Cluster-manager failover time and the cost of replication on ``schedule`` throughput.

Failover: two manager processes (``cluster_manager.node.ManagerNode``, one active, one hot
standby) on one RabbitMQ node; a caller here schedules a new task every few ms; the active process
is killed with SIGKILL; the time from the kill to the first successful ``schedule`` answered after it
(by the standby, now active) is one sample.  Each repetition starts a new standby and kills the
active one.  Goal: p99 ≤ 1 s.

Replication cost: ``schedule`` calls per second, 50 in flight, of a single manager process as
before standbys (``ClusterManager``, replication off) and of an active ``ManagerNode`` with one
standby following its changes, interleaved in the same run.  Goal: single / replicated ≤ 1.3.

Run: ``python -m bench cm-failover`` (starts a throwaway RabbitMQ node) or ``--broker amqp://…``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
import subprocess
import sys
import time
import uuid

from bench import servers
from bench.options import THROWAWAY_BROKER, add_run_options, parse_options, scenario_parser
from bench.proc import spawn_ready
from bench.report import exit_status, git_commit, machine, median, percentile, publish, today
from cluster_manager import ClusterManager, ClusterManagerSettings
from cluster_manager.node import ManagerNode
from contracts.cluster import ClusterClient
from credentials import AdminKeys
from rpc import RpcError, RpcSettings
from rpc.amqp import AmqpTransport

__all__ = ["main"]

FAILOVER_GOAL_S = 1.0
COST_GOAL = 1.3


def _settings(name: str) -> ClusterManagerSettings:
    # No keepalives come from the bench's worker: a long sweep keeps it registered.
    return ClusterManagerSettings(name=name, initial_time=0.0, check_alive_interval=3600.0, failover_purposes=[])


async def _serve(kind: str, broker: str, name: str) -> None:
    transport = AmqpTransport(f"bench-cm-{uuid.uuid4().hex[:6]}", RpcSettings(broker_url=broker, heartbeat=2))
    await transport.start()
    component: ManagerNode | ClusterManager
    if kind == "node":
        # Standbys present an admin key to sync: every node of this run shares one (its name is fresh).
        component = ManagerNode(transport, _settings(name), admin_keys=AdminKeys([f"bench-admin-{name}"]))
    else:
        component = ClusterManager(transport, _settings(name), fresh=False)
    await component.start()
    print("READY", flush=True)
    await asyncio.Event().wait()


def _spawn(kind: str, broker: str, name: str) -> subprocess.Popen[str]:
    return spawn_ready("bench.cm_failover", ["--serve", kind, "--name", name, "--broker", broker], f"manager {kind}")


async def _client(broker: str, name: str) -> AmqpTransport:
    client = AmqpTransport(f"bench-caller-{uuid.uuid4().hex[:6]}", RpcSettings(broker_url=broker, call_timeout=5.0))
    await client.start()
    await ClusterClient(client, name).join(purpose="portal", worker_id="portal-1", info={"max_load": 100.0})
    return client


async def _caught_up(client: AmqpTransport, name: str) -> None:
    # A change made now reaches the standby after those before it: one more schedule and a pause.
    await ClusterClient(client, name).schedule(purpose="portal", task=f"sync-{uuid.uuid4().hex}")
    await asyncio.sleep(0.3)


async def _failovers(broker: str, reps: int, interval: float) -> list[float]:
    name = f"cluster-bench-{uuid.uuid4().hex[:6]}"
    active = _spawn("node", broker, name)
    client = await _client(broker, name)
    manager = ClusterClient(client, name)
    samples: list[float] = []
    tasks = itertools.count()
    try:
        for _ in range(reps):
            standby = _spawn("node", broker, name)
            await _caught_up(client, name)
            killed_at = 0.0
            answered: list[float] = []

            async def load() -> None:
                while not answered:
                    started = time.perf_counter()
                    try:
                        await manager.schedule(purpose="portal", task=f"t-{next(tasks)}", timeout=5.0)
                        if killed_at and started >= killed_at:
                            answered.append(time.perf_counter())
                    except RpcError:
                        pass
                    await asyncio.sleep(interval)

            runner = asyncio.create_task(load())
            await asyncio.sleep(0.3)
            killed_at = time.perf_counter()
            active.send_signal(signal.SIGKILL)
            await asyncio.wait_for(runner, 30)
            active.wait(10)
            samples.append(answered[0] - killed_at)
            active = standby
    finally:
        await client.close()
        active.kill()
        active.wait(10)
    return samples


async def _throughput(broker: str, kind: str, duration: float, in_flight: int) -> float:
    name = f"cluster-bench-{uuid.uuid4().hex[:6]}"
    procs = [_spawn(kind, broker, name)]
    if kind == "node":
        procs.append(_spawn("node", broker, name))  # the standby, following every change
    client = await _client(broker, name)
    manager = ClusterClient(client, name)
    tasks = itertools.count()
    done = 0
    try:
        stop_at = time.perf_counter() + duration

        async def loop() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                await manager.schedule(purpose="portal", task=f"t-{next(tasks)}")
                done += 1

        began = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(in_flight)))
        return done / (time.perf_counter() - began)
    finally:
        await client.close()
        for proc in procs:
            proc.kill()
            proc.wait(10)


async def _bench(args: argparse.Namespace) -> int:
    async with servers.broker(args.broker) as broker:
        single: list[float] = []
        replicated: list[float] = []
        for _ in range(args.reps):
            single.append(await _throughput(broker.url, "single", args.duration, 50))
            replicated.append(await _throughput(broker.url, "node", args.duration, 50))
        samples = await _failovers(broker.url, args.kills, 0.005)
    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
    ratio = median(single) / median(replicated) if median(replicated) else float("inf")
    failover_ok, cost_ok = p99 <= FAILOVER_GOAL_S, ratio <= COST_GOAL
    lines = [
        "## cm-failover",
        "",
        "Cluster-manager failover (`kill -9` of the active `ManagerNode` process → first successful",
        "`schedule` answered after it, a call every 5 ms) and `schedule` throughput (50 in flight) of a",
        "single manager process vs an active node with one standby, interleaved, one throwaway RabbitMQ",
        f"node (`bench/cm_failover.py`). Heartbeat 2 s (matters only for a frozen process).",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}",
        f"- goals: failover p99 ≤ {FAILOVER_GOAL_S:g} s; single / replicated throughput ≤ {COST_GOAL}",
        "",
        "| measure | value | verdict |",
        "|---|---:|---|",
        f"| failover ms, p50 / p99 / max ({len(samples)} kills) | {p50 * 1e3:.0f} / {p99 * 1e3:.0f} / "
        f"{max(samples) * 1e3:.0f} | {'pass' if failover_ok else 'miss'} |",
        f"| schedule/s, single manager (median of {args.reps} × {args.duration:g} s) | {median(single):,.0f} | |",
        f"| schedule/s, active + standby | {median(replicated):,.0f} | |",
        f"| single / replicated | {ratio:.2f} | {'pass' if cost_ok else 'miss'} |",
        "",
        f"Runs: single {', '.join(f'{v:,.0f}' for v in single)}; replicated {', '.join(f'{v:,.0f}' for v in replicated)};"
        f" failover ms {', '.join(f'{s * 1e3:.0f}' for s in samples)}.",
    ]
    publish("cm-failover", "\n".join(lines), args.tiny)
    return exit_status(failover_ok and cost_ok, args.tiny, bool(samples))


def main(argv: list[str] | None = None) -> int:
    parser = scenario_parser("cm-failover", __doc__)
    add_run_options(parser, reps=3, duration=5.0, broker=THROWAWAY_BROKER)
    parser.add_argument("--kills", type=int, default=10, help="failovers measured")
    parser.add_argument("--serve", choices=["node", "single"], help=argparse.SUPPRESS)
    parser.add_argument("--name", help=argparse.SUPPRESS)
    args = parse_options(parser, argv, tiny={"reps": 1, "duration": 0.5, "kills": 1})
    if args.serve:
        asyncio.run(_serve(args.serve, args.broker, args.name))
        return 0
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    sys.exit(main())
