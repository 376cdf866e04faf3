"""The cluster manager's RPC service and loops: liveness, task hand-overs and the admin RPC.

One :class:`ClusterManager` serves the RPC service ``settings.name``.  Its workers and tasks live in
a :class:`~cluster_manager.registry.Registry` (one scheduler per purpose); the manager decides
(checks, chooses a worker) and applies the outcome to the registry as a
:mod:`~cluster_manager.changes` change, the registry's only writer.  Every handler does its checks
and its change without awaiting in between, so concurrent calls (``claim`` races) are atomic.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any, TypeVar, cast

import msgspec

from credentials import AdminKeys
from rpc import RpcError, RpcRemoteError, ServiceHandle, Transport, request_id, rpc_method
from scheduler import STRATEGY_NAMES, Scheduler, SchedulerError, UnknownStrategy, create_strategy

from .errors import (
    bad_arguments,
    from_scheduler_error,
    no_worker_available,
    not_ready,
    not_replicating,
    unauthorized,
    unknown_worker,
)
from .eventlog import log, log_event
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
from .detection import DeathWatch
from .liveness import LivenessTracker
from .messages import (
    ClaimArgs,
    JoinArgs,
    JoinInfoArgs,
    PickUpArgs,
    ReportLoadArgs,
    ReportStateArgs,
    ScheduleArgs,
    Scheduled,
    ScheduledArgs,
    Status,
    TaskArgs,
    TaskCounts,
    TaskView,
    UnscheduleArgs,
    WorkerArgs,
    WorkerExit,
    WorkersArgs,
    WorkerView,
)
from .registry import Registry, snapshot_from_builtins
from .replication import ChangeFeed, ReplicaState
from .settings import ClusterManagerSettings

__all__ = [
    "ClusterManager",
    "INITIALIZING",
    "IN_SERVICE",
    "KEEPALIVE_OK",
    "KEEPALIVE_WHOAREYOU",
    "EXIT_TOPIC",
    "ADMIN_METHODS",
    "task_digest",
]

INITIALIZING = "initializing"
IN_SERVICE = "in-service"
KEEPALIVE_OK = "ok"
KEEPALIVE_WHOAREYOU = "whoareyou"
#: Topic of the fault event published when a worker quits or is removed.
EXIT_TOPIC = "exit.quit"
#: The RPC methods meant for operators (the admin CLI and its HTTP relay); each needs ``admin_key``.
ADMIN_METHODS = frozenset({"get_workers", "get_worker", "get_tasks", "drain", "undrain", "status"})
#: Purposes whose task names are secrets (a portal task is a join token's code): admin answers
#: show a digest instead.
_SECRET_TASK_PURPOSES = frozenset({"portal"})

_A = TypeVar("_A", bound=msgspec.Struct)


def _parse(method: str, args_type: type[_A], /, **values: Any) -> _A:
    try:
        return msgspec.convert(values, args_type)
    except msgspec.ValidationError as exc:
        raise bad_arguments(method, str(exc)) from None


def task_digest(task: str) -> str:
    """How admin answers show a secret task (a join token's code): ``token:`` + 16 hex digits of its SHA-256."""
    return "token:" + hashlib.sha256(task.encode()).hexdigest()[:16]


def _builtins(value: msgspec.Struct) -> dict[str, Any]:
    return cast(dict[str, Any], msgspec.to_builtins(value))


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
    :param admin_keys: the keys admin calls (:data:`ADMIN_METHODS`) must carry as ``admin_key``;
        with none, every admin call is refused.
    :param epoch: the leader epoch its published changes carry (``settings.replication``).
    :param registry: state to serve from (a standby's copy, taken over), instead of an empty one;
        ``seq`` is the number of the last change it holds.
    :param may_act: asked before the liveness sweep and the hand-overs act; ``False`` (a leader that
        lost its lease) skips them.

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
    ) -> None:
        self.transport = transport
        self._admin_keys = admin_keys or AdminKeys([])
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
        self._liveness = LivenessTracker(self.settings.check_alive_count, clock=clock)
        self._watch = DeathWatch(
            self._liveness, member_of=lambda worker_id: self._registry.members.get(worker_id),
            on_dead=self._depart, settle=self.settings.departure_settle, grace=self.settings.reconnect_grace,
        )
        self._created_at = clock()
        self._ready_at: float | None = None
        #: Whether ``manager_in_service`` was logged (written by the sweep only).
        self._announced = False
        self._service: ServiceHandle | None = None
        self._sweeper: asyncio.Task[None] | None = None
        #: Hand-overs of a lost worker's tasks in progress (ended by ``stop``).
        self._failovers: set[asyncio.Task[None]] = set()
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
        if self._ready_at is not None and self._clock() >= self._ready_at:
            return IN_SERVICE
        return INITIALIZING

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
            self._service = await self.transport.serve(self.name, self, single_active=True)
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
        now = self._clock()
        self._created_at = now
        self._ready_at = now + self.settings.initial_time if self._fresh else now
        for worker_id in self._registry.members:
            self._liveness.track(worker_id)
        if self._feed is not None:
            self._feed.start()
        self._sweeper = asyncio.create_task(self._sweep_loop(), name=f"cluster-liveness:{self.name}")
        log_event(
            logging.INFO, "manager_started", name=self.name, fresh=self._fresh,
            ready_in=self.settings.initial_time if self._fresh else 0.0,
        )
        self._announce_service()

    async def stop(self, *, flush: bool = True) -> None:
        """Stop serving and end the liveness sweep.  Idempotent; the state is kept (see :meth:`snapshot`).

        ``flush=False`` drops the changes not yet published (a deposed leader's)."""
        if self._stopped:
            return
        self._stopped = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
            self._sweeper = None
        await self._watch.close()
        for task in list(self._failovers):
            task.cancel()
        await asyncio.gather(*self._failovers, return_exceptions=True)
        if self._service is not None:
            await self._service.stop()
            self._service = None
        if self._feed is not None:
            await self._feed.stop(flush=flush)
        log_event(logging.INFO, "manager_stopped", name=self.name)

    # ------------------------------------------------------------------ membership

    @rpc_method
    async def join(self, purpose: str, worker_id: str, info: dict[str, Any]) -> str:
        """Register a worker; returns the manager's state (``initializing`` or ``in-service``).

        A re-join of a registered id keeps it registered (and drained, if it was).  While in
        service its tasks are reset, as the worker (told ``in-service``) drops them too; while
        initializing they are kept, as the worker re-reports them.
        """
        args = _parse("join", JoinArgs, purpose=purpose, worker_id=worker_id, info=info)
        _parse("join", JoinInfoArgs, info=args.info)
        state = self.state
        member = self._registry.members.get(args.worker_id)
        lost = self._commit("join", WorkerJoined(args.worker_id, args.purpose, args.info, reset=state == IN_SERVICE))
        self._liveness.track(args.worker_id)
        if member is None:
            log_event(logging.INFO, "worker_joined", worker_id=args.worker_id, purpose=args.purpose, state=state)
        else:
            log_event(
                logging.WARNING, "worker_rejoined", worker_id=args.worker_id, purpose=args.purpose,
                state=state, tasks_reset=len(lost),
            )
        return state

    @rpc_method
    async def quit(self, worker_id: str) -> None:
        """The worker leaves: its tasks are repealed and ``exit.quit`` is published."""
        args = _parse("quit", WorkerArgs, worker_id=worker_id)
        if args.worker_id not in self._registry.members:
            raise unknown_worker(args.worker_id)
        event = self._remove(args.worker_id, "quit")
        await self._publish_exit(event)

    @rpc_method
    async def keep_alive(self, worker_id: str) -> str:
        """``'ok'`` for a registered worker (its missed count resets), ``'whoareyou'`` otherwise."""
        args = _parse("keep_alive", WorkerArgs, worker_id=worker_id)
        if self._liveness.seen(args.worker_id):
            return KEEPALIVE_OK
        log_event(logging.INFO, "keepalive_unknown", worker_id=args.worker_id)
        return KEEPALIVE_WHOAREYOU

    @rpc_method
    async def report_load(self, worker_id: str, load: float) -> None:
        """Record the worker's load (a float, nominally 0..1)."""
        args = _parse("report_load", ReportLoadArgs, worker_id=worker_id, load=load)
        self._scheduler_of(args.worker_id)
        self._commit("report_load", LoadReported(args.worker_id, args.load))

    @rpc_method
    async def report_state(self, worker_id: str, state: str | int) -> None:
        """Record the worker's state; only ``'available'`` (OWT's 2) takes new tasks."""
        args = _parse("report_state", ReportStateArgs, worker_id=worker_id, state=state)
        self._scheduler_of(args.worker_id)
        self._commit("report_state", StateReported(args.worker_id, args.state))
        log_event(logging.INFO, "worker_state", worker_id=args.worker_id, state=args.state)

    # ------------------------------------------------------------------ tasks

    @rpc_method
    async def pick_up_tasks(self, worker_id: str, tasks: list[str]) -> None:
        """The worker executes ``tasks`` (also how a rejoining worker re-reports them)."""
        args = _parse("pick_up_tasks", PickUpArgs, worker_id=worker_id, tasks=tasks)
        self._scheduler_of(args.worker_id)
        self._commit("pick_up_tasks", TasksPickedUp(args.worker_id, args.tasks))
        log_event(logging.DEBUG, "tasks_picked_up", worker_id=args.worker_id, tasks=len(args.tasks))

    @rpc_method
    async def lay_down_task(self, worker_id: str, task: str) -> None:
        """The worker stopped executing ``task``; it lingers as a reservation for its reserve time."""
        args = _parse("lay_down_task", TaskArgs, worker_id=worker_id, task=task)
        self._scheduler_of(args.worker_id)
        self._commit("lay_down_task", TaskLaidDown(args.worker_id, args.task))
        log_event(logging.DEBUG, "task_laid_down", worker_id=args.worker_id, task=args.task)

    @rpc_method
    async def unschedule(self, worker_id: str, task: str, purpose: str | None = None) -> None:
        """Repeal ``task`` if it is mapped to ``worker_id`` (``purpose`` is optional)."""
        args = _parse("unschedule", UnscheduleArgs, worker_id=worker_id, task=task, purpose=purpose)
        self._scheduler_of(args.worker_id, args.purpose)
        self._commit("unschedule", TaskUnscheduled(args.worker_id, args.task))
        log_event(logging.DEBUG, "task_unscheduled", worker_id=args.worker_id, task=args.task)

    @rpc_method
    async def schedule(
        self,
        purpose: str,
        task: str,
        preference: dict[str, Any] | None = None,
        reserve_time: float | None = None,
    ) -> dict[str, Any]:
        """Reserve ``task`` on a worker of ``purpose``; returns ``{id, info}``.

        ``reserve_time`` is in seconds (default ``settings.schedule_reserve_time``).  A task
        already mapped goes back to its worker (sticky), also during the freshman window; a new
        task then gets ``not_ready``.
        """
        args = _parse(
            "schedule", ScheduleArgs, purpose=purpose, task=task, preference=preference, reserve_time=reserve_time
        )
        scheduler = self._registry.schedulers.get(args.purpose)
        if self.state != IN_SERVICE and (scheduler is None or scheduler.get_scheduled(args.task) is None):
            raise not_ready(self._ready_in())
        if scheduler is None:
            raise no_worker_available(args.purpose)
        try:
            worker_id = self._place(args.purpose, args.task, args.preference, args.reserve_time)
        except SchedulerError as exc:
            log_event(logging.INFO, "schedule_failed", purpose=args.purpose, task=args.task, code=exc.code)
            raise from_scheduler_error("schedule", exc) from None
        log_event(logging.DEBUG, "task_scheduled", purpose=args.purpose, task=args.task, worker_id=worker_id)
        return _builtins(Scheduled(worker_id, scheduler.worker_info(worker_id)))

    @rpc_method
    async def get_scheduled(self, purpose: str, task: str) -> dict[str, Any] | None:
        """``{id, info}`` of the worker ``task`` is reserved or executing on, or ``None``."""
        args = _parse("get_scheduled", ScheduledArgs, purpose=purpose, task=task)
        scheduler = self._registry.schedulers.get(args.purpose)
        worker_id = scheduler.get_scheduled(args.task) if scheduler is not None else None
        if scheduler is None or worker_id is None:
            return None
        return _builtins(Scheduled(worker_id, scheduler.worker_info(worker_id)))

    @rpc_method
    async def claim(self, purpose: str, task: str, worker_id: str) -> None:
        """Turn the reservation of ``task`` on ``worker_id`` into a running task, exactly once.

        Fails with ``unknown_task``, ``expired``, ``already_claimed`` or ``wrong_worker``; during
        the freshman window a task the manager does not know yet gets ``not_ready``.
        """
        args = _parse("claim", ClaimArgs, purpose=purpose, task=task, worker_id=worker_id)
        scheduler = self._registry.schedulers.get(args.purpose)
        if scheduler is None or not scheduler.has_worker(args.worker_id):
            raise unknown_worker(args.worker_id, args.purpose)
        if self.state != IN_SERVICE and scheduler.get_scheduled(args.task) is None:
            raise not_ready(self._ready_in())
        request = request_id()
        if self._registry.claimed_by(args.purpose, args.task, args.worker_id, request):
            log_event(logging.INFO, "claim_repeated", worker_id=args.worker_id, task=args.task)
            return  # this very request claimed it, then was delivered again: the same answer
        try:
            self._registry.check_claim(args.purpose, args.task, args.worker_id)
        except SchedulerError as exc:
            log_event(logging.INFO, "claim_refused", worker_id=args.worker_id, task=args.task, code=exc.code)
            raise from_scheduler_error("claim", exc) from None
        self._commit("claim", TaskClaimed(args.purpose, args.task, args.worker_id, request))
        log_event(logging.DEBUG, "task_claimed", worker_id=args.worker_id, task=args.task)

    @rpc_method
    async def readiness(self, purpose: str) -> dict[str, Any]:
        """``{state, ready_in, schedulable}``: whether tasks of ``purpose`` can be placed now (health
        checks; no admin key, and nothing in it names a worker or a task)."""
        args = _parse("readiness", WorkersArgs, purpose=purpose)
        scheduler = self._registry.schedulers.get(args.purpose or "")
        schedulable = 0 if scheduler is None else sum(1 for v in scheduler.workers_view() if v["schedulable"])
        return {"state": self.state, "ready_in": self._ready_in(), "schedulable": schedulable}

    # ------------------------------------------------------------------ admin

    def _authorize(self, method: str, admin_key: object) -> None:
        if not self._admin_keys.accepts(admin_key):
            log_event(logging.WARNING, "admin_refused", method=method,
                      reason="missing_key" if not admin_key else "wrong_key")
            raise unauthorized()

    @rpc_method
    async def get_workers(self, purpose: str | None = None, admin_key: str = "") -> list[dict[str, Any]]:
        """Every worker (of ``purpose``, or of all purposes when ``None``), in join order."""
        self._authorize("get_workers", admin_key)
        args = _parse("get_workers", WorkersArgs, purpose=purpose)
        return [
            _builtins(self._view(view))
            for name, scheduler in self._registry.schedulers.items()
            if args.purpose is None or name == args.purpose
            for view in scheduler.workers_view()
        ]

    @rpc_method
    async def get_worker(self, worker_id: str, admin_key: str = "") -> dict[str, Any]:
        """One worker; the same shape for every purpose."""
        self._authorize("get_worker", admin_key)
        args = _parse("get_worker", WorkerArgs, worker_id=worker_id)
        return _builtins(self._view(self._scheduler_of(args.worker_id).worker_view(args.worker_id)))

    @rpc_method
    async def get_tasks(self, worker_id: str, admin_key: str = "") -> list[dict[str, Any]]:
        """The tasks mapped to a worker: ``[{task, worker, state, expires_in}]``.

        A portal's tasks are join-token codes, which would let a reader log in with a forged
        token: they are shown as ``token:<digest>`` (the same digest for the same code)."""
        self._authorize("get_tasks", admin_key)
        args = _parse("get_tasks", WorkerArgs, worker_id=worker_id)
        tasks = self._scheduler_of(args.worker_id).tasks_of(args.worker_id)
        views = [msgspec.convert(task, TaskView) for task in tasks]
        if self._registry.members[args.worker_id].purpose in _SECRET_TASK_PURPOSES:
            views = [msgspec.structs.replace(view, task=task_digest(view.task)) for view in views]
        return [_builtins(view) for view in views]

    @rpc_method
    async def drain(self, worker_id: str, admin_key: str = "") -> dict[str, Any]:
        """Cordon a worker: it keeps its tasks (and sticky ones) but gets no new task.  A worker whose
        tasks are journaled rooms (``failover_purposes``) is also asked to move them away (``migrate``):
        one by one they are rebuilt on other workers, and the drained process exits when it holds none."""
        self._authorize("drain", admin_key)
        view = self._set_drained("drain", worker_id, True)
        member = self._registry.members.get(worker_id)
        if member is not None and member.purpose in self.settings.failover_purposes:
            # Its rooms move away one by one (live migration); it checks the operator's key itself.
            try:
                await self.transport.cast(worker_id, "migrate", {"admin_key": admin_key})
            except RpcError as exc:
                log_event(logging.WARNING, "migrate_not_asked", worker_id=worker_id, error=str(exc))
        return view

    @rpc_method
    async def undrain(self, worker_id: str, admin_key: str = "") -> dict[str, Any]:
        """Lift :meth:`drain`."""
        self._authorize("undrain", admin_key)
        return self._set_drained("undrain", worker_id, False)

    @rpc_method
    async def status(self, admin_key: str = "") -> dict[str, Any]:
        """``{name, state, freshman, ready_in, uptime, workers: {purpose: n}, tasks: {purpose: {reserved, executing}}}``."""
        self._authorize("status", admin_key)
        state = self.state
        workers: dict[str, int] = {}
        tasks: dict[str, TaskCounts] = {}
        for purpose, scheduler in self._registry.schedulers.items():
            views = scheduler.workers_view()
            workers[purpose] = len(views)
            tasks[purpose] = TaskCounts(
                reserved=sum(v["reserved"] for v in views), executing=sum(v["executing"] for v in views)
            )
        return _builtins(
            Status(
                name=self.name,
                state=state,  # type: ignore[arg-type]
                freshman=state != IN_SERVICE,
                ready_in=self._ready_in(),
                uptime=max(0.0, self._clock() - self._created_at) if self._started else 0.0,
                workers=workers,
                tasks=tasks,
                node=self.transport.node_id,
                epoch=self.epoch,
            )
        )

    # ------------------------------------------------------------------ snapshots

    def snapshot(self) -> dict[str, Any]:
        """The registry and every task as a JSON-ready dict (see :class:`~cluster_manager.messages.Snapshot`)."""
        return _builtins(self._registry.snapshot())

    async def replicated(self) -> None:
        """Return once every change made so far was handed to the standbys (at once without
        replication); a node answers a request only after this, so a standby that takes over knows
        every placement and claim that was answered."""
        if self._feed is not None:
            await self._feed.published(self._feed.seq)

    @rpc_method
    async def replica_snapshot(self, admin_key: str = "") -> dict[str, Any]:
        """``{epoch, seq, snapshot}``: where a standby starts (see :mod:`cluster_manager.replication`);
        ``not_replicating`` when this manager does not publish its changes.  Every worker and
        reservation is in it: it needs an admin key, as ``get_workers`` does (standbys present theirs)."""
        self._authorize("replica_snapshot", admin_key)
        if self._feed is None:
            raise not_replicating(self.name)
        return _builtins(ReplicaState(self._feed.epoch, self._feed.seq, self._registry.snapshot()))

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

    # ------------------------------------------------------------------ internals

    def _scheduler_of(self, worker_id: str, purpose: str | None = None) -> Scheduler:
        scheduler = self._registry.scheduler_of(worker_id, purpose)
        if scheduler is None:
            raise unknown_worker(worker_id, purpose)
        return scheduler

    def _change(self, change: AnyChange) -> list[str]:
        """Apply a decided change to the registry (the one writer) and hand it to the standbys;
        returns the tasks it repealed."""
        repealed = self._registry.apply(change)
        if self._feed is not None:
            self._feed.append(change)
        return repealed

    def _commit(self, method: str, change: AnyChange) -> list[str]:
        """:meth:`_change`, with a scheduler error turned into the RPC error of ``method``."""
        try:
            return self._change(change)
        except SchedulerError as exc:
            raise from_scheduler_error(method, exc) from None

    def _place(self, purpose: str, task: str, preference: object, reserve_time: float | None) -> str:
        """Choose a worker for ``task`` (sticky if mapped) and reserve it there; raises ``SchedulerError``."""
        worker_id = self._registry.choose(purpose, task, preference)
        self._change(TaskReserved(purpose, task, worker_id, self._registry.reserve_time(reserve_time)))
        return worker_id

    def _set_drained(self, method: str, worker_id: str, drained: bool) -> dict[str, Any]:
        args = _parse(method, WorkerArgs, worker_id=worker_id)
        scheduler = self._scheduler_of(args.worker_id)
        self._commit(method, WorkerDrained(args.worker_id, drained))
        log_event(logging.INFO, "worker_drained" if drained else "worker_undrained", worker_id=args.worker_id)
        return _builtins(self._view(scheduler.worker_view(args.worker_id)))

    def _view(self, view: dict[str, Any]) -> WorkerView:
        member = self._registry.members[view["id"]]
        return WorkerView(
            id=view["id"],
            purpose=view["purpose"],
            state=view["state"],
            load=view["load"],
            effective_load=view["effective_load"],
            max_load=view["max_load"],
            drained=view["drained"],
            schedulable=view["schedulable"],
            reserved=view["reserved"],
            executing=view["executing"],
            missed_keepalives=self._liveness.missed(view["id"]),
            joined_for=max(0.0, self._clock() - member.joined_at),
            info=view["info"],
        )

    def _announce_service(self) -> None:
        # Logs the end of the freshman window once (the sweep looks every interval).
        if not self._announced and self.state == IN_SERVICE:
            self._announced = True
            log_event(logging.INFO, "manager_in_service", name=self.name, workers=len(self._registry.members))

    def _ready_in(self) -> float:
        if self._ready_at is None:
            return self.settings.initial_time
        return max(0.0, self._ready_at - self._clock())

    def _remove(self, worker_id: str, reason: str) -> WorkerExit:
        member = self._registry.members[worker_id]
        self._liveness.forget(worker_id)
        tasks = self._change(WorkerRemoved(worker_id, reason))
        log_event(
            logging.INFO if reason == "quit" else logging.WARNING,
            "worker_removed", worker_id=worker_id, purpose=member.purpose, reason=reason, tasks_repealed=len(tasks),
        )
        if tasks and member.purpose in self.settings.failover_purposes and not self._stopped:
            failover = asyncio.get_running_loop().create_task(
                self._fail_over(member.purpose, worker_id, list(tasks)), name=f"failover:{worker_id}")
            self._failovers.add(failover)
            failover.add_done_callback(self._failovers.discard)
        return WorkerExit(purpose=member.purpose, id=worker_id, reason=reason)

    async def _fail_over(self, purpose: str, lost: str, tasks: list[str]) -> None:
        """Hand each task of a lost worker to a live worker of its purpose, ``failover_concurrency`` of
        them at a time (a room's clients wait for its own hand-over only)."""
        pending = iter(tasks)

        async def hand_over() -> None:
            for task in pending:
                await self._fail_over_task(purpose, lost, task)

        await asyncio.gather(*(hand_over() for _ in range(min(len(tasks), self.settings.failover_concurrency))))

    async def _fail_over_task(self, purpose: str, lost: str, task: str) -> None:
        """Schedule one task of the lost worker (it is then sticky there) and call that worker's
        ``take_over``, which rebuilds the room from the journal.  A task the worker knows nothing of
        (``unknown_room``: nothing journaled) is left alone; one that still fails after
        ``failover_attempts`` is logged."""
        settings = self.settings
        for attempt in range(settings.failover_attempts):
            if attempt:
                await asyncio.sleep(settings.failover_interval)
            if not self._may_act():
                return
            if purpose not in self._registry.schedulers:
                return
            try:
                worker_id = self._place(purpose, task, {}, settings.schedule_reserve_time)
            except SchedulerError as exc:
                log_event(logging.WARNING, "failover_unscheduled", purpose=purpose, task=task, lost=lost,
                          code=exc.code, attempt=attempt + 1)
                continue
            try:
                taken = await self.transport.call(worker_id, "take_over", {"room": task},
                                                  timeout=settings.failover_timeout)
            except RpcRemoteError as exc:
                if exc.code == "unknown_room":
                    log_event(logging.INFO, "failover_nothing_to_move", purpose=purpose, task=task, lost=lost)
                    return
                log_event(logging.WARNING, "failover_refused", purpose=purpose, task=task, worker_id=worker_id,
                          code=exc.code, attempt=attempt + 1)
                continue
            except RpcError as exc:
                log_event(logging.WARNING, "failover_unreachable", purpose=purpose, task=task, worker_id=worker_id,
                          code=exc.code, attempt=attempt + 1)
                continue
            log_event(logging.INFO, "failed_over", purpose=purpose, task=task, lost=lost, worker_id=worker_id,
                      epoch=taken.get("epoch") if isinstance(taken, dict) else None)
            return
        log_event(logging.ERROR, "failover_failed", purpose=purpose, task=task, lost=lost,
                  attempts=settings.failover_attempts)

    async def _publish_exit(self, event: WorkerExit) -> None:
        try:
            async with asyncio.timeout(self.settings.event_publish_timeout):
                await self.transport.publish_event(EXIT_TOPIC, _builtins(event))
        except (RpcError, TimeoutError) as exc:
            log_event(logging.ERROR, "exit_event_lost", worker_id=event.id, purpose=event.purpose, error=str(exc))

    async def watch_transport(self) -> None:
        """Follow the broker link and the workers' departures (:class:`DeathWatch`); :meth:`start`
        does it, a node calls it once its manager is active."""
        self.transport.watch_link(self._watch.link_changed)
        if not self.settings.detect_departures:
            return
        try:
            fast = await self.transport.watch_departures(self._watch.departed)
        except RpcError as exc:
            log_event(logging.ERROR, "departures_unwatched", error=str(exc))
            return
        log_event(logging.INFO, "departures_watched", fast=fast)

    async def _depart(self, worker_id: str) -> None:
        """``worker_id``'s connection closed (see :class:`DeathWatch`): it is removed at once."""
        if worker_id in self._registry.members and self._may_act():
            await self._publish_exit(self._remove(worker_id, "connection_lost"))

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.check_alive_interval)
            try:
                await self._sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("liveness sweep failed")

    async def _sweep(self) -> None:
        if not self._may_act():
            return
        self._announce_service()
        for purpose, scheduler in self._registry.schedulers.items():
            for task in scheduler.expire():
                log_event(logging.DEBUG, "task_expired", purpose=purpose, task=task)
        events = [self._remove(worker_id, "timeout") for worker_id in self._liveness.sweep()]
        for event in events:
            await self._publish_exit(event)
