"""Detection: from a portal's death to the cluster manager's announcement of it.

A cluster of processes on RabbitMQ (cluster manager, token API, one controller, ``--portals``
portals).  Each portal but the last is killed in turn (``kill -9``); "announced" is the moment the
cluster manager's ``exit.quit`` event for it reaches this process on the broker.  Meanwhile a
minter asks the token API for a join token every 20 ms and notes which portal each one names:
tokens minted after the announcement must never name the dead portal.  For comparison the last
portal is frozen (``SIGSTOP``): its connection stays open, so only the keepalive sweep notices.
A fresh cluster per rep.

Run: ``python -m bench detection [--portals 3] [--reps 3] [--broker URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any


from bench import servers
from bench.options import THROWAWAY_BROKER, add_run_options, parse_options, scenario_parser
from bench.report import exit_status, git_commit, machine, median, publish, today
from rpc import create_transport
from rpc.settings import RpcSettings
from switchboard.client import ClientError
from switchboard.client.tokens import mint_token, portal_url

__all__ = ["main"]

GOAL_S = 1.0
#: How long the minter goes on after an announcement, seconds.
AFTER_S = 1.0


@dataclass
class _Loss:
    """One portal's death as seen from outside."""

    how: str  # "kill -9" | "SIGSTOP"
    detection: float  # seconds from the signal to the announcement
    reason: str
    #: Tokens naming the dead portal minted after the signal, before and after the announcement.
    naming_before: int = 0
    naming_after: int = 0
    minted_after: int = 0


@dataclass
class _Minter:
    """Mints tokens all along; each one with the time it was answered and the portal it names."""

    api_url: str
    minted: list[tuple[float, str]] = field(default_factory=list)
    #: When the last answer (a token or a refusal) came.
    last_answer: float = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                token = await mint_token(self.api_url, f"detect-{n}", f"user-{n}", "presenter",
                                         headers=servers.service_headers(), timeout=5.0)
                self.minted.append((time.monotonic(), portal_url(token)))
            except ClientError:
                pass  # no portal left to name (the last one frozen): a refusal names none
            self.last_answer = time.monotonic()
            await asyncio.sleep(0.02)


async def _portal_ids(server: servers.Server) -> dict[str, str]:
    """Portal URL → its worker id."""
    ids: dict[str, str] = {}
    for worker in await servers.admin(server, "get_workers", purpose="portal"):
        ids[f"http://127.0.0.1:{worker['info']['port']}"] = str(worker["id"])
    return ids


async def _one_cluster(broker: servers.Broker, args: argparse.Namespace) -> list[_Loss]:
    server = await servers.cluster(broker.url, portals=args.portals)
    watcher = create_transport(f"bench-detect-{uuid.uuid4().hex[:8]}", RpcSettings(broker_url=broker.url))
    losses: list[_Loss] = []
    stop_minting = asyncio.Event()
    minter = _Minter(server.api_url)
    minting: asyncio.Task[None] | None = None
    frozen: int | None = None
    try:
        await watcher.start()
        announced: dict[str, tuple[float, str]] = {}

        async def on_exit(topic: str, payload: Any) -> None:
            if isinstance(payload, dict) and payload.get("purpose") == "portal":
                announced.setdefault(str(payload.get("id")), (time.monotonic(), str(payload.get("reason"))))

        await watcher.subscribe_events("exit.#", on_exit)
        ids = await _portal_ids(server)
        deadline = time.monotonic() + 30
        while set(ids) != set(server.portal_urls):  # every portal joined
            if time.monotonic() > deadline:
                raise RuntimeError(f"portals not all registered: {sorted(ids)} of {server.portal_urls}")
            await asyncio.sleep(0.1)
            ids = await _portal_ids(server)
        minting = asyncio.create_task(minter.run(stop_minting))
        for i, url in enumerate(server.portal_urls):
            how = "SIGSTOP" if i == len(server.portal_urls) - 1 else "kill -9"
            pid = server.pid(f"portal{i}")
            signalled = time.monotonic()
            os.kill(pid, signal.SIGSTOP if how == "SIGSTOP" else signal.SIGKILL)
            if how == "SIGSTOP":
                frozen = pid
            deadline = signalled + 60
            while ids[url] not in announced:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the loss of portal{i} was never announced")
                await asyncio.sleep(0.005)
            at, reason = announced[ids[url]]
            while minter.last_answer < at + AFTER_S:
                if minting.done():
                    raise RuntimeError(f"the minter stopped: {minting.exception()!r}")
                await asyncio.sleep(0.02)
            after_signal = [(t, named) for t, named in minter.minted if t >= signalled and named == url]
            losses.append(_Loss(
                how, at - signalled, reason,
                naming_before=sum(1 for t, _ in after_signal if t < at),
                naming_after=sum(1 for t, _ in after_signal if t >= at),
                minted_after=sum(1 for t, _ in minter.minted if t >= at),
            ))
            print(f"{how} of portal{i}: announced after {(at - signalled) * 1000:.0f} ms ({reason}); tokens naming it "
                  f"after the announcement: {losses[-1].naming_after} of {losses[-1].minted_after}", flush=True)
        return losses
    finally:
        stop_minting.set()
        if minting is not None:
            await asyncio.gather(minting, return_exceptions=True)
        if frozen is not None:
            os.kill(frozen, signal.SIGCONT)
        await watcher.close()
        await server.close()


