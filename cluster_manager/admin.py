"""The operators' side of a cluster manager: the admin methods' checks, views, ``drain`` and the
status page's ``overview`` and ``faults``.

Every admin method (:data:`~cluster_manager.admin_service.ADMIN_METHODS`) needs an admin key, checked here in constant time
against every configured key (:meth:`Admin.authorize`); a refusal is logged.  The views read the
registry, the liveness counts and the freshman window; ``drain``/``undrain`` change the registry
through the :class:`~cluster_manager.writer.RegistryWriter`.
:class:`~cluster_manager.admin_service.AdminService` serves them (contract: :mod:`contracts.admin`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import msgspec

from contracts.controller import ControllerClient
from credentials import AdminKeys
from contracts.admin import (
    BoardWorker,
    FaultPage,
    ManagerView,
    Overview,
    RoomPlacement,
    Status,
    TaskCounts,
    TaskView,
    WorkerView,
)
from contracts.cluster import IN_SERVICE
from rpc import RpcError, Transport

from .changes import WorkerDrained
from .errors import unauthorized
from .eventlog import log_event
from .freshman import FreshmanWindow
from .liveness import LivenessTracker
from .faults import FaultLog
from .lost import LostWorkers
from .settings import ClusterManagerSettings
from .writer import RegistryWriter

__all__ = ["Admin", "task_digest"]

#: Purposes whose task names are secrets (a portal task is a join token's code): admin answers
#: show a digest instead.
_SECRET_TASK_PURPOSES = frozenset({"portal"})


def task_digest(task: str) -> str:
    """How admin answers show a secret task (a join token's code): ``token:`` + 16 hex digits of its SHA-256."""
    return "token:" + hashlib.sha256(task.encode()).hexdigest()[:16]


class Admin:
    """Answers the admin methods of the manager serving ``settings.name`` on ``transport``.

    :param keys: the keys an admin call must carry as ``admin_key``; with none, every call is refused.
    :param liveness: read for each worker's ``missed_keepalives``.
    :param window: read for ``status``.
    :param epoch: the manager's leader epoch (``None`` without replication).
    :param clock: seconds, monotonic (a worker's ``joined_for``).
    :param faults: the fault timeline (``faults``; ``drain``/``undrain`` are recorded in it).
    :param lost: the workers lost lately (``overview`` lists them).
    :param standbys: the standby managers heard from lately (``overview``).
    """

    def __init__(
        self,
        transport: Transport,
        settings: ClusterManagerSettings,
        writer: RegistryWriter,
        *,
        keys: AdminKeys,
        liveness: LivenessTracker,
        window: FreshmanWindow,
        epoch: Callable[[], int | None],
        clock: Callable[[], float],
        faults: FaultLog,
        lost: LostWorkers,
        standbys: Callable[[], list[ManagerView]] = list,
    ) -> None:
        self._transport = transport
        self._settings = settings
        self._writer = writer
        self._registry = writer.registry
        self._keys = keys
        self._liveness = liveness
        self._window = window
        self._epoch = epoch
        self._clock = clock
        self._faults = faults
        self._lost = lost
        self._standbys = standbys

    def authorize(self, method: str, admin_key: object) -> None:
        """Raise ``unauthorized`` (and log it) unless ``admin_key`` is one of the keys."""
        if not self._keys.accepts(admin_key):
            log_event(logging.WARNING, "admin_refused", method=method,
                      reason="missing_key" if not admin_key else "wrong_key")
            raise unauthorized()

    def get_workers(self, purpose: str | None, admin_key: str) -> list[WorkerView]:
        self.authorize("get_workers", admin_key)
        return [
            self._view(view)
            for name, scheduler in self._registry.schedulers.items()
            if purpose is None or name == purpose
            for view in scheduler.workers_view()
        ]

    def get_worker(self, worker_id: str, admin_key: str) -> WorkerView:
        self.authorize("get_worker", admin_key)
        return self._view(self._writer.scheduler_of(worker_id).worker_view(worker_id))

    def get_tasks(self, worker_id: str, admin_key: str) -> list[TaskView]:
        """A portal's tasks (join-token codes) are shown as :func:`task_digest`."""
        self.authorize("get_tasks", admin_key)
        tasks = self._writer.scheduler_of(worker_id).tasks_of(worker_id)
        views = [msgspec.convert(task, TaskView) for task in tasks]
        if self._registry.members[worker_id].purpose in _SECRET_TASK_PURPOSES:
            views = [msgspec.structs.replace(view, task=task_digest(view.task)) for view in views]
        return views

    async def drain(self, worker_id: str, admin_key: str) -> WorkerView:
        """Drain; a worker of ``failover_purposes`` is also asked to ``migrate`` its rooms."""
        self.authorize("drain", admin_key)
        view = self._set_drained("drain", worker_id, True)
        member = self._registry.members.get(worker_id)
        if member is not None and member.purpose in self._settings.failover_purposes:
            # Its rooms move away one by one (live migration); it checks the operator's key itself.
            try:
                await ControllerClient(self._transport, worker_id).cast_migrate(admin_key=admin_key)
            except RpcError as exc:
                log_event(logging.WARNING, "migrate_not_asked", worker_id=worker_id, error=str(exc))
        return view

    def undrain(self, worker_id: str, admin_key: str) -> WorkerView:
        self.authorize("undrain", admin_key)
        return self._set_drained("undrain", worker_id, False)

    def faults(self, since: int, limit: int | None, admin_key: str) -> FaultPage:
        self.authorize("faults", admin_key)
        return self._faults.since(since, limit)

    def overview(self, admin_key: str) -> Overview:
        """What the status page shows: the manager, its standbys, every worker (the lost ones too)
        and the rooms (tasks of ``failover_purposes``) with their workers."""
        self.authorize("overview", admin_key)
        workers: list[BoardWorker] = []
        rooms: list[RoomPlacement] = []
        for purpose, scheduler in self._registry.schedulers.items():
            for view in scheduler.workers_view():
                workers.append(self._board_worker(view))
                if purpose in self._settings.failover_purposes:
                    rooms.extend(
                        RoomPlacement(room=task["task"], worker=view["id"], purpose=purpose, state=task["state"])
                        for task in scheduler.tasks_of(view["id"])
                    )
        for view, reason, lost_for in self._lost.views():
            workers.append(self._lost_worker(view, reason, lost_for))
        node = self._transport.node_id
        managers = [ManagerView(node=node, role="active", epoch=self._epoch()), *self._standbys()]
        return Overview(status=self._status(), managers=managers, workers=workers, rooms=rooms)

    def status(self, admin_key: str) -> Status:
        self.authorize("status", admin_key)
        return self._status()

    def _status(self) -> Status:
        window = self._window
        state = window.state
        workers: dict[str, int] = {}
        tasks: dict[str, TaskCounts] = {}
        for purpose, scheduler in self._registry.schedulers.items():
            views = scheduler.workers_view()
            workers[purpose] = len(views)
            tasks[purpose] = TaskCounts(
                reserved=sum(v["reserved"] for v in views), executing=sum(v["executing"] for v in views)
            )
        return Status(
            name=self._settings.name,
            state=state,  # type: ignore[arg-type]
            freshman=state != IN_SERVICE,
            ready_in=window.ready_in(),
            uptime=window.uptime(),
            workers=workers,
            tasks=tasks,
            node=self._transport.node_id,
            epoch=self._epoch(),
        )

    def _set_drained(self, method: str, worker_id: str, drained: bool) -> WorkerView:
        scheduler = self._writer.scheduler_of(worker_id)
        self._writer.commit(method, WorkerDrained(worker_id, drained))
        event = "worker_drained" if drained else "worker_undrained"
        log_event(logging.INFO, event, worker_id=worker_id)
        self._faults.record(event, severity="info", worker_id=worker_id,
                            purpose=self._registry.members[worker_id].purpose)
        return self._view(scheduler.worker_view(worker_id))

    def _board_worker(self, view: dict[str, Any]) -> BoardWorker:
        worker = self._view(view)
        return BoardWorker(**msgspec.structs.asdict(worker), status="draining" if worker.drained else "in_service",
                           keepalive_age=self._liveness.keepalive_age(worker.id))

    @staticmethod
    def _lost_worker(view: dict[str, Any], reason: str, lost_for: float) -> BoardWorker:
        return BoardWorker(
            id=view["id"], purpose=view["purpose"], state=view["state"], load=view["load"],
            effective_load=view["effective_load"], max_load=view["max_load"], drained=view["drained"],
            schedulable=False, reserved=0, executing=0, missed_keepalives=0, joined_for=0.0, info=view["info"],
            status="lost", lost_for=lost_for, lost_reason=reason,
        )

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
