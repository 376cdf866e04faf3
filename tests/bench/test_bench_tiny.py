"""Every benchmark scenario runs once at a tiny size, so the bench code cannot rot."""

from __future__ import annotations

import asyncio

from bench import rpc as bench_rpc
from switchboard.devbroker import RabbitNode


async def test_the_rpc_bench_runs_at_a_tiny_size(rabbit: RabbitNode) -> None:
    assert await asyncio.to_thread(bench_rpc.main, ["--tiny", "--broker", rabbit.url]) == 0
