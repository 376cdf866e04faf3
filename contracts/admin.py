"""The cluster manager's admin RPC: what operators call (the admin CLI over a broker, the dashboard,
the ``/admin/rpc`` relay) and :class:`AdminClient`, the only place naming those methods.

Every method carries ``admin_key`` (checked by the manager against its admin keys; a missing or
wrong one gets ``unauthorized``).  The manager serves them as ``cluster_manager.admin_service.AdminService``
on the cluster's service name, next to the worker-facing methods of :mod:`contracts.cluster`.
docs/interfaces.md describes each method.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

import msgspec


from .cluster import Id

__all__ = [
    "FaultsSince",
    "FaultsLimit",
    "Severity",
    "WorkerView",
    "TaskView",
    "TaskCounts",
    "Status",
    "BoardWorker",
    "ManagerView",
    "RoomPlacement",
    "Overview",
    "Fault",
    "FaultPage",
    "AdminCaller",
    "AdminClient",
    "DeadLettersClient",
]

#: ``faults``' ``since``: the ``next`` of the last page read (0: from the oldest kept).
FaultsSince = Annotated[int, msgspec.Meta(ge=0)]
#: ``faults``' ``limit``: at most this many faults in one page.
FaultsLimit = Annotated[int, msgspec.Meta(ge=1, le=10_000)]
#: How bad a fault is.
Severity = Literal["info", "warning", "error"]


class WorkerView(msgspec.Struct):
    """One worker as the admin sees it; the same shape for every purpose."""

    id: str
    purpose: str
    state: str
    load: float
    effective_load: float
    max_load: float
    drained: bool
    schedulable: bool
    reserved: int
    executing: int
    #: Liveness sweeps missed since the last keepalive.
    missed_keepalives: int
    #: Seconds since the worker (re)joined.
    joined_for: float
    info: dict[str, Any]


class TaskView(msgspec.Struct):
    """One task of a worker; ``expires_in`` (seconds) is ``None`` while it executes."""

    task: str
    worker: str
    state: Literal["reserved", "executing"]
    expires_in: float | None


class TaskCounts(msgspec.Struct):
    reserved: int = 0
    executing: int = 0


class Status(msgspec.Struct):
    """The manager at a glance."""

    name: str
    state: Literal["initializing", "in-service"]
    #: True while the not-ready window after a start with no state lasts.
    freshman: bool
    #: Seconds left in that window (0 when in service).
    ready_in: float
    uptime: float
    workers: dict[str, int]
    tasks: dict[str, TaskCounts]
    #: The process that answered: with standbys, the active one.
    node: str = ""
    #: Its leader epoch (with standbys; ``None`` for a manager that publishes no changes).
    epoch: int | None = None


class BoardWorker(WorkerView, kw_only=True):
    """A worker as the status page shows it: a live one, or one lost a short while ago."""

    #: ``in_service``, ``draining`` or ``lost``.
    status: Literal["in_service", "draining", "lost"]
    #: Seconds since its last keepalive (or join); ``None`` once lost.
    keepalive_age: float | None = None
    #: Seconds since it was lost, and why (``timeout``, ``connection_lost``, ``quit``).
    lost_for: float | None = None
    lost_reason: str | None = None


class ManagerView(msgspec.Struct, kw_only=True):
    """A cluster-manager process: the ``active`` one (which answers) or a ``standby``."""

    node: str
    role: Literal["active", "standby"]
    epoch: int | None = None
    #: A standby: whether it holds a copy of the registry, and seconds since it last said so.
    synced: bool | None = None
    seen_ago: float | None = None


class RoomPlacement(msgspec.Struct, kw_only=True):
    """A task of a ``failover_purposes`` worker (a room) and where it is placed."""

    room: str
    worker: str
    purpose: str
    state: Literal["reserved", "executing"]


class Overview(msgspec.Struct, kw_only=True):
    """The answer of the admin method ``overview``: what the status page shows of the cluster."""

    status: Status
    managers: list[ManagerView]
    workers: list[BoardWorker]
    rooms: list[RoomPlacement]


class Fault(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the timeline.

    :param seq: its place in the log (1, 2, …), the only order there is.
    :param kind: what happened: ``worker_lost``, ``worker_joined``, ``worker_rejoined``,
        ``worker_drained``, ``worker_undrained``, ``manager_active``, ``failed_over``,
        ``failover_failed``, or a kind another recorder chose (``alert``).
    :param at: wall-clock seconds since the epoch when it was recorded (for display, not order).
    """

    seq: int
    kind: str
    severity: Severity
    at: float
    worker_id: str | None = None
    purpose: str | None = None
    detail: dict[str, Any] = {}


