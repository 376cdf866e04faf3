"""The cluster manager's side of the worker protocol (``rpc/worker.py``), faked: it records every call.

Tests that need more of the manager (``schedule``, ``claim``, …) subclass :class:`FakeClusterManager`.
"""

from __future__ import annotations

from typing import Any

from rpc import rpc_method

__all__ = ["FakeClusterManager"]


class FakeClusterManager:
    """Membership, keep-alives, load reports and task hand-over, recorded.

    ``workers`` holds the workers the manager knows (``purpose``, ``info``, the last ``load``):
    clearing it makes the manager forget them (a keep-alive then answers ``whoareyou``).  ``join``
    answers ``state``.
    """

    def __init__(self, state: str = "in-service") -> None:
        self.state = state
        self.workers: dict[str, dict[str, Any]] = {}
        self.joins: list[tuple[str, str, dict[str, Any]]] = []
        self.keepalives = 0
        self.loads: list[float] = []
        self.picked: list[str] = []
        self.laid_down: list[str] = []
        self.unscheduled: list[str] = []
        self.quits: list[str] = []

    @rpc_method
    async def join(self, purpose: str, worker_id: str, info: dict[str, Any]) -> str:
        self.joins.append((purpose, worker_id, info))
        self.workers[worker_id] = {"purpose": purpose, "info": info}
        return self.state

    @rpc_method
    async def keep_alive(self, worker_id: str) -> str:
        self.keepalives += 1
        return "ok" if worker_id in self.workers else "whoareyou"

    @rpc_method
    async def report_load(self, worker_id: str, load: float) -> None:
        self.loads.append(load)
        if worker_id in self.workers:
            self.workers[worker_id]["load"] = load

    @rpc_method
    async def pick_up_tasks(self, worker_id: str, tasks: list[str]) -> None:
        self.picked.extend(tasks)

    @rpc_method
    async def lay_down_task(self, worker_id: str, task: str) -> None:
        self.laid_down.append(task)

    @rpc_method
    async def unschedule(self, worker_id: str, task: str) -> None:
        self.unscheduled.append(task)

    @rpc_method
    async def quit(self, worker_id: str) -> None:
        self.quits.append(worker_id)
        self.workers.pop(worker_id, None)
