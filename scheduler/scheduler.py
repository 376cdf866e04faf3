"""The per-purpose :class:`Scheduler`: workers, task reservations, and the choice of a worker.

OWT semantics (``reference/owt-server-behaviour.md`` §2.2.4), with its defects fixed:

* a task is **reserved** on a worker by :meth:`Scheduler.schedule` for a reserve time, becomes
  **executing** when the worker picks it up (:meth:`~Scheduler.pick_up`, or the strict
  single-use :meth:`~Scheduler.claim`), and when laid down lingers as a reservation for its
  reserve time before it is forgotten;
* scheduling a known task is **sticky**: it returns the task's worker whatever its load, state or
  drain flag, and extends the reservation;
* a new task goes to a candidate chosen by the purpose's matcher and the configured strategy.

A **candidate** is a worker in state ``available``, not drained, whose reported load is below its
``max_load`` and whose **effective load** is too.  The effective load is the reported load plus
``reserved × load_step``: every reservation not yet picked up counts, so a burst of schedule calls
spreads over workers instead of piling onto the one that reported the lowest load.
``load_step`` is ``1 / info['max_tasks']`` when a worker declares ``max_tasks``, else the
scheduler's ``reservation_load`` (0.01 by default: 100 pending reservations weigh as much as a fully
loaded worker).  When no worker is a candidate only because of reservations, the scheduler
overcommits rather than fails: it chooses among workers whose *reported* load is below
``max_load`` (a scan, but a rare one).

New workers are schedulable at once (load 0 until they report).  Time comes from the injected
``clock`` (seconds); there are no timers: expired reservations are dropped lazily by every call
and by :meth:`Scheduler.expire`, which the cluster manager may call every second.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from .errors import (
    InvalidArgument,
    NoMatchingWorker,
    NoWorkerAvailable,
    TaskAlreadyClaimed,
    TaskExpired,
    TaskOnOtherWorker,
    UnknownTask,
    UnknownWorker,
)
from .matchers import Matcher, create_matcher, matcher_for
from .pools import Pool, PoolCache
from .records import SERVICEABLE_STATE, OrphanedReservation, TaskRecord, WorkerRecord, parse_capacity
from .strategies import Strategy, create_strategy, default_strategy_for

__all__ = ["Scheduler", "STATE_NAMES", "Clock"]

Clock = Callable[[], float]

#: OWT's numeric worker states and the names used here (only ``available`` takes new tasks).
STATE_NAMES: Mapping[int, str] = {0: "unavailable", 1: "warning", 2: SERVICEABLE_STATE}

_ExpiryEntry = tuple[float, int, TaskRecord]


def _finite_or_inf(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise InvalidArgument(f"{what} must be a number, got {value!r}")
    return float(value)


class Scheduler:
    """Chooses workers of one purpose for tasks, and remembers which task is where.

    :param purpose: the worker purpose (``portal``, ``conference``, ``webrtc``, ...); it selects
        the matcher (:data:`scheduler.matchers.MATCHER_FOR_PURPOSE`) and, when ``strategy`` is
        ``None``, OWT's default strategy (:data:`scheduler.DEFAULT_STRATEGIES`).
    :param strategy: a strategy name (see :func:`scheduler.create_strategy`) or instance.
    :param clock: returns the current time in seconds (``time.monotonic`` by default).
    :param default_reserve_time: seconds a reservation lasts when ``schedule`` gets no positive
        reserve time, and for tasks picked up without a reservation.
    :param rng: randomness for the random strategies (seed it in tests).
    :param matcher: override the purpose's matcher (a name or instance).
    :param default_max_load: ``max_load`` of workers whose info has no ``max_load``/``maxLoad``.
    :param reservation_load: the load one pending reservation adds, for workers without
        ``max_tasks`` in their info.
    :param max_pools: how many candidate pools (distinct preferences) to keep indexed.
    :param expired_memory: how many expired task ids to remember, so that a late
        :meth:`claim` reports :class:`~scheduler.TaskExpired` rather than an unknown task; also
        how many reservations of removed workers to keep claimable by a sibling
        (:class:`~scheduler.records.OrphanedReservation`) until they lapse.

    Not thread-safe; call it from one thread (the cluster manager's event loop).
    """

    def __init__(
        self,
        purpose: str,
        strategy: str | Strategy | None = None,
        clock: Clock = time.monotonic,
        default_reserve_time: float = 30.0,
        rng: random.Random | None = None,
        *,
        matcher: str | Matcher | None = None,
        default_max_load: float = 0.85,
        reservation_load: float = 0.01,
        max_pools: int = 256,
        expired_memory: int = 4096,
    ) -> None:
        if not isinstance(purpose, str) or not purpose:
            raise InvalidArgument(f"purpose must be a non-empty string, got {purpose!r}")
        reserve = _finite_or_inf(default_reserve_time, "default_reserve_time")
        if reserve <= 0:
            raise InvalidArgument(f"default_reserve_time must be positive, got {default_reserve_time!r}")
        if _finite_or_inf(default_max_load, "default_max_load") <= 0:
            raise InvalidArgument(f"default_max_load must be positive, got {default_max_load!r}")
        if _finite_or_inf(reservation_load, "reservation_load") < 0:
            raise InvalidArgument(f"reservation_load must not be negative, got {reservation_load!r}")
        self._purpose = purpose
        if strategy is None:
            strategy = default_strategy_for(purpose)
        self._strategy = create_strategy(strategy, rng) if isinstance(strategy, str) else strategy
        if matcher is None:
            self._matcher = matcher_for(purpose)
        else:
            self._matcher = create_matcher(matcher) if isinstance(matcher, str) else matcher
        self._clock = clock
        self._default_reserve_time = reserve
        self._default_max_load = float(default_max_load)
        self._reservation_load = float(reservation_load)
        self._workers: dict[str, WorkerRecord] = {}
        self._tasks: dict[str, TaskRecord] = {}
        self._expiry: list[_ExpiryEntry] = []
        self._expiry_seq = itertools.count()
        self._join_seq = itertools.count()
        self._terms: Counter[Hashable] = Counter()
        self._pools = PoolCache(self._matcher, self._strategy.new_index, max_pools)
        self._expired_memory = max(0, expired_memory)
        self._expired: OrderedDict[str, float] = OrderedDict()
        self._unreported: deque[str] = deque(maxlen=max(1024, self._expired_memory))
        # Reservations of removed workers, claimable by a sibling until they lapse: task → orphan.
        self._orphans: OrderedDict[str, OrphanedReservation] = OrderedDict()

    # ------------------------------------------------------------------ properties

    @property
    def purpose(self) -> str:
        """The purpose this scheduler serves."""
        return self._purpose

    @property
    def strategy(self) -> str:
        """The strategy's configuration name."""
        return self._strategy.name

    @property
    def matcher(self) -> str:
        """The matcher's name."""
        return self._matcher.name

    @property
    def default_reserve_time(self) -> float:
        """Seconds a reservation lasts when no positive reserve time is given."""
        return self._default_reserve_time

    # ------------------------------------------------------------------ workers

    def add_worker(self, worker_id: str, info: Mapping[str, Any] | None = None) -> None:
        """Register a worker; it is schedulable at once (state ``available``, load 0).

        ``info`` may hold ``capacity`` (see :mod:`scheduler.matchers`), ``max_load`` or
        ``maxLoad`` (default ``default_max_load``), ``max_tasks`` and anything else (``hostname``,
        ``port``, ...), which is kept and shown in views.  Adding a worker id that exists
        re-declares it: info and capacity are replaced, state and load reset, and its tasks and
        drain flag are kept.
        """
        if not isinstance(worker_id, str):
            raise InvalidArgument(f"worker id must be a string, got {worker_id!r}")
        if info is None:
            info = {}
        if not isinstance(info, Mapping):
            raise InvalidArgument(f"worker info must be a mapping, got {type(info).__name__}")
        info = dict(info)
        max_load, step = WorkerRecord.limits(info, self._default_max_load, self._reservation_load)
        worker = self._workers.get(worker_id)
        if worker is not None:
            self._withdraw(worker)
            self._pools.leave(worker)
            self._terms.subtract(self._matcher.terms(worker.capacity))
            self._terms = +self._terms
            worker.info, worker.capacity = info, parse_capacity(info)
            worker.max_load, worker.load_step = max_load, step
            worker.state, worker.load = SERVICEABLE_STATE, 0.0
        else:
            worker = WorkerRecord(
                id=worker_id,
                purpose=self._purpose,
                info=info,
                capacity=parse_capacity(info),
                max_load=max_load,
                load_step=step,
                join_seq=next(self._join_seq),
            )
            self._workers[worker_id] = worker
        self._terms.update(self._matcher.terms(worker.capacity))
        self._pools.join(worker)
        self._refresh(worker)

    def remove_worker(self, worker_id: str) -> list[str]:
        """Unregister a worker; every task mapped to it is repealed and returned.  Its reservations
        not yet claimed stay claimable by a sibling until they lapse (see :meth:`check_claim`).

        :raises UnknownWorker: if the worker is not registered.
        """
        worker = self._worker(worker_id)
        now = self._clock()
        self._sweep(now)
        del self._workers[worker_id]
        tasks = list(worker.tasks)
        for task in tasks:
            record = self._tasks.pop(task)
            if record.state == "reserved" and record.expires_at is not None and self._expired_memory:
                self._orphans[task] = OrphanedReservation(worker.capacity, record.expires_at)
                self._orphans.move_to_end(task)
                if len(self._orphans) > self._expired_memory:
                    self._orphans.popitem(last=False)
        worker.tasks.clear()
        worker.reserved = 0
        worker.alive = False
        self._withdraw(worker)
        self._pools.leave(worker)
        self._terms.subtract(self._matcher.terms(worker.capacity))
        self._terms = +self._terms
        return tasks

    def has_worker(self, worker_id: str) -> bool:
        """Is ``worker_id`` registered?"""
        return worker_id in self._workers

    def worker_ids(self) -> list[str]:
        """Registered worker ids, in join order."""
        return list(self._workers)

    def worker_info(self, worker_id: str) -> dict[str, Any]:
        """The info the worker registered with (the dict itself: do not modify it)."""
        return self._worker(worker_id).info

    def update_load(self, worker_id: str, load: float) -> None:
        """Record the worker's reported load (a float, nominally 0..1; negative counts as 0).

        :raises UnknownWorker: unknown worker. :raises InvalidArgument: NaN or not a number.
        """
        value = _finite_or_inf(load, "load")
        worker = self._worker(worker_id)
        worker.load = max(0.0, value)
        self._refresh(worker)

    def update_state(self, worker_id: str, state: str | int) -> None:
        """Record the worker's state; only ``'available'`` (OWT's 2) takes new tasks.

        Any other string (``'unavailable'``, ``'warning'``, ...) makes the worker unschedulable for
        new tasks; OWT's numbers 0, 1, 2 are accepted and named by :data:`STATE_NAMES`.
        """
        if isinstance(state, int) and not isinstance(state, bool) and state in STATE_NAMES:
            state = STATE_NAMES[state]
        if not isinstance(state, str) or not state:
            raise InvalidArgument(f"worker state must be a non-empty string or 0/1/2, got {state!r}")
        worker = self._worker(worker_id)
        worker.state = state
        self._refresh(worker)

    def drain(self, worker_id: str) -> None:
        """Cordon a worker: it keeps its tasks and sticky reservations but gets no new task."""
        worker = self._worker(worker_id)
        worker.drained = True
        self._refresh(worker)

    def undrain(self, worker_id: str) -> None:
        """Lift :meth:`drain`."""
        worker = self._worker(worker_id)
        worker.drained = False
        self._refresh(worker)

    # ------------------------------------------------------------------ tasks

    def schedule(self, task: str, preference: object = None, reserve_time: float | None = None) -> str:
        """Choose a worker for ``task`` and reserve the task on it; return the worker id.

        A task already mapped to a worker goes back to that worker (sticky), whatever its load,
        state or drain flag; its reserve time becomes the larger of the old and the requested one
        and, if it is only reserved, its expiry restarts from now.  The same as :meth:`choose`
        followed by :meth:`reserve`.

        :param preference: the matcher's preference (e.g. ``{'isp': ..., 'region': ...}``); a
            missing or malformed preference means no preference.
        :param reserve_time: seconds; ``None`` or not positive means ``default_reserve_time``.
        :raises NoMatchingWorker: workers exist, but none passes the hard filter.
        :raises NoWorkerAvailable: no worker at all, or every matching one is full, unavailable
            or drained.
        """
        worker_id = self.choose(task, preference)
        self.reserve(task, worker_id, reserve_time)
        return worker_id

    def choose(self, task: str, preference: object = None) -> str:
        """The worker :meth:`schedule` would reserve ``task`` on, without reserving it: the task's
        worker if it is mapped (sticky), else a candidate chosen by the matcher and the strategy
        (a random or rotating strategy moves on).  Raises what :meth:`schedule` raises."""
        if not isinstance(task, str):
            raise InvalidArgument(f"task must be a string, got {task!r}")
        now = self._clock()
        self._sweep(now)
        record = self._tasks.get(task)
        if record is not None:
            return record.worker.id
        return self._choose(preference, now).id

    def ranked(self, preference: object = None, *, exclude: Iterable[str] = (), limit: int = 3) -> list[str]:
        """Up to ``limit`` workers that could serve a client of ``preference`` now, best first, by the
        rules of :meth:`choose`: only workers passing the matcher's hard filter (ISP), those matching
        its soft preference (region) first, then by effective load and join order.  Only workers in
        state ``available``, not drained and alive count (reservations and full loads do not: the
        list names where a client may go, nothing is reserved).  ``exclude`` names workers to leave
        out (the asker)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidArgument(f"limit must be a non-negative integer, got {limit!r}")
        self._sweep(self._clock())
        query = self._matcher.query(preference, self._terms)
        left_out = set(exclude)
        fit = [
            w for w in self._workers.values()
            if w.id not in left_out and w.alive and w.state == SERVICEABLE_STATE and not w.drained
            and self._matcher.accepts(query.hard, w.capacity)
        ]
        soft = query.soft
        fit.sort(key=lambda w: (
            not (soft is not None and self._matcher.prefers(soft, w.capacity)), w.effective_load, w.join_seq
        ))
        return [w.id for w in fit[:limit]]

    def reserve(
        self, task: str, worker_id: str, reserve_time: float | None = None, expires_in: float | None = None
    ) -> None:
        """Reserve ``task`` on ``worker_id`` (a choice made by :meth:`choose`, here or on another
        scheduler): a new task is reserved there for ``reserve_time`` seconds; a task mapped to that
        worker keeps the larger reserve time and, if only reserved, its expiry restarts from now.

        :param expires_in: seconds until this reservation lapses, when it is not ``reserve_time``
            (a reservation copied from a snapshot).
        :raises UnknownWorker: the worker is not registered.
        :raises TaskOnOtherWorker: the task is mapped to another worker.
        """
        if not isinstance(task, str):
            raise InvalidArgument(f"task must be a string, got {task!r}")
        worker = self._worker(worker_id)
        now = self._clock()
        self._sweep(now)
        reserve = self._reserve_time(reserve_time)
        lapse = reserve if expires_in is None else max(0.0, float(expires_in))
        record = self._tasks.get(task)
        if record is not None:
            if record.worker is not worker:
                raise TaskOnOtherWorker(f"task {task!r} is mapped to another worker, not to {worker_id!r}")
            if reserve > record.reserve_time:
                record.reserve_time = reserve
            if record.state == "reserved":
                self._set_expiry(record, now + (record.reserve_time if expires_in is None else lapse))
            return
        record = TaskRecord(task, worker, reserve, "reserved", None)
        self._tasks[task] = record
        worker.tasks[task] = record
        worker.reserved += 1
        self._set_expiry(record, now + lapse)
        self._expired.pop(task, None)
        self._orphans.pop(task, None)
        self._refresh(worker)

    def reserve_time_of(self, task: str) -> float | None:
        """The reserve time of a mapped task (how long it lingers once laid down), or ``None``."""
        self._sweep(self._clock())
        record = self._tasks.get(task)
        return record.reserve_time if record is not None else None

    def get_scheduled(self, task: str) -> str | None:
        """The worker ``task`` is reserved or executing on, or ``None``."""
        self._sweep(self._clock())
        record = self._tasks.get(task)
        return record.worker.id if record is not None else None

    def claim(self, task: str, worker_id: str) -> None:
        """Turn ``task``'s reservation on ``worker_id`` into an executing task, exactly once.

        This is how a login token becomes single-use.  Raises what :meth:`check_claim` raises.
        """
        self.check_claim(task, worker_id)
        record = self._tasks.get(task)
        if record is None or record.worker is not self._workers[worker_id]:
            self.pick_up(worker_id, [task])  # claimed by a sibling of the worker it was reserved on
            return
        self._execute(record)

    def check_claim(self, task: str, worker_id: str) -> None:
        """Whether :meth:`claim` would succeed now, changing nothing (but lazy expiry).

        :raises UnknownWorker: the worker is not registered.
        :raises TaskExpired: the reservation lapsed (remembered for ``expired_memory`` tasks).
        :raises UnknownTask: the task has no reservation (alias ``TaskNotReserved``).
        :raises TaskOnOtherWorker: it is reserved on another worker (or on a worker since removed:
            :class:`~scheduler.records.OrphanedReservation`) and ``worker_id`` is not that worker's
            sibling: its capacity does not :meth:`~scheduler.records.Capacity.covers` that
            worker's.  A sibling may claim it — a client a load balancer sent on because the portal
            its token names died, before or after the cluster noticed.
        :raises TaskAlreadyClaimed: it is already executing.
        """
        worker = self._worker(worker_id)
        now = self._clock()
        self._sweep(now)
        record = self._tasks.get(task)
        if record is None:
            orphan = self._orphans.get(task)
            if orphan is not None:
                if orphan.expires_at <= now:
                    raise TaskExpired(f"the reservation of task {task!r} has expired")
                if not worker.capacity.covers(orphan.capacity):
                    raise TaskOnOtherWorker(
                        f"task {task!r} was reserved on a worker that is gone, and {worker_id!r} "
                        "does not serve all it served")
                return
            if task in self._expired:
                raise TaskExpired(f"the reservation of task {task!r} has expired")
            raise UnknownTask(f"task {task!r} is not reserved")
        sibling = record.state == "reserved" and worker.capacity.covers(record.worker.capacity)
        if record.worker is not worker and not sibling:
            raise TaskOnOtherWorker(f"task {task!r} is reserved on another worker, not on {worker_id!r}")
        if record.state == "executing":
            raise TaskAlreadyClaimed(f"task {task!r} has already been claimed")

    def pick_up(self, worker_id: str, tasks: Iterable[str]) -> None:
        """The worker reports it executes ``tasks``: they stop expiring and stop counting as load.

        A task reserved on another worker moves to this one (OWT's "worker conflicts"), and an
        unknown task is adopted with the default reserve time, so that workers re-reporting their
        tasks after a cluster-manager restart restore the mappings.
        """
        worker = self._worker(worker_id)
        self._sweep(self._clock())
        for task in tasks:
            record = self._tasks.get(task)
            if record is None:
                record = TaskRecord(task, worker, self._default_reserve_time, "executing", None)
                self._tasks[task] = record
                worker.tasks[task] = record
                self._expired.pop(task, None)
                self._orphans.pop(task, None)
            elif record.worker is not worker:
                previous = record.worker
                del previous.tasks[task]
                if record.state == "reserved":
                    previous.reserved -= 1
                    self._refresh(previous)
                record.worker, record.state, record.expires_at = worker, "executing", None
                worker.tasks[task] = record
            elif record.state == "reserved":
                self._execute(record)

    def lay_down(self, worker_id: str, task: str) -> None:
        """The worker stopped executing ``task``: it lingers as a reservation for its reserve
        time, then is forgotten.  A task only reserved on this worker is repealed; a task of
        another worker is left alone."""
        worker = self._worker(worker_id)
        now = self._clock()
        self._sweep(now)
        record = self._tasks.get(task)
        if record is None or record.worker is not worker:
            return
        if record.state == "executing":
            record.state = "reserved"
            worker.reserved += 1
            self._set_expiry(record, now + record.reserve_time)
            self._refresh(worker)
        else:
            self._repeal(record)

    def unschedule(self, worker_id: str, task: str) -> None:
        """Repeal ``task`` if it is mapped (reserved or executing) to ``worker_id``."""
        worker = self._worker(worker_id)
        self._sweep(self._clock())
        record = self._tasks.get(task)
        if record is not None and record.worker is worker:
            self._repeal(record)

    def expire(self, now: float | None = None) -> list[str]:
        """Drop reservations expired at ``now`` (default: the clock) and return the tasks dropped
        since the last call, including those dropped lazily by other calls."""
        self._sweep(self._clock() if now is None else now)
        expired = list(self._unreported)
        self._unreported.clear()
        return expired

    # ------------------------------------------------------------------ views

    def worker_view(self, worker_id: str) -> dict[str, Any]:
        """``{id, purpose, state, load, effective_load, max_load, drained, schedulable,
        reserved, executing, tasks, info}`` — JSON-ready."""
        worker = self._worker(worker_id)
        self._sweep(self._clock())
        return worker.view()

    def workers_view(self) -> list[dict[str, Any]]:
        """:meth:`worker_view` of every worker, in join order."""
        self._sweep(self._clock())
        return [worker.view() for worker in self._workers.values()]

    def tasks_of(self, worker_id: str) -> list[dict[str, Any]]:
        """``[{task, worker, state: 'reserved'|'executing', expires_in}]`` of a worker."""
        worker = self._worker(worker_id)
        now = self._clock()
        self._sweep(now)
        return [record.view(now) for record in worker.tasks.values()]

    def task_view(self, task: str) -> dict[str, Any] | None:
        """``{task, worker, state, expires_in}`` of one task, or ``None``."""
        now = self._clock()
        self._sweep(now)
        record = self._tasks.get(task)
        return record.view(now) if record is not None else None

    def __repr__(self) -> str:
        return (
            f"Scheduler(purpose={self._purpose!r}, strategy={self.strategy!r}, "
            f"workers={len(self._workers)}, tasks={len(self._tasks)})"
        )

    # ------------------------------------------------------------------ internals

    def _worker(self, worker_id: str) -> WorkerRecord:
        worker = self._workers.get(worker_id)
        if worker is None:
            raise UnknownWorker(f"worker {worker_id!r} does not exist")
        return worker

    def _reserve_time(self, reserve_time: object) -> float:
        if isinstance(reserve_time, bool) or not isinstance(reserve_time, (int, float)):
            return self._default_reserve_time
        if math.isnan(reserve_time) or reserve_time <= 0:
            return self._default_reserve_time
        return float(reserve_time)

    def _choose(self, preference: object, now: float) -> WorkerRecord:
        query = self._matcher.query(preference, self._terms)
        workers = self._workers.values()
        sweet: Pool | None = None
        if query.soft is not None:
            sweet = self._pools.get((query.hard, query.soft), workers)
            chosen = sweet.index.pick(now)
            if chosen is not None:
                return chosen
        matching = self._pools.get((query.hard, None), workers)
        chosen = matching.index.pick(now)
        if chosen is not None:
            return chosen
        if not self._workers:
            raise NoWorkerAvailable(f"no {self._purpose} worker is registered")
        if not matching.members:
            raise NoMatchingWorker(f"no {self._purpose} worker matches the preference {preference!r}")
        # No candidate: overcommit on reservations if some worker's reported load allows it.
        for pool in (sweet, matching):
            if pool is not None:
                servable = [w for w in pool.ordered_members() if w.servable()]
                if servable:
                    return self._strategy.pick(servable, now)
        raise NoWorkerAvailable(
            f"no {self._purpose} worker available: every matching worker is full, unavailable or drained"
        )

    def _refresh(self, worker: WorkerRecord) -> None:
        """Recompute effective load and candidacy, and tell the pools what changed."""
        effective = worker.load + worker.reserved * worker.load_step
        load_changed = effective != worker.effective_load
        worker.effective_load = effective
        candidate = (
            worker.alive
            and worker.state == SERVICEABLE_STATE
            and not worker.drained
            and worker.load < worker.max_load
            and effective < worker.max_load
        )
        if candidate != worker.candidate:
            worker.candidate = candidate
            worker.epoch += 1
            worker.version += 1
            if candidate:
                for pool in worker.pools.values():
                    pool.index.entered(worker)
            else:
                for pool in worker.pools.values():
                    pool.index.left(worker)
        elif candidate and load_changed:
            worker.version += 1
            for pool in worker.pools.values():
                pool.index.load_changed(worker)

    def _withdraw(self, worker: WorkerRecord) -> None:
        """Make ``worker`` a non-candidate everywhere (before its pool memberships change)."""
        if worker.candidate:
            worker.candidate = False
            worker.epoch += 1
            worker.version += 1
            for pool in worker.pools.values():
                pool.index.left(worker)

    def _execute(self, record: TaskRecord) -> None:
        record.state = "executing"
        record.expires_at = None
        record.worker.reserved -= 1
        self._refresh(record.worker)

    def _repeal(self, record: TaskRecord) -> None:
        worker = record.worker
        del self._tasks[record.task]
        del worker.tasks[record.task]
        if record.state == "reserved":
            worker.reserved -= 1
            self._refresh(worker)

    def _set_expiry(self, record: TaskRecord, expires_at: float) -> None:
        record.expires_at = expires_at
        heapq.heappush(self._expiry, (expires_at, next(self._expiry_seq), record))
        if len(self._expiry) > 2 * len(self._tasks) + 1024:
            self._expiry = [e for e in self._expiry if self._live_expiry(e)]
            heapq.heapify(self._expiry)

    def _live_expiry(self, entry: _ExpiryEntry) -> bool:
        expires_at, _, record = entry
        return (
            record.state == "reserved"
            and record.expires_at == expires_at
            and self._tasks.get(record.task) is record
        )

    def _sweep(self, now: float) -> None:
        heap = self._expiry
        while heap and heap[0][0] <= now:
            entry = heapq.heappop(heap)
            if not self._live_expiry(entry):
                continue
            record = entry[2]
            self._repeal(record)
            self._unreported.append(record.task)
            if self._expired_memory:
                self._expired[record.task] = entry[0]
                self._expired.move_to_end(record.task)
                if len(self._expired) > self._expired_memory:
                    self._expired.popitem(last=False)