class FaultPage(msgspec.Struct, frozen=True, kw_only=True):
    """An answer of ``faults(since)``: the faults after ``since``, oldest first, and the ``since`` to
    ask with next.  ``log`` names the log: another one (the active manager changed) numbers from 1
    again, so a reader that sees a new ``log`` reads it from 0."""

    faults: list[Fault]
    next: int
    log: str


class AdminCaller(Protocol):
    """What :class:`AdminClient` calls through: a :class:`~rpc.base.Transport`, or anything that makes
    the same call another way (the admin CLI's relay through ``POST /admin/rpc``)."""

    async def call(self, target: str, method: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any: ...


class _KeyedClient:
    """Calls on ``target`` through ``transport`` (a :class:`~rpc.base.Transport` or another
    :class:`AdminCaller`), each with ``admin_key``; ``timeout`` (seconds, default: the transport's
    call timeout) bounds each wait."""

    def __init__(self, transport: AdminCaller, target: str, *, admin_key: str,
                 timeout: float | None = None) -> None:
        self._transport = transport
        self._target = target
        self._key = admin_key
        self._timeout = timeout

    async def _call(self, method: str, args: dict[str, Any]) -> Any:
        return await self._transport.call(self._target, method, {**args, "admin_key": self._key},
                                          timeout=self._timeout)


class AdminClient(_KeyedClient):
    """Calls the admin methods of the cluster manager serving ``target``, each with ``admin_key``."""

    async def get_workers(self, *, purpose: Id | None = None) -> list[WorkerView]:
        """Every worker (of ``purpose``, or of all purposes), in join order."""
        args: dict[str, Any] = {} if purpose is None else {"purpose": purpose}
        return msgspec.convert(await self._call("get_workers", args), list[WorkerView])

    async def get_worker(self, *, worker_id: Id) -> WorkerView:
        return msgspec.convert(await self._call("get_worker", {"worker_id": worker_id}), WorkerView)

    async def get_tasks(self, *, worker_id: Id) -> list[TaskView]:
        """The tasks mapped to a worker (a portal's shown as a digest)."""
        return msgspec.convert(await self._call("get_tasks", {"worker_id": worker_id}), list[TaskView])

    async def drain(self, *, worker_id: Id) -> WorkerView:
        """Cordon a worker (a controller also moves its rooms away)."""
        return msgspec.convert(await self._call("drain", {"worker_id": worker_id}), WorkerView)

    async def undrain(self, *, worker_id: Id) -> WorkerView:
        return msgspec.convert(await self._call("undrain", {"worker_id": worker_id}), WorkerView)

    async def status(self) -> Status:
        return msgspec.convert(await self._call("status", {}), Status)

    async def faults(self, *, since: FaultsSince = 0, limit: FaultsLimit | None = None) -> FaultPage:
        """The fault timeline after ``since``, oldest first."""
        args: dict[str, Any] = {"since": since}
        if limit is not None:
            args["limit"] = limit
        return msgspec.convert(await self._call("faults", args), FaultPage)

    async def overview(self) -> Overview:
        """What the status page shows: the manager, its standbys, the workers and the rooms."""
        return msgspec.convert(await self._call("overview", {}), Overview)


class DeadLettersClient(_KeyedClient):
    """Calls the dead-letter methods of a cluster's alert service ``target`` (``<cluster>.alerts``,
    served by ``alerts.service.AlertService``), each with ``admin_key``: what still failed after its
    retries (alerts a sink did not take, RPCs a component gave up on)."""

    async def dead_letters_list(self) -> list[dict[str, Any]]:
        """A summary of each dead letter."""
        return msgspec.convert(await self._call("dead_letters_list", {}), list[dict[str, Any]])

    async def dead_letters_show(self, *, letter_id: str) -> dict[str, Any]:
        """One dead letter with its payload."""
        return msgspec.convert(await self._call("dead_letters_show", {"letter_id": letter_id}), dict[str, Any])

    async def dead_letters_retry(self, *, letter_id: str) -> dict[str, Any]:
        """Deliver it once more; ``{id, delivered}``, removed on success."""
        return msgspec.convert(await self._call("dead_letters_retry", {"letter_id": letter_id}), dict[str, Any])

    async def dead_letters_purge(self) -> dict[str, Any]:
        """Drop every dead letter; ``{purged}``."""
        return msgspec.convert(await self._call("dead_letters_purge", {}), dict[str, Any])
