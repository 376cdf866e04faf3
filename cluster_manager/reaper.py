"""Removing the workers that are gone, and telling the cluster (``exit.quit``).

A worker goes in one of three ways: it quits (the manager's ``quit``), its broker connection
closes (a departure, judged by :class:`~cluster_manager.detection.DeathWatch`), or it stops keeping
alive (the liveness sweep, counted by :class:`~cluster_manager.liveness.LivenessTracker`).
:class:`Reaper` removes it from the registry (its tasks are repealed), hands its journaled rooms to
the :class:`~cluster_manager.failover.Failover` and publishes the fault event :class:`~contracts.cluster.WorkerExit` on ``exit.quit``.
It owns the liveness sweep loop (which also drops lapsed reservations and announces the end of
the freshman window) and the departure watch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from alerts import Fault, FaultReporter
from contracts.cluster import EXIT_TOPIC, WorkerExit
from rpc import RpcError, Transport

from .changes import WorkerRemoved
from .detection import DeathWatch
from .eventlog import log_event, log_exception
from .failover import Failover
from .faults import FaultLog
from .freshman import FreshmanWindow
from .liveness import LivenessTracker
from .lost import LostWorkers
from .messages import to_builtins
from .settings import ClusterManagerSettings
from .tallies import ManagerTallies
from .writer import RegistryWriter

__all__ = ["Reaper"]


class Reaper:
    """Removes workers through ``writer`` and publishes their exits on ``transport``.

    :param liveness: the manager's missed-keepalive counts (the sweep counts, a removal forgets).
    :param failover: gets the tasks of every removed worker.
    :param window: told by every sweep (it logs the end of the freshman window).
    :param may_act: asked before a sweep or a departure acts; ``False`` (a leader that lost its
        lease) skips it.
    :param faults: every removal is recorded there (``worker_lost``, or ``worker_quit``).
    :param lost: a worker removed for any reason but ``quit`` is remembered there.
    :param alerts: told of every worker lost (not quit), for the alert service.
    """

    def __init__(
        self,
        transport: Transport,
        settings: ClusterManagerSettings,
        writer: RegistryWriter,
        *,
        liveness: LivenessTracker,
        failover: Failover,
        window: FreshmanWindow,
        may_act: Callable[[], bool],
        tallies: ManagerTallies,
        faults: FaultLog,
        lost: LostWorkers,
        alerts: FaultReporter | None = None,
    ) -> None:
        self._transport = transport
        self._settings = settings
        self._writer = writer
        self._registry = writer.registry
        self._liveness = liveness
        self._failover = failover
        self._window = window
        self._may_act = may_act
        self._tallies = tallies
        self._faults = faults
        self._lost = lost
        self._alerts = alerts
        self._watch = DeathWatch(
            liveness, member_of=lambda worker_id: self._registry.members.get(worker_id),
            on_dead=self._depart, settle=settings.departure_settle, grace=settings.reconnect_grace,
        )
        self._sweeper: asyncio.Task[None] | None = None
        #: Set by :meth:`close`: a removal then hands no room over.
        self._closed = False

    def start(self) -> None:
        """Start the liveness sweep, every ``check_alive_interval``."""
        self._sweeper = asyncio.create_task(self._sweep_loop(), name=f"cluster-liveness:{self._settings.name}")

    async def close(self) -> None:
        """End the sweep and drop the pending departure verdicts."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            try:
                await self._sweeper
            except asyncio.CancelledError:
                pass
            self._sweeper = None
        await self._watch.close()

    def remove(self, worker_id: str, reason: str) -> WorkerExit:
        """Remove the registered ``worker_id`` (its tasks are repealed and handed to the failover);
        returns the event to :meth:`publish_exit`."""
        member = self._registry.members[worker_id]
        scheduler = self._registry.scheduler_of(worker_id, None)
        last_view = scheduler.worker_view(worker_id) if scheduler is not None else None
        self._liveness.forget(worker_id)
        tasks = self._writer.apply(WorkerRemoved(worker_id, reason))
        self._tallies.removed(reason)
        log_event(
            logging.INFO if reason == "quit" else logging.WARNING,
            "worker_removed", worker_id=worker_id, purpose=member.purpose, reason=reason, tasks_repealed=len(tasks),
        )
        if reason == "quit":
            self._faults.record("worker_quit", severity="info", worker_id=worker_id, purpose=member.purpose,
                                tasks=len(tasks))
        else:
            self._faults.record("worker_lost", severity="error", worker_id=worker_id, purpose=member.purpose,
                                reason=reason, tasks=len(tasks))
            if last_view is not None:
                self._lost.lost(last_view, reason)
        if reason != "quit" and self._alerts is not None:
            moving = self._failover.moves(member.purpose) and tasks
            self._alerts.report(Fault(
                kind="worker_lost", severity="error", subject=worker_id, group=worker_id,
                summary=f"{member.purpose} worker {worker_id} lost ({reason.replace('_', ' ')})"
                        + (f"; handing over {len(tasks)} room(s)" if moving else ""),
                details={"purpose": member.purpose, "reason": reason, "tasks": len(tasks)}))
        if not self._closed:
            self._failover.hand_over(member.purpose, worker_id, tasks)
        return WorkerExit(purpose=member.purpose, id=worker_id, reason=reason)

    async def publish_exit(self, event: WorkerExit) -> None:
        """Publish ``event`` on :data:`EXIT_TOPIC`, waiting at most ``event_publish_timeout``."""
        try:
            async with asyncio.timeout(self._settings.event_publish_timeout):
                await self._transport.publish_event(EXIT_TOPIC, to_builtins(event))
        except (RpcError, TimeoutError) as exc:
            log_event(logging.ERROR, "exit_event_lost", worker_id=event.id, purpose=event.purpose, error=str(exc))

    async def watch_transport(self) -> None:
        """Follow the broker link and the workers' departures (:class:`DeathWatch`)."""
        self._transport.watch_link(self._watch.link_changed)
        if not self._settings.detect_departures:
            return
        try:
            fast = await self._transport.watch_departures(self._watch.departed)
        except RpcError as exc:
            log_event(logging.ERROR, "departures_unwatched", error=str(exc))
            return
        log_event(logging.INFO, "departures_watched", fast=fast)

    async def _depart(self, worker_id: str) -> None:
        """``worker_id``'s connection closed (see :class:`DeathWatch`): it is removed at once."""
        if worker_id in self._registry.members and self._may_act():
            await self.publish_exit(self.remove(worker_id, "connection_lost"))

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.check_alive_interval)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log_exception("liveness_sweep_failed")

    async def sweep(self) -> None:
        """One liveness sweep: drop lapsed reservations, count a missed sweep for every worker and
        remove those with too many (``reason: 'timeout'``)."""
        if not self._may_act():
            return
        self._window.announce(len(self._registry.members))
        for purpose, scheduler in self._registry.schedulers.items():
            for task in scheduler.expire():
                log_event(logging.DEBUG, "task_expired", purpose=purpose, task=task)
        events = [self.remove(worker_id, "timeout") for worker_id in self._liveness.sweep()]
        for event in events:
            await self.publish_exit(event)
