"""What happened to the cluster manager's registry, as data: the changes the active manager
decides, applies to its own :class:`~cluster_manager.registry.Registry` and hands to its standbys.

A change is an outcome, not a command: ``schedule`` picks a worker with randomness and the clock,
so a standby does not replay the call, it applies :class:`TaskReserved` naming the worker.  Times
are durations (seconds); the receiver turns them into deadlines on its own monotonic clock when it
applies the change, so no two processes need agreeing clocks.

Changes are msgspec structs tagged by ``kind``; :data:`CHANGE_TYPES` decodes any of them.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "Change",
    "WorkerJoined",
    "WorkerRemoved",
    "LoadReported",
    "StateReported",
    "WorkerDrained",
    "TasksPickedUp",
    "TaskLaidDown",
    "TaskUnscheduled",
    "TaskReserved",
    "TaskClaimed",
    "AnyChange",
    "CHANGE_TYPES",
]


class Change(msgspec.Struct, frozen=True, tag_field="kind", forbid_unknown_fields=True):
    """Base of every change."""


class WorkerJoined(Change, frozen=True, tag="joined"):
    """A worker (re)joined with ``info``.  ``reset``: a rejoining worker's tasks are dropped (it was
    told the manager is in service, so it dropped them too); a worker that changed purpose always
    loses its tasks.  A drained worker stays drained."""

    worker_id: str
    purpose: str
    info: dict[str, Any]
    reset: bool


class WorkerRemoved(Change, frozen=True, tag="removed"):
    """A worker left (``quit``) or was declared dead (``timeout``); its tasks are repealed."""

    worker_id: str
    reason: str


class LoadReported(Change, frozen=True, tag="load"):
    worker_id: str
    load: float


class StateReported(Change, frozen=True, tag="state"):
    worker_id: str
    state: str | int


class WorkerDrained(Change, frozen=True, tag="drained"):
    """``drained`` true: cordoned (no new task); false: lifted."""

    worker_id: str
    drained: bool


class TasksPickedUp(Change, frozen=True, tag="picked_up"):
    worker_id: str
    tasks: list[str]


class TaskLaidDown(Change, frozen=True, tag="laid_down"):
    worker_id: str
    task: str


class TaskUnscheduled(Change, frozen=True, tag="unscheduled"):
    worker_id: str
    task: str


class TaskReserved(Change, frozen=True, tag="reserved"):
    """``task`` is reserved on ``worker_id`` for ``reserve_time`` seconds from when this is applied
    (sticky: a task already there keeps the larger reserve time and restarts its expiry)."""

    purpose: str
    task: str
    worker_id: str
    reserve_time: float


class TaskClaimed(Change, frozen=True, tag="claimed"):
    """The reservation of ``task`` on ``worker_id`` became an executing task (a token was used).
    ``request``: the identity of the claim request, so that the same request delivered again (after a
    failover) is answered as the first time rather than as a second use."""

    purpose: str
    task: str
    worker_id: str
    request: str | None = None


AnyChange = (
    WorkerJoined
    | WorkerRemoved
    | LoadReported
    | StateReported
    | WorkerDrained
    | TasksPickedUp
    | TaskLaidDown
    | TaskUnscheduled
    | TaskReserved
    | TaskClaimed
)

#: Decodes any change: ``msgspec.convert(data, CHANGE_TYPES)``.
CHANGE_TYPES: Any = AnyChange
