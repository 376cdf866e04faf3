"""``switchboard admin drain ID --wait``: after the cordon, wait until the worker holds no task or
has left the cluster, printing its task counts once per change; bounded by ``--wait-timeout``."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from contracts.admin import AdminClient

__all__ = ["add_drain_wait_options", "wait_until_empty", "DEFAULT_WAIT_TIMEOUT", "DEFAULT_POLL_INTERVAL"]

DEFAULT_WAIT_TIMEOUT = 300.0
DEFAULT_POLL_INTERVAL = 1.0

_UNKNOWN_WORKER = "unknown_worker"


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def add_drain_wait_options(drain: argparse.ArgumentParser) -> None:
    drain.add_argument("--wait", action="store_true",
                       help="then wait until the worker holds no task or has left the cluster")
    drain.add_argument("--wait-timeout", type=_positive, default=DEFAULT_WAIT_TIMEOUT, metavar="SECONDS",
                       help=f"give up waiting after this long (exit code 3; default {DEFAULT_WAIT_TIMEOUT:.0f})")
    drain.add_argument("--poll-interval", type=_positive, default=DEFAULT_POLL_INTERVAL, metavar="SECONDS",
                       help=f"how often to ask the cluster manager (default {DEFAULT_POLL_INTERVAL:.0f})")


def _say(json_lines: bool, event: dict[str, Any], text: str) -> None:
    print(json.dumps(event, sort_keys=True) if json_lines else text, flush=True)


async def wait_until_empty(admin: AdminClient, worker_id: str, *, timeout: float, interval: float,
                           json_lines: bool) -> int:
    """Poll ``get_worker`` until the worker holds no task (0) or is gone (0), or ``timeout`` passed (3).

    The cluster manager's refusals other than ``unknown_worker``, and an unreachable manager,
    propagate as the admin client raises them."""
    from .admin import EXIT_OK, EXIT_WAITED_IN_VAIN, _Refused

    deadline = time.monotonic() + timeout
    last: tuple[int, int] | None = None
    while True:
        try:
            worker = await admin.get_worker(worker_id=worker_id)
        except _Refused as exc:
            if exc.code != _UNKNOWN_WORKER:
                raise
            _say(json_lines, {"worker": worker_id, "left": True}, f"worker {worker_id} has left the cluster")
            return EXIT_OK
        counts = (worker.executing, worker.reserved)
        if counts != last:
            last = counts
            _say(json_lines, {"worker": worker_id, "executing": counts[0], "reserved": counts[1]},
                 f"worker {worker_id}: {counts[0]} executing, {counts[1]} reserved")
        if counts == (0, 0):
            _say(json_lines, {"worker": worker_id, "empty": True}, f"worker {worker_id} holds no task")
            return EXIT_OK
        left = deadline - time.monotonic()
        if left <= 0:
            _say(json_lines, {"worker": worker_id, "gave_up_after": timeout},
                 f"worker {worker_id} still holds {sum(counts)} task(s) after {timeout:g} s; gave up waiting")
            return EXIT_WAITED_IN_VAIN
        await asyncio.sleep(min(interval, left))
