"""The cluster manager's worker-facing RPC: its argument types, results, answers, the ``exit.quit``
fault event, how a worker id is made, and :class:`ClusterClient`, the only place naming its methods.

The manager serves it as ``cluster_manager.service.ClusterService`` (on the cluster's service name,
with the admin methods of :mod:`contracts.admin`); every worker (portal, controller, media agent)
calls it through :class:`ClusterClient`, as do the token API (placement, readiness) and a standby
manager (``replica_snapshot``).  docs/interfaces.md describes each method.
"""

from __future__ import annotations

import socket
import uuid
from typing import Annotated, Any, Literal

import msgspec

from .client import ServiceClient

__all__ = [
    "Id",
    "Load",
    "ReserveTime",
    "PortalLimit",
    "WorkerState",
    "WorkerInfo",
    "Scheduled",
    "PortalAddress",
    "Readiness",
    "WorkerExit",
    "EXIT_TOPIC",
    "INITIALIZING",
    "IN_SERVICE",
    "KEEPALIVE_OK",
    "KEEPALIVE_WHOAREYOU",
    "new_worker_id",
    "ClusterClient",
]

#: A worker id, task id or purpose: a non-empty string of reasonable length.
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
#: A worker's load (nominally 0..1).
Load = Annotated[float, msgspec.Meta(ge=0)]
#: Seconds a reservation lasts.
ReserveTime = Annotated[float, msgspec.Meta(gt=0)]
#: How many portals ``portals`` answers at most.
PortalLimit = Annotated[int, msgspec.Meta(ge=0, le=16)]
#: A worker's state as ``report_state`` takes it: a name or OWT's number (only ``available``/2 takes tasks).
WorkerState = Id | Literal[0, 1, 2]

#: The manager's state, as ``join`` answers it: the freshman window after a start with no state ...
INITIALIZING = "initializing"
#: ... or serving (the worker's tasks were forgotten on a rejoin).
IN_SERVICE = "in-service"
#: ``keep_alive``'s answers: the worker is registered ...
KEEPALIVE_OK = "ok"
#: ... or unknown to the manager (it should join again).
KEEPALIVE_WHOAREYOU = "whoareyou"

#: The fault-event topic a manager publishes :class:`WorkerExit` on.
EXIT_TOPIC = "exit.quit"

_Positive = Annotated[float, msgspec.Meta(gt=0)]


class _Capacity(msgspec.Struct):
    """The parts of ``info.capacity`` the ISP/region matcher reads (other keys pass through)."""

    isps: list[str] = []
    regions: list[str] = []


class WorkerInfo(msgspec.Struct):
    """What a worker may declare in ``join``'s ``info``; unknown keys are allowed and kept verbatim
    (``join`` takes ``info`` as a dict and checks it against this)."""

    capacity: _Capacity = msgspec.field(default_factory=_Capacity)
    hostname: str | None = None
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] | None = None
    via_host: str | None = None
    secure: bool | None = None
    max_load: _Positive | None = None
    maxLoad: _Positive | None = None
    max_tasks: Annotated[int, msgspec.Meta(gt=0)] | None = None


class Scheduled(msgspec.Struct):
    """Where a task goes (``schedule``, ``get_scheduled``): the worker id and the info it joined with, verbatim."""

    id: str
    info: dict[str, Any]


class PortalAddress(msgspec.Struct):
    """Where clients reach a portal (``portals``): ``host`` (``hostname:port``) and whether over TLS."""

    id: str
    host: str
    secure: bool


class Readiness(msgspec.Struct):
    """``readiness``: whether tasks of a purpose can be placed now (nothing in it names a worker or a task)."""

    state: str
    #: Seconds left of the freshman window (0 when in service).
    ready_in: float
    #: How many workers of the purpose take new tasks.
    schedulable: int


class WorkerExit(msgspec.Struct):
    """The ``exit.quit`` fault event (OWT's ``{purpose, id, type}`` plus a reason): a worker left the
    cluster, its tasks are repealed.  Published by the manager; portals and controllers subscribe."""

    purpose: str
    id: str
    type: str = "worker"
    #: ``quit`` (the worker said so), ``connection_lost`` (its broker connection closed) or
    #: ``timeout`` (it missed too many liveness sweeps).
    reason: str = "quit"


def new_worker_id(purpose: str) -> str:
    """A fresh id for a worker (and its transport node) of ``purpose``: ``<purpose>-<12 hex>@<host>``."""
    return f"{purpose}-{uuid.uuid4().hex[:12]}@{socket.gethostname()}"


