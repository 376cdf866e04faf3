"""Handing a lost worker's journaled rooms to live workers (``failover_purposes``, conference controllers).

When a worker of such a purpose is removed (quit, connection lost, timed out), :class:`Failover`
schedules each of its rooms on a live worker of its purpose (the room is then sticky there) and
calls that worker's ``take_over``, which rebuilds the room from the journal.  It owns the hand-over
tasks in progress; the manager's :meth:`~cluster_manager.manager.ClusterManager.stop` ends them.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable

from alerts import Fault, FaultReporter
from background import Background
from contracts.controller import ControllerClient
from rpc import RpcError, RpcRemoteError, Transport
from scheduler import SchedulerError

from .changes import TaskUnscheduled
from .eventlog import events, log_event
from .faults import FaultLog
from .settings import ClusterManagerSettings
from .tallies import ManagerTallies
from .writer import RegistryWriter

#: A controller's refusal of a room because it is drained or stopping (it would not keep it).
_DRAINING = "controller_draining"

__all__ = ["Failover"]


class Failover:
    """Hands rooms over through ``transport``, placing them with ``writer``.

    :param may_act: asked before each attempt; ``False`` (a leader that lost its lease) ends the
        hand-over of that room.
    :param faults: each room's outcome is recorded there (``failed_over``, ``failover_failed``).
    :param alerts: told the outcome of each lost worker's hand-over (rooms moved / failed), once.
    """

    def __init__(
        self,
        transport: Transport,
        settings: ClusterManagerSettings,
        writer: RegistryWriter,
        *,
        may_act: Callable[[], bool],
        tallies: ManagerTallies,
        faults: FaultLog,
        alerts: FaultReporter | None = None,
    ) -> None:
        self._transport = transport
        self._settings = settings
        self._writer = writer
        self._may_act = may_act
        self._tallies = tallies
        self._faults = faults
        self._alerts = alerts
        #: Hand-overs in progress (ended by :meth:`close`).
        self._running = Background(events)

    def moves(self, purpose: str) -> bool:
        """Whether the rooms of a lost worker of ``purpose`` are handed over."""
        return purpose in self._settings.failover_purposes

    def hand_over(self, purpose: str, lost: str, tasks: list[str]) -> None:
        """The worker ``lost`` of ``purpose`` was removed with ``tasks``: hand them over in a task of
        this failover when ``purpose`` is one of ``failover_purposes`` (else nothing)."""
        if not tasks or purpose not in self._settings.failover_purposes:
            return
        self._running.spawn(self._fail_over(purpose, lost, list(tasks)), f"failover:{lost}")

    async def close(self) -> None:
        """End every hand-over in progress."""
        await self._running.stop()

    async def _fail_over(self, purpose: str, lost: str, tasks: list[str]) -> None:
        """Hand each task of a lost worker to a live worker of its purpose, ``failover_concurrency`` of
        them at a time (a room's clients wait for its own hand-over only)."""
        pending = iter(tasks)
        outcomes: Counter[str] = Counter()

        async def hand_over() -> None:
            for task in pending:
                outcomes[await self._fail_over_task(purpose, lost, task)] += 1

        await asyncio.gather(*(hand_over() for _ in range(min(len(tasks), self._settings.failover_concurrency))))
        if self._alerts is not None and (outcomes["moved"] or outcomes["failed"]):
            self._alerts.report(Fault(
                kind="failover", severity="error" if outcomes["failed"] else "warning", subject=lost, group=lost,
                summary=f"failover of {lost}: {outcomes['moved']} room(s) moved, {outcomes['failed']} failed",
                details={"moved": outcomes["moved"], "failed": outcomes["failed"], "purpose": purpose}))

    async def _fail_over_task(self, purpose: str, lost: str, task: str) -> str:
        """Schedule one task of the lost worker (it is then sticky there) and call that worker's
        ``take_over``, which rebuilds the room from the journal.  A task the worker knows nothing of
        (``unknown_room``: nothing journaled) is left alone; one that still fails after
        ``failover_attempts`` is logged."""
        settings = self._settings
        for attempt in range(settings.failover_attempts):
            if attempt:
                await asyncio.sleep(settings.failover_interval)
            if not self._may_act():
                return "stopped"
            if purpose not in self._writer.registry.schedulers:
                return "stopped"
            try:
                worker_id = self._writer.place(purpose, task, {}, settings.schedule_reserve_time)
            except SchedulerError as exc:
                log_event(logging.WARNING, "failover_unscheduled", purpose=purpose, task=task, lost=lost,
                          code=exc.code, attempt=attempt + 1)
                continue
            try:
                taken = await ControllerClient(self._transport, worker_id).take_over(
                    room=task, timeout=settings.failover_timeout)
            except RpcRemoteError as exc:
                if exc.code == "unknown_room":
                    log_event(logging.INFO, "failover_nothing_to_move", purpose=purpose, task=task, lost=lost)
                    return "nothing"
                log_event(logging.WARNING, "failover_refused", purpose=purpose, task=task, worker_id=worker_id,
                          code=exc.code, attempt=attempt + 1)
                if exc.code == _DRAINING:  # sticky no more: the next attempt places it elsewhere
                    try:
                        self._writer.apply(TaskUnscheduled(worker_id, task))
                    except SchedulerError:  # that worker is gone meanwhile: nothing to repeal
                        pass
                continue
            except RpcError as exc:
                log_event(logging.WARNING, "failover_unreachable", purpose=purpose, task=task, worker_id=worker_id,
                          code=exc.code, attempt=attempt + 1)
                continue
            log_event(logging.INFO, "failed_over", purpose=purpose, task=task, lost=lost, worker_id=worker_id,
                      epoch=taken.epoch)
            self._tallies.failovers["handed_over"] += 1
            self._faults.record("failed_over", severity="info", worker_id=worker_id, purpose=purpose, room=task,
                                lost=lost)
            return "moved"
        self._tallies.failovers["failed"] += 1
        self._faults.record("failover_failed", severity="error", worker_id=lost, purpose=purpose, room=task,
                            attempts=settings.failover_attempts)
        log_event(logging.ERROR, "failover_failed", purpose=purpose, task=task, lost=lost,
                  attempts=settings.failover_attempts)
        return "failed"