def _ms(values: list[float]) -> str:
    return f"{median(values) * 1000:.0f} ({min(values) * 1000:.0f}–{max(values) * 1000:.0f})" if values else "–"


async def _bench(args: argparse.Namespace) -> int:
    losses: list[_Loss] = []
    async with servers.broker(args.broker) as broker:
        for _ in range(args.reps):
            losses += await _one_cluster(broker, args)
    kills = [loss for loss in losses if loss.how == "kill -9"]
    freezes = [loss for loss in losses if loss.how == "SIGSTOP"]
    worst = max((loss.detection for loss in kills), default=float("inf"))
    stale = sum(loss.naming_after for loss in losses)
    passed = bool(kills) and worst <= GOAL_S and stale == 0
    rows = []
    for how, group in (("kill -9", kills), ("SIGSTOP (for comparison)", freezes)):
        reasons = ", ".join(sorted({loss.reason for loss in group}))
        rows.append(f"| {how} | {len(group)} | {_ms([loss.detection for loss in group])} | {reasons} | "
                    f"{sum(loss.naming_before for loss in group)} | {sum(loss.naming_after for loss in group)} of "
                    f"{sum(loss.minted_after for loss in group)} |")
    lines = [
        "## detection",
        "",
        f"A cluster manager, a token API, one controller and {args.portals} portals, one process each, on RabbitMQ",
        "(a throwaway node with the plugin `rabbitmq_event_exchange`). Every portal but the last is killed",
        "(`kill -9`) in turn, the last one frozen (`SIGSTOP`). Detection time: from the signal to the cluster",
        "manager's `exit.quit` for that portal, received on the broker. A minter asks for a join token every",
        f"20 ms and notes the portal each names, until {AFTER_S:g} s after each announcement. A fresh cluster per rep;",
        f"{args.reps} reps (`bench/detection.py`). Default settings (`departure_settle` 0.25 s; sweep every 1 s, a",
        "worker lost after more than 3 missed sweeps).",
        "",
        f"- date: {today()}; commit: {git_commit()}; machine: {machine()}",
        f"- goal: detection time of a dead portal ≤ {GOAL_S:g} s, and no token minted after it names that portal",
        "",
        "| loss | count | detection ms, median (min–max) | reason | tokens naming it before the announcement "
        "| tokens naming it after |",
        "|---|---:|---:|---|---:|---:|",
        *rows,
        "",
        f"**{'pass' if passed else 'miss'}**: worst kill -9 detection {worst * 1000:.0f} ms "
        f"(goal ≤ {GOAL_S * 1000:.0f} ms);"
        f" {stale} tokens named a portal after its announcement.",
    ]
    publish("detection", "\n".join(lines), args.tiny)
    return exit_status(passed, args.tiny, bool(kills))


def main(argv: list[str] | None = None) -> int:
    parser = scenario_parser("detection", __doc__)
    parser.add_argument("--portals", type=int, default=3, help="portals per cluster (all but one are killed)")
    add_run_options(parser, reps=3, broker=THROWAWAY_BROKER)
    args = parse_options(parser, argv, tiny={"portals": 2, "reps": 1})
    if args.portals < 2:
        parser.error("--portals must be at least 2")
    return asyncio.run(_bench(args))


if __name__ == "__main__":
    sys.exit(main())
