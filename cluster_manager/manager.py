"""The cluster manager's RPC service: every method on the wire, the lifecycle and the change feed.

One :class:`ClusterManager` serves the RPC service ``settings.name``.  Its workers and tasks live in
a :class:`~cluster_manager.registry.Registry` (one scheduler per purpose); a worker's handler here
decides (checks, chooses a worker) and applies the outcome as a :mod:`~cluster_manager.changes`
change through the :class:`~cluster_manager.writer.RegistryWriter`, the registry's one writer, which
also hands it to the standbys.  Every handler does its checks and its change without awaiting in
between, so concurrent calls (``claim`` races) are atomic.

The rest is done by helpers the manager owns, each the only writer of its own state:

- :class:`~cluster_manager.freshman.FreshmanWindow`: ``initializing`` or ``in-service``;
- :class:`~cluster_manager.reaper.Reaper`: removing workers that quit, departed or stopped keeping
  alive (the liveness sweep, the departure watch) and publishing ``exit.quit``;
- :class:`~cluster_manager.failover.Failover`: handing a lost worker's journaled rooms over;
- :class:`~cluster_manager.admin.Admin`: the admin methods (keys, views, drain).

They are composed rather than mixed in, so each sees only what it is given.  The manager owns the
state; what it serves is :class:`~cluster_manager.service.ManagerService` (its :attr:`service`): the
worker-facing methods of :class:`~cluster_manager.service.ClusterService` (contract:
:mod:`contracts.cluster`) and the admin methods of :class:`~cluster_manager.admin_service.AdminService`
(contract: :mod:`contracts.admin`), which delegate here and to :class:`~cluster_manager.admin.Admin`.
A :class:`~cluster_manager.node.ManagerNode` forwards the same methods to its active manager's service.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

from alerts import FaultReporter
from credentials import AdminKeys
from contracts.admin import ManagerView
from contracts.cluster import IN_SERVICE, KEEPALIVE_OK, KEEPALIVE_WHOAREYOU, PortalAddress, Readiness, Scheduled
from rpc import ServiceHandle, Transport, request_id
from rpc.addresses import public_address
from scheduler import STRATEGY_NAMES, SchedulerError, UnknownStrategy, create_strategy

from .admin import Admin
from .changes import (
    LoadReported,
    StateReported,
    TaskClaimed,
    TaskLaidDown,
    TasksPickedUp,
    TaskUnscheduled,
    WorkerJoined,
)
from .errors import from_scheduler_error, no_worker_available, not_ready, not_replicating, unknown_worker
from .eventlog import log_event
from .failover import Failover
from .faults import FaultLog
from .lost import LostWorkers
from .freshman import FreshmanWindow
from .liveness import LivenessTracker
from .messages import to_builtins
from .reaper import Reaper
from .registry import Registry, snapshot_from_builtins
from .replication import ChangeFeed, ReplicaState
from .service import ManagerService
from .settings import ClusterManagerSettings
from .tallies import ManagerTallies
from .writer import RegistryWriter

__all__ = ["ClusterManager"]

#: The purpose portals join with (the token API schedules its tokens on them).
PORTAL_PURPOSE = "portal"


class ClusterManager:
    """The RPC service that places tasks on workers and watches that the workers live.

    :param transport: a started transport; the manager serves ``settings.name`` on it and
        publishes ``exit.quit`` events through it.
    :param settings: see :class:`ClusterManagerSettings`.
    :param clock: seconds, monotonic; drives reservations, the freshman window and uptimes (the
        liveness sweep runs on the event loop's real time).
    :param fresh: ``True`` when the manager starts with no state (a first start, or a restart):
        for ``settings.initial_time`` it refuses to place new tasks and waits for workers to rejoin
        and re-report their tasks.  ``False`` serves at once (state was restored).
    :param rng: randomness for the random strategies (seed it in tests).
    :param admin_keys: the keys admin calls (:data:`~cluster_manager.admin_service.ADMIN_METHODS`) must
        carry as ``admin_key``; with none, every admin call is refused.
    :param epoch: the leader epoch its published changes carry (``settings.replication``).
    :param registry: state to serve from (a standby's copy, taken over), instead of an empty one;
        ``seq`` is the number of the last change it holds.
    :param may_act: asked before the liveness sweep and the hand-overs act; ``False`` (a leader that
        lost its lease) skips them.
    :param faults: the fault timeline to record in (a node passes its own, kept across promotions;
        default: a new one of ``settings.fault_log_size``).
    :param standbys: the standby managers heard from lately (a node's board; default: none).

    Usage::

        manager = ClusterManager(transport, ClusterManagerSettings())
        await manager.start()
        ...
        await manager.stop()
    """

    def __init__(
        self,
        transport: Transport,
        settings: ClusterManagerSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        fresh: bool = True,
        rng: random.Random | None = None,
        admin_keys: AdminKeys | None = None,
        epoch: int = 1,
        registry: Registry | None = None,
        seq: int = 0,
        may_act: Callable[[], bool] | None = None,
        tallies: ManagerTallies | None = None,
        faults: FaultLog | None = None,
        alerts: FaultReporter | None = None,
        standbys: Callable[[], list[ManagerView]] = list,
    ) -> None:
        self.transport = transport
        self.settings = settings or ClusterManagerSettings()
        for purpose, strategy in self.settings.strategies.items():
            try:
                create_strategy(strategy)
            except UnknownStrategy:
                raise ValueError(
                    f"cluster manager strategy for {purpose!r} is {strategy!r}; "
                    f"expected one of: {', '.join(STRATEGY_NAMES)}"
                ) from None
        self._clock = clock
        self._fresh = fresh
        self._registry = registry or Registry(
            strategies=self.settings.strategies,
            default_reserve_time=self.settings.schedule_reserve_time,
            default_max_load=self.settings.default_max_load,
            clock=clock,
            rng=rng,
        )
        self._may_act = may_act or (lambda: True)
        self._feed = ChangeFeed(transport, self.settings, epoch=epoch, seq=seq) if self.settings.replication else None
        self._writer = RegistryWriter(self._registry, self._feed)
        #: Counts for ``/metrics`` (a node passes its own, kept across promotions).
        self.tallies = tallies or ManagerTallies()
        #: The fault timeline (see :mod:`cluster_manager.faults`): ``subscribe`` to hear every fault.
        self.fault_log = faults or FaultLog(self.settings.fault_log_size)
        #: Faults this manager decides (a worker lost, a failover's result) also go to the alert service.
        self.alerts = alerts or FaultReporter(transport, self.settings.name)
        self._lost = LostWorkers(self.settings.lost_worker_retention, self.settings.lost_worker_limit, clock=clock)
        self._failover = Failover(transport, self.settings, self._writer, may_act=self._may_act,
                                  tallies=self.tallies, faults=self.fault_log, alerts=self.alerts)
        self._liveness = LivenessTracker(self.settings.check_alive_count, clock=clock)
        self._window = FreshmanWindow(self.settings.name, self.settings.initial_time, clock=clock)
        self._reaper = Reaper(
            transport, self.settings, self._writer, liveness=self._liveness, failover=self._failover,
            window=self._window, may_act=self._may_act, tallies=self.tallies, faults=self.fault_log, lost=self._lost,
            alerts=self.alerts,
        )
        self._admin = Admin(
            transport, self.settings, self._writer, keys=admin_keys or AdminKeys([]), liveness=self._liveness,
            window=self._window, epoch=lambda: self.epoch, clock=clock, faults=self.fault_log, lost=self._lost,
            standbys=lambda: standbys(),
        )
        #: What it serves (a :class:`~cluster_manager.node.ManagerNode` forwards its calls to it).
        self.service = ManagerService(self)
        self._service: ServiceHandle | None = None
        self._started = False
        self._stopped = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def name(self) -> str:
        """The RPC service name."""
        return self.settings.name

    @property
    def state(self) -> str:
        """``'initializing'`` during the freshman window (and before start), else ``'in-service'``."""
        return self._window.state

    @property
    def registry(self) -> Registry:
        """The workers and tasks (read it; the manager is its only writer)."""
        return self._registry

    @property
    def epoch(self) -> int | None:
        """The leader epoch of its published changes (``None`` without replication)."""
        return None if self._feed is None else self._feed.epoch

    async def start(self) -> None:
        """Serve the RPC service and start the liveness sweep; returns once calls reach it.

        Idempotent.  A start that fails is undone (:meth:`stop`) and its error raised; a manager
        that failed to start or was stopped cannot be started again.
        """
        if self._stopped:
            raise RuntimeError("this ClusterManager was stopped; make a new one")
        if self._started:
            return
        async with AsyncExitStack() as undo:
            self.activate()
            undo.push_async_callback(self.stop)
            # Single-active like a ManagerNode's: on a broker, every manager of a cluster declares its
            # queue the same way (a quorum queue), whether it runs alone or with standbys.
            self._service = await self.transport.serve(self.name, self.service, single_active=True)
            await self.watch_transport()
            undo.pop_all()

    def activate(self) -> None:
        """Start the liveness sweep and the change feed without serving (the caller serves and
        forwards calls, see :mod:`cluster_manager.node`); every registered worker's missed count
        starts from zero.  Idempotent."""
        if self._stopped:
            raise RuntimeError("a stopped ClusterManager cannot be started again")
        if self._started:
            return
        self._started = True
        self._window.open(self._fresh)
        for worker_id in self._registry.members:
            self._liveness.track(worker_id)
        if self._feed is not None:
            self._feed.start()
        self._reaper.start()
        log_event(
            logging.INFO, "manager_started", name=self.name, fresh=self._fresh,
            ready_in=self.settings.initial_time if self._fresh else 0.0,
        )
        self._window.announce(len(self._registry.members))
        self.fault_log.record(
            "manager_active", severity="info" if self._fresh and self.epoch in (None, 1) else "warning",
            node=self.transport.node_id, epoch=self.epoch, fresh=self._fresh, workers=len(self._registry.members),
        )

    async def stop(self, *, flush: bool = True) -> None:
        """Stop serving and end the liveness sweep.  Idempotent; the state is kept (see :meth:`snapshot`).

        ``flush=False`` drops the changes not yet published (a deposed leader's)."""
        if self._stopped:
            return
        self._stopped = True
        await self._reaper.close()
        await self._failover.close()
        if self._service is not None:
            await self._service.stop()
            self._service = None
        if self._feed is not None:
            await self._feed.stop(flush=flush)
        log_event(logging.INFO, "manager_stopped", name=self.name)

    async def watch_transport(self) -> None:
        """Follow the broker link and the workers' departures (see :mod:`cluster_manager.reaper`);
        :meth:`start` does it, a node calls it once its manager is active."""
        await self._reaper.watch_transport()

    # ------------------------------------------------------------------ membership
    # What :class:`~cluster_manager.service.ClusterService` serves: its arguments arrive converted to
    # the contract's types (contracts.cluster); each method checks the state and commits its change.

    async def join(self, purpose: str, worker_id: str, info: dict[str, Any]) -> str:
        """Register a worker; returns the manager's state (``initializing`` or ``in-service``).

        A re-join of a registered id keeps it registered (and drained, if it was).  While in
        service its tasks are reset, as the worker (told ``in-service``) drops them too; while
        initializing they are kept, as the worker re-reports them.
        """
        state = self.state
        member = self._registry.members.get(worker_id)
        change = WorkerJoined(worker_id, purpose, info, reset=state == IN_SERVICE)
        lost = self._writer.commit("join", change)
        self._liveness.track(worker_id)
        self._lost.back(worker_id)
        if member is None:
            log_event(logging.INFO, "worker_joined", worker_id=worker_id, purpose=purpose, state=state)
            self.fault_log.record("worker_joined", severity="info", worker_id=worker_id, purpose=purpose)
        else:
            log_event(
                logging.WARNING, "worker_rejoined", worker_id=worker_id, purpose=purpose,
                state=state, tasks_reset=len(lost),
            )
            self.fault_log.record("worker_rejoined", worker_id=worker_id, purpose=purpose,
                               tasks_reset=len(lost))
        return state

    async def quit(self, worker_id: str) -> None:
        """The worker leaves: its tasks are repealed and ``exit.quit`` is published."""
        if worker_id not in self._registry.members:
            raise unknown_worker(worker_id)
        event = self._reaper.remove(worker_id, "quit")
        await self._reaper.publish_exit(event)

    def keep_alive(self, worker_id: str) -> str:
        """``'ok'`` for a registered worker (its missed count resets), ``'whoareyou'`` otherwise."""
        if self._liveness.seen(worker_id):
            return KEEPALIVE_OK
        log_event(logging.INFO, "keepalive_unknown", worker_id=worker_id)
        return KEEPALIVE_WHOAREYOU

    def report_load(self, worker_id: str, load: float) -> None:
        """Record the worker's load (a float, nominally 0..1)."""
        self._writer.scheduler_of(worker_id)
        self._writer.commit("report_load", LoadReported(worker_id, load))

    def report_state(self, worker_id: str, state: str | int) -> None:
        """Record the worker's state; only ``'available'`` (OWT's 2) takes new tasks."""
        self._writer.scheduler_of(worker_id)
        self._writer.commit("report_state", StateReported(worker_id, state))
        log_event(logging.INFO, "worker_state", worker_id=worker_id, state=state)

    # ------------------------------------------------------------------ tasks

    def pick_up_tasks(self, worker_id: str, tasks: list[str]) -> None:
        """The worker executes ``tasks`` (also how a rejoining worker re-reports them)."""
        self._writer.scheduler_of(worker_id)
        self._writer.commit("pick_up_tasks", TasksPickedUp(worker_id, tasks))
        log_event(logging.DEBUG, "tasks_picked_up", worker_id=worker_id, tasks=len(tasks))

    def lay_down_task(self, worker_id: str, task: str) -> None:
        """The worker stopped executing ``task``; it lingers as a reservation for its reserve time."""
        self._writer.scheduler_of(worker_id)
        self._writer.commit("lay_down_task", TaskLaidDown(worker_id, task))
        log_event(logging.DEBUG, "task_laid_down", worker_id=worker_id, task=task)

    def unschedule(self, worker_id: str, task: str, purpose: str | None = None) -> None:
        """Repeal ``task`` if it is mapped to ``worker_id`` (``purpose`` is optional)."""
        self._writer.scheduler_of(worker_id, purpose)
        self._writer.commit("unschedule", TaskUnscheduled(worker_id, task))
        log_event(logging.DEBUG, "task_unscheduled", worker_id=worker_id, task=task)

    def schedule(
        self, purpose: str, task: str, preference: dict[str, Any] | None = None, reserve_time: float | None = None,
    ) -> Scheduled:
        """Reserve ``task`` on a worker of ``purpose``.

        ``reserve_time`` is in seconds (default ``settings.schedule_reserve_time``).  A task
        already mapped goes back to its worker (sticky), also during the freshman window; a new
        task then gets ``not_ready``.
        """
        scheduler = self._registry.schedulers.get(purpose)
        if self.state != IN_SERVICE and (scheduler is None or scheduler.get_scheduled(task) is None):
            raise not_ready(self._window.ready_in())
        if scheduler is None:
            raise no_worker_available(purpose)
        try:
            worker_id = self._writer.place(purpose, task, preference, reserve_time)
        except SchedulerError as exc:
            log_event(logging.DEBUG, "schedule_failed", purpose=purpose, task=task, code=exc.code)
            raise from_scheduler_error("schedule", exc) from None
        log_event(logging.DEBUG, "task_scheduled", purpose=purpose, task=task, worker_id=worker_id)
        return Scheduled(worker_id, scheduler.worker_info(worker_id))

    def get_scheduled(self, purpose: str, task: str) -> Scheduled | None:
        """The worker ``task`` is reserved or executing on, or ``None``."""
        scheduler = self._registry.schedulers.get(purpose)
        worker_id = scheduler.get_scheduled(task) if scheduler is not None else None
        if scheduler is None or worker_id is None:
            return None
        return Scheduled(worker_id, scheduler.worker_info(worker_id))

    def portals(self, preference: dict[str, Any] | None, exclude: list[str], limit: int) -> list[PortalAddress]:
        """Up to ``limit`` live portals a client of ``preference`` may relog in at, best first by the
        scheduler's rules (same ISP only, same region first, then the least loaded;
        :meth:`scheduler.Scheduler.ranked`), leaving out ``exclude``.  Nothing is reserved; a portal
        without a public address is left out."""
        scheduler = self._registry.schedulers.get(PORTAL_PURPOSE)
        if scheduler is None:
            return []
        found: list[PortalAddress] = []
        for worker_id in scheduler.ranked(preference, exclude=exclude, limit=limit):
            try:
                host, secure = public_address(scheduler.worker_info(worker_id))
            except ValueError:
                continue
            found.append(PortalAddress(worker_id, host, secure))
        return found

    async def claim(self, purpose: str, task: str, worker_id: str) -> None:
        """Turn the reservation of ``task`` on ``worker_id`` into a running task, exactly once.

        Fails with ``unknown_task``, ``expired``, ``already_claimed`` or ``wrong_worker``; during
        the freshman window a task the manager does not know yet gets ``not_ready``.
        """
        scheduler = self._registry.schedulers.get(purpose)
        if scheduler is None or not scheduler.has_worker(worker_id):
            raise unknown_worker(worker_id, purpose)
        if self.state != IN_SERVICE and scheduler.get_scheduled(task) is None:
            raise not_ready(self._window.ready_in())
        request = request_id()
        if self._registry.claimed_by(purpose, task, worker_id, request):
            log_event(logging.INFO, "claim_repeated", worker_id=worker_id, task=task)
            return  # this very request claimed it, then was delivered again: the same answer
        try:
            self._registry.check_claim(purpose, task, worker_id)
        except SchedulerError as exc:
            log_event(logging.INFO, "claim_refused", worker_id=worker_id, task=task, code=exc.code)
            raise from_scheduler_error("claim", exc) from None
        self._writer.commit("claim", TaskClaimed(purpose, task, worker_id, request))
        log_event(logging.DEBUG, "task_claimed", worker_id=worker_id, task=task)

    def readiness(self, purpose: str) -> Readiness:
        """Whether tasks of ``purpose`` can be placed now (health checks; nothing in it names a
        worker or a task)."""
        scheduler = self._registry.schedulers.get(purpose)
        schedulable = 0 if scheduler is None else sum(1 for v in scheduler.workers_view() if v["schedulable"])
        return Readiness(state=self.state, ready_in=self._window.ready_in(), schedulable=schedulable)

    @property
    def admin(self) -> Admin:
        """The admin methods' checks and views (:class:`~cluster_manager.admin_service.AdminService` serves them)."""
        return self._admin

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> dict[str, Any]:
        """The registry and every task as a JSON-ready dict (see :class:`~cluster_manager.messages.Snapshot`)."""
        return to_builtins(self._registry.snapshot())

    async def replicated(self) -> None:
        """Return once every change made so far was handed to the standbys (at once without
        replication); a node answers a request only after this, so a standby that takes over knows
        every placement and claim that was answered."""
        if self._feed is not None:
            await self._feed.published(self._feed.seq)

    def replica_snapshot(self, admin_key: str) -> dict[str, Any]:
        """``{epoch, seq, snapshot}``: where a standby starts (see :mod:`cluster_manager.replication`);
        ``not_replicating`` when this manager does not publish its changes.  Every worker and
        reservation is in it: it needs an admin key, as ``get_workers`` does (standbys present theirs)."""
        self._admin.authorize("replica_snapshot", admin_key)
        if self._feed is None:
            raise not_replicating(self.name)
        return to_builtins(ReplicaState(self._feed.epoch, self._feed.seq, self._registry.snapshot()))

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Load a :meth:`snapshot` before :meth:`start`; the manager then serves at once.

        Executing tasks stay executing; a reserved task keeps its remaining time and reserve time.
        """
        if self._started:
            raise RuntimeError("restore() must be called before start()")
        data = snapshot_from_builtins(snapshot)
        try:
            self._registry.restore(data)
        except SchedulerError as exc:
            raise ValueError(f"snapshot cannot be restored: {exc.message}") from None
        for worker in data.workers:
            self._liveness.track(worker.id)
        self._fresh = False
        log_event(logging.INFO, "manager_restored", name=self.name, workers=len(data.workers))
