"""The cluster manager's replicable state: workers, tasks, reservations and claims.

:class:`Registry` is plain state with one way in, :meth:`Registry.apply` of a
:mod:`~cluster_manager.changes` change, plus :meth:`~Registry.snapshot` and
:meth:`~Registry.restore`.  It does no I/O and keeps no timers; time comes from the injected
monotonic clock (reservations expire lazily on it, as in :mod:`scheduler`).  The active manager
decides (:meth:`Registry.choose`, :meth:`Registry.check_claim` and its own checks), applies the
outcome here and hands the same change to its standbys, whose registries then hold the same
workers and tasks.

Randomness and rotation stay on the deciding side: a strategy's position (round robin) or random
state is not replicated, only the placements it produced.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, assert_never

import msgspec

from scheduler import NoWorkerAvailable, Scheduler, UnknownWorker

from .changes import (
    AnyChange,
    LoadReported,
    StateReported,
    TaskClaimed,
    TaskLaidDown,
    TasksPickedUp,
    TaskReserved,
    TaskUnscheduled,
    WorkerDrained,
    WorkerJoined,
    WorkerRemoved,
)
from .messages import Snapshot, TaskSnapshot, WorkerSnapshot

__all__ = ["Registry", "Member"]

#: Claim requests remembered (to answer one delivered again after a failover), the newest.
_CLAIMS_KEPT = 4096


@dataclass(frozen=True, slots=True)
class Member:
    """A registered worker: its purpose and when (on this registry's clock) it last joined."""

    purpose: str
    joined_at: float


class Registry:
    """Workers by purpose, each purpose's :class:`scheduler.Scheduler`, and who joined when.

    :param strategies: strategy name per purpose (purposes not listed use the scheduler's default).
    :param default_reserve_time: seconds a reservation lasts when none is given.
    :param default_max_load: ``max_load`` of workers whose info declares none.
    :param clock: seconds, monotonic.
    :param rng: randomness for the random strategies (only the deciding side uses it).

    Only :meth:`apply` and :meth:`restore` change it; everything else reads (and lets reservations
    lapse on the clock).
    """

    def __init__(
        self,
        *,
        strategies: Mapping[str, str] | None = None,
        default_reserve_time: float = 60.0,
        default_max_load: float = 0.85,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self._strategies = dict(strategies or {})
        self._default_reserve_time = default_reserve_time
        self._default_max_load = default_max_load
        self._clock = clock
        self._rng = rng
        self._schedulers: dict[str, Scheduler] = {}
        self._members: dict[str, Member] = {}
        #: The request that claimed each task, for the last ``_CLAIMS_KEPT`` claims.
        self._claims: OrderedDict[tuple[str, str], str] = OrderedDict()

    # ------------------------------------------------------------------ reads

    @property
    def schedulers(self) -> Mapping[str, Scheduler]:
        """The scheduler of every purpose seen so far (read them; change them only through :meth:`apply`)."""
        return MappingProxyType(self._schedulers)

    @property
    def members(self) -> Mapping[str, Member]:
        """Every registered worker, by id."""
        return MappingProxyType(self._members)

    def scheduler_of(self, worker_id: str, purpose: str | None = None) -> Scheduler | None:
        """The scheduler of a registered worker (of ``purpose``, when given), or ``None``."""
        member = self._members.get(worker_id)
        if member is None or (purpose is not None and member.purpose != purpose):
            return None
        return self._schedulers[member.purpose]

    def choose(self, purpose: str, task: str, preference: object) -> str:
        """The worker a ``schedule`` of ``task`` goes to (see :meth:`scheduler.Scheduler.choose`);
        raises the scheduler's errors, and ``NoWorkerAvailable`` for a purpose never seen."""
        scheduler = self._schedulers.get(purpose)
        if scheduler is None:
            raise NoWorkerAvailable(f"no {purpose} worker is registered")
        return scheduler.choose(task, preference)

    def reserve_time(self, requested: float | None) -> float:
        """The reserve time a ``schedule`` asking for ``requested`` gets."""
        return requested if requested is not None and requested > 0 else self._default_reserve_time

    def claimed_by(self, purpose: str, task: str, worker_id: str, request: str | None) -> bool:
        """Whether ``task`` executes on ``worker_id`` because of this very claim ``request`` (the
        same request delivered again)."""
        if request is None or self._claims.get((purpose, task)) != request:
            return False
        scheduler = self._schedulers.get(purpose)
        view = scheduler.task_view(task) if scheduler is not None else None
        return view is not None and view["worker"] == worker_id and view["state"] == "executing"

    def check_claim(self, purpose: str, task: str, worker_id: str) -> None:
        """Raise the scheduler's error if ``claim`` of ``task`` on ``worker_id`` would fail now."""
        scheduler = self._schedulers.get(purpose)
        if scheduler is None:
            raise UnknownWorker(f"worker {worker_id!r} does not exist")
        scheduler.check_claim(task, worker_id)

    # ------------------------------------------------------------------ the one way in

    def apply(self, change: AnyChange) -> list[str]:
        """Apply one change; returns the tasks it repealed (a removal, or a rejoin that resets).

        The deciding side checks first, so a change applies without error on it and on every copy
        of the same state; the scheduler's errors propagate otherwise.
        """
        match change:
            case WorkerJoined():
                return self._join(change)
            case WorkerRemoved():
                member = self._members.pop(change.worker_id)
                return self._schedulers[member.purpose].remove_worker(change.worker_id)
            case LoadReported():
                self._of(change.worker_id).update_load(change.worker_id, change.load)
            case StateReported():
                self._of(change.worker_id).update_state(change.worker_id, change.state)
            case WorkerDrained():
                scheduler = self._of(change.worker_id)
                (scheduler.drain if change.drained else scheduler.undrain)(change.worker_id)
            case TasksPickedUp():
                self._of(change.worker_id).pick_up(change.worker_id, change.tasks)
            case TaskLaidDown():
                self._of(change.worker_id).lay_down(change.worker_id, change.task)
            case TaskUnscheduled():
                self._of(change.worker_id).unschedule(change.worker_id, change.task)
            case TaskReserved():
                self._of(change.worker_id).reserve(change.task, change.worker_id, change.reserve_time)
            case TaskClaimed():
                # An outcome: the task executes on that worker now (whatever a copy's clock says).
                self._of(change.worker_id).pick_up(change.worker_id, [change.task])
                if change.request is not None:
                    self._claims[(change.purpose, change.task)] = change.request
                    self._claims.move_to_end((change.purpose, change.task))
                    if len(self._claims) > _CLAIMS_KEPT:
                        self._claims.popitem(last=False)
            case _:
                assert_never(change)
        return []

    def _join(self, change: WorkerJoined) -> list[str]:
        member = self._members.get(change.worker_id)
        drained = False
        lost: list[str] = []
        if member is not None:
            previous = self._schedulers[member.purpose]
            drained = bool(previous.worker_view(change.worker_id)["drained"])
            if member.purpose != change.purpose or change.reset:
                lost = previous.remove_worker(change.worker_id)
        scheduler = self._scheduler_for(change.purpose)
        scheduler.add_worker(change.worker_id, change.info)
        if drained:
            scheduler.drain(change.worker_id)
        self._members[change.worker_id] = Member(change.purpose, self._clock())
        return lost

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> Snapshot:
        """Every worker and task, with reservations' remaining time (in join order per purpose)."""
        workers: list[WorkerSnapshot] = []
        for scheduler in self._schedulers.values():
            for view in scheduler.workers_view():
                tasks = [
                    TaskSnapshot(t["task"], t["state"], t["expires_in"], scheduler.reserve_time_of(t["task"]))
                    for t in scheduler.tasks_of(view["id"])
                ]
                workers.append(
                    WorkerSnapshot(
                        id=view["id"], purpose=view["purpose"], info=view["info"], state=view["state"],
                        load=view["load"], drained=view["drained"], tasks=tasks,
                    )
                )
        return Snapshot(workers=workers)

    def restore(self, snapshot: Snapshot) -> None:
        """Replace the whole state by ``snapshot``'s; reservations lapse after their ``expires_in``
        on this registry's clock.  Raises the scheduler's errors on an inconsistent snapshot."""
        self._schedulers = {}
        self._members = {}
        now = self._clock()
        for worker in snapshot.workers:
            scheduler = self._scheduler_for(worker.purpose)
            scheduler.add_worker(worker.id, worker.info)
            scheduler.update_load(worker.id, worker.load)
            scheduler.update_state(worker.id, worker.state)
            if worker.drained:
                scheduler.drain(worker.id)
            for task in worker.tasks:
                scheduler.reserve(task.task, worker.id, task.reserve_time, task.expires_in)
                if task.state == "executing":
                    scheduler.pick_up(worker.id, [task.task])
            self._members[worker.id] = Member(worker.purpose, now)

    # ------------------------------------------------------------------ internals

    def _scheduler_for(self, purpose: str) -> Scheduler:
        scheduler = self._schedulers.get(purpose)
        if scheduler is None:
            scheduler = Scheduler(
                purpose,
                self._strategies.get(purpose),
                clock=self._clock,
                default_reserve_time=self._default_reserve_time,
                rng=self._rng,
                default_max_load=self._default_max_load,
            )
            self._schedulers[purpose] = scheduler
        return scheduler

    def _of(self, worker_id: str) -> Scheduler:
        return self._schedulers[self._members[worker_id].purpose]


def snapshot_from_builtins(data: Any) -> Snapshot:
    """Decode a JSON-ready snapshot; ``ValueError`` when it is not one."""
    try:
        return msgspec.convert(data, Snapshot)
    except msgspec.ValidationError as exc:
        raise ValueError(f"not a cluster manager snapshot: {exc}") from None