class ClusterClient(ServiceClient):
    """Calls the cluster manager serving ``target`` over ``transport``.

    A method's keyword arguments are the served method's parameters; ``timeout`` (seconds, default:
    the transport's call timeout) bounds the wait for the answer, and ``wait=False`` sends a report
    without waiting for (or getting) one.
    """

    async def _send(self, method: str, args: dict[str, Any], wait: bool, timeout: float | None) -> None:
        if wait:
            await self._transport.call(self._target, method, args, timeout=timeout)
        else:
            await self._transport.cast(self._target, method, args)

    # -- membership

    async def join(self, *, purpose: Id, worker_id: Id, info: dict[str, Any],
                   timeout: float | None = None) -> str:
        """Register a worker; the manager's state (:data:`INITIALIZING` or :data:`IN_SERVICE`)."""
        args = {"purpose": purpose, "worker_id": worker_id, "info": info}
        return msgspec.convert(await self._transport.call(self._target, "join", args, timeout=timeout), str)

    async def quit(self, *, worker_id: Id, wait: bool = True, timeout: float | None = None) -> None:
        """The worker leaves (``exit.quit`` is published)."""
        await self._send("quit", {"worker_id": worker_id}, wait, timeout)

    async def keep_alive(self, *, worker_id: Id, timeout: float | None = None) -> str:
        """:data:`KEEPALIVE_OK` or :data:`KEEPALIVE_WHOAREYOU`."""
        answer = await self._transport.call(self._target, "keep_alive", {"worker_id": worker_id}, timeout=timeout)
        return msgspec.convert(answer, str)

    async def report_load(self, *, worker_id: Id, load: Load, wait: bool = True,
                          timeout: float | None = None) -> None:
        await self._send("report_load", {"worker_id": worker_id, "load": load}, wait, timeout)

    async def report_state(self, *, worker_id: Id, state: WorkerState, wait: bool = True,
                           timeout: float | None = None) -> None:
        await self._send("report_state", {"worker_id": worker_id, "state": state}, wait, timeout)

    # -- tasks

    async def pick_up_tasks(self, *, worker_id: Id, tasks: list[Id], wait: bool = True,
                            timeout: float | None = None) -> None:
        await self._send("pick_up_tasks", {"worker_id": worker_id, "tasks": tasks}, wait, timeout)

    async def lay_down_task(self, *, worker_id: Id, task: Id, wait: bool = True,
                            timeout: float | None = None) -> None:
        await self._send("lay_down_task", {"worker_id": worker_id, "task": task}, wait, timeout)

    async def unschedule(self, *, worker_id: Id, task: Id, purpose: Id | None = None, wait: bool = True,
                         timeout: float | None = None) -> None:
        args: dict[str, Any] = {"worker_id": worker_id, "task": task}
        if purpose is not None:
            args["purpose"] = purpose
        await self._send("unschedule", args, wait, timeout)

    async def schedule(self, *, purpose: Id, task: Id, preference: dict[str, Any] | None = None,
                       reserve_time: ReserveTime | None = None, timeout: float | None = None) -> Scheduled:
        """Reserve ``task`` on a worker of ``purpose``."""
        args: dict[str, Any] = {"purpose": purpose, "task": task}
        if preference is not None:
            args["preference"] = preference
        if reserve_time is not None:
            args["reserve_time"] = reserve_time
        return msgspec.convert(await self._transport.call(self._target, "schedule", args, timeout=timeout), Scheduled)

    async def get_scheduled(self, *, purpose: Id, task: Id, timeout: float | None = None) -> Scheduled | None:
        """Where ``task`` is reserved or executing, or ``None``."""
        answer = await self._transport.call(self._target, "get_scheduled", {"purpose": purpose, "task": task},
                                            timeout=timeout)
        return msgspec.convert(answer, Scheduled | None)

    async def claim(self, *, purpose: Id, task: Id, worker_id: Id, timeout: float | None = None) -> None:
        """Turn the reservation of ``task`` on ``worker_id`` into a running task, exactly once."""
        await self._transport.call(self._target, "claim", {"purpose": purpose, "task": task, "worker_id": worker_id},
                                   timeout=timeout)

    async def portals(self, *, preference: dict[str, Any] | None = None, exclude: list[Id] | None = None,
                      limit: PortalLimit = 3, timeout: float | None = None) -> list[PortalAddress]:
        """Up to ``limit`` live portals a client of ``preference`` may relog in at, best first."""
        args: dict[str, Any] = {"preference": preference, "exclude": exclude or [], "limit": limit}
        answer = await self._transport.call(self._target, "portals", args, timeout=timeout)
        return msgspec.convert(answer, list[PortalAddress])

    async def readiness(self, *, purpose: Id, timeout: float | None = None) -> Readiness:
        answer = await self._transport.call(self._target, "readiness", {"purpose": purpose}, timeout=timeout)
        return msgspec.convert(answer, Readiness)

    # -- between managers

    async def replica_snapshot(self, *, admin_key: str = "", timeout: float | None = None) -> dict[str, Any]:
        """``{epoch, seq, snapshot}``: where a standby starts (see ``cluster_manager.replication``)."""
        answer = await self._transport.call(self._target, "replica_snapshot", {"admin_key": admin_key},
                                            timeout=timeout)
        return msgspec.convert(answer, dict[str, Any])
