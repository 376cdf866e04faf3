"""What a cluster manager serves: the worker-facing methods (:class:`ClusterService`, contract
:mod:`contracts.cluster`) and the admin methods (:class:`~cluster_manager.admin_service.AdminService`,
contract :mod:`contracts.admin`), together :class:`ManagerService`.

The arguments arrive converted to the annotated contract types (``rpc.base.dispatch`` answers
``bad_arguments`` otherwise); each method delegates to the :class:`~cluster_manager.manager.ClusterManager`,
the state's owner.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from contracts.cluster import Id, Load, PortalAddress, PortalLimit, Readiness, ReserveTime, Scheduled, WorkerInfo, WorkerState
from rpc import rpc_method

from .admin_service import AdminService
from .errors import bad_arguments

if TYPE_CHECKING:
    from .manager import ClusterManager

__all__ = ["ClusterService", "ManagerService"]


class ClusterService:
    """The worker-facing methods of ``manager`` (client: :class:`contracts.cluster.ClusterClient`)."""

    def __init__(self, manager: ClusterManager) -> None:
        self._manager = manager

    # -- membership

    @rpc_method
    async def join(self, purpose: Id, worker_id: Id, info: dict[str, Any]) -> str:
        """Register a worker; the manager's state (``initializing`` or ``in-service``).  ``info`` is
        kept verbatim; what the scheduler reads of it must fit :class:`~contracts.cluster.WorkerInfo`."""
        try:
            msgspec.convert(info, WorkerInfo)
        except msgspec.ValidationError as exc:
            raise bad_arguments("join", f"info: {exc}") from None
        return await self._manager.join(purpose, worker_id, info)

    @rpc_method
    async def quit(self, worker_id: Id) -> None:
        """The worker leaves: its tasks are repealed and ``exit.quit`` is published."""
        await self._manager.quit(worker_id)

    @rpc_method
    async def keep_alive(self, worker_id: Id) -> str:
        """``ok`` for a registered worker, ``whoareyou`` otherwise."""
        return self._manager.keep_alive(worker_id)

    @rpc_method
    async def report_load(self, worker_id: Id, load: Load) -> None:
        self._manager.report_load(worker_id, load)

    @rpc_method
    async def report_state(self, worker_id: Id, state: WorkerState) -> None:
        self._manager.report_state(worker_id, state)

    # -- tasks

    @rpc_method
    async def pick_up_tasks(self, worker_id: Id, tasks: list[Id]) -> None:
        """The worker executes ``tasks`` (also how a rejoining worker re-reports them)."""
        self._manager.pick_up_tasks(worker_id, tasks)

    @rpc_method
    async def lay_down_task(self, worker_id: Id, task: Id) -> None:
        """The worker stopped executing ``task``; it lingers as a reservation for its reserve time."""
        self._manager.lay_down_task(worker_id, task)

    @rpc_method
    async def unschedule(self, worker_id: Id, task: Id, purpose: Id | None = None) -> None:
        """Repeal ``task`` if it is mapped to ``worker_id``."""
        self._manager.unschedule(worker_id, task, purpose)

    @rpc_method
    async def schedule(
        self, purpose: Id, task: Id, preference: dict[str, Any] | None = None, reserve_time: ReserveTime | None = None,
    ) -> Scheduled:
        """Reserve ``task`` on a worker of ``purpose`` (sticky: a mapped task goes back to its worker)."""
        return self._manager.schedule(purpose, task, preference, reserve_time)

    @rpc_method
    async def get_scheduled(self, purpose: Id, task: Id) -> Scheduled | None:
        """The worker ``task`` is reserved or executing on, or ``None``."""
        return self._manager.get_scheduled(purpose, task)

    @rpc_method
    async def portals(
        self, preference: dict[str, Any] | None = None, exclude: list[Id] | None = None, limit: PortalLimit = 3,
    ) -> list[PortalAddress]:
        """Up to ``limit`` live portals a client of ``preference`` may relog in at, best first.  No
        admin key: it names only the public addresses portals put in tokens."""
        return self._manager.portals(preference, exclude or [], limit)

    @rpc_method
    async def claim(self, purpose: Id, task: Id, worker_id: Id) -> None:
        """Turn the reservation of ``task`` on ``worker_id`` into a running task, exactly once."""
        await self._manager.claim(purpose, task, worker_id)

    @rpc_method
    async def readiness(self, purpose: Id) -> Readiness:
        """Whether tasks of ``purpose`` can be placed now (health checks; no admin key)."""
        return self._manager.readiness(purpose)

    # -- between managers

    @rpc_method
    async def replica_snapshot(self, admin_key: str = "") -> dict[str, Any]:
        """``{epoch, seq, snapshot}``: where a standby starts (an admin key, as standbys present theirs)."""
        return self._manager.replica_snapshot(admin_key)


class ManagerService(ClusterService, AdminService):
    """Everything a cluster manager serves on its name: :class:`ClusterService` and :class:`AdminService`."""
