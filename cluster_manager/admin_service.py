"""The admin methods a cluster manager serves (contract: :mod:`contracts.admin`, client
:class:`contracts.admin.AdminClient`).

Each checks the caller's ``admin_key`` and answers from the manager's
:class:`~cluster_manager.admin.Admin`; the arguments arrive converted to the annotated types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts.admin import FaultPage, FaultsLimit, FaultsSince, Overview, Status, TaskView, WorkerView
from contracts.cluster import Id
from rpc import rpc_method, rpc_method_names

if TYPE_CHECKING:
    from .manager import ClusterManager

__all__ = ["AdminService", "ADMIN_METHODS"]


class AdminService:
    """The admin methods of ``manager`` (it owns the state; this only serves)."""

    def __init__(self, manager: ClusterManager) -> None:
        self._manager = manager

    @rpc_method
    async def get_workers(self, purpose: Id | None = None, admin_key: str = "") -> list[WorkerView]:
        """Every worker (of ``purpose``, or of all purposes when ``None``), in join order."""
        return self._manager.admin.get_workers(purpose, admin_key)

    @rpc_method
    async def get_worker(self, worker_id: Id, admin_key: str = "") -> WorkerView:
        """One worker; the same shape for every purpose."""
        return self._manager.admin.get_worker(worker_id, admin_key)

    @rpc_method
    async def get_tasks(self, worker_id: Id, admin_key: str = "") -> list[TaskView]:
        """The tasks mapped to a worker.  A portal's tasks are join-token codes, which would let a
        reader log in with a forged token: they are shown as ``token:<digest>``."""
        return self._manager.admin.get_tasks(worker_id, admin_key)

    @rpc_method
    async def drain(self, worker_id: Id, admin_key: str = "") -> WorkerView:
        """Cordon a worker: it keeps its tasks (and sticky ones) but gets no new task.  A worker whose
        tasks are journaled rooms (``failover_purposes``) is also asked to move them away (``migrate``):
        one by one they are rebuilt on other workers, and the drained process exits when it holds none."""
        return await self._manager.admin.drain(worker_id, admin_key)

    @rpc_method
    async def undrain(self, worker_id: Id, admin_key: str = "") -> WorkerView:
        """Lift :meth:`drain`."""
        return self._manager.admin.undrain(worker_id, admin_key)

    @rpc_method
    async def status(self, admin_key: str = "") -> Status:
        """The manager at a glance: state, freshman window, uptime, workers and tasks per purpose."""
        return self._manager.admin.status(admin_key)

    @rpc_method
    async def faults(self, since: FaultsSince = 0, limit: FaultsLimit | None = None, admin_key: str = "") -> FaultPage:
        """The fault timeline after ``since`` (the ``next`` of the last read), oldest first."""
        return self._manager.admin.faults(since, limit, admin_key)

    @rpc_method
    async def overview(self, admin_key: str = "") -> Overview:
        """What the status page shows; workers lost lately are listed with ``status: 'lost'``."""
        return self._manager.admin.overview(admin_key)


#: The RPC methods meant for operators (the admin CLI and its HTTP relay); each needs ``admin_key``.
ADMIN_METHODS = frozenset(rpc_method_names(AdminService))
