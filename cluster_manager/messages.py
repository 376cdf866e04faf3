"""Wire types of the cluster manager: RPC arguments (validated with msgspec), results, events, snapshots.

Arguments arrive as plain JSON values; each method converts them into its ``*Args`` struct, so a
wrong type is refused with ``bad_arguments`` before anything changes.  Results are sent as plain
dicts (``msgspec.to_builtins`` of the structs below), so in-process callers see what a remote caller
would.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar, cast

import msgspec

from .errors import bad_arguments

__all__ = [
    "Id",
    "WorkerInfo",
    "JoinArgs",
    "JoinInfoArgs",
    "WorkerArgs",
    "ReportLoadArgs",
    "ReportStateArgs",
    "PickUpArgs",
    "TaskArgs",
    "UnscheduleArgs",
    "ScheduleArgs",
    "ScheduledArgs",
    "ClaimArgs",
    "WorkersArgs",
    "PortalsArgs",
    "Scheduled",
    "PortalAddress",
    "WorkerView",
    "TaskView",
    "TaskCounts",
    "Status",
    "WorkerExit",
    "FaultsArgs",
    "BoardWorker",
    "ManagerView",
    "RoomPlacement",
    "Overview",
    "TaskSnapshot",
    "WorkerSnapshot",
    "Snapshot",
    "parse_args",
    "to_builtins",
]

#: A worker id, task id or purpose: a non-empty string of reasonable length.
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
_Positive = Annotated[float, msgspec.Meta(gt=0)]
_Load = Annotated[float, msgspec.Meta(ge=0)]


class _Capacity(msgspec.Struct):
    """The parts of ``info.capacity`` the ISP/region matcher reads (other keys pass through)."""

    isps: list[str] = []
    regions: list[str] = []


class WorkerInfo(msgspec.Struct):
    """What a worker may declare at join; unknown keys are allowed and kept verbatim."""

    capacity: _Capacity = msgspec.field(default_factory=_Capacity)
    hostname: str | None = None
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] | None = None
    via_host: str | None = None
    secure: bool | None = None
    max_load: _Positive | None = None
    maxLoad: _Positive | None = None
    max_tasks: Annotated[int, msgspec.Meta(gt=0)] | None = None


# -- arguments ------------------------------------------------------------------------------------


class JoinArgs(msgspec.Struct, forbid_unknown_fields=True):
    purpose: Id
    worker_id: Id
    info: dict[str, Any]


class JoinInfoArgs(msgspec.Struct):
    """``join``'s ``info`` checked against :class:`WorkerInfo` (the dict itself is kept verbatim)."""

    info: WorkerInfo


class WorkerArgs(msgspec.Struct, forbid_unknown_fields=True):
    worker_id: Id


class ReportLoadArgs(msgspec.Struct, forbid_unknown_fields=True):
    worker_id: Id
    load: _Load


class ReportStateArgs(msgspec.Struct, forbid_unknown_fields=True):
    worker_id: Id
    state: Id | Literal[0, 1, 2]


class PickUpArgs(msgspec.Struct, forbid_unknown_fields=True):
    worker_id: Id
    tasks: list[Id]


class TaskArgs(msgspec.Struct, forbid_unknown_fields=True):
    worker_id: Id
    task: Id


class UnscheduleArgs(msgspec.Struct, forbid_unknown_fields=True):
    worker_id: Id
    task: Id
    purpose: Id | None = None


class ScheduleArgs(msgspec.Struct, forbid_unknown_fields=True):
    purpose: Id
    task: Id
    preference: dict[str, Any] | None = None
    reserve_time: _Positive | None = None


class ScheduledArgs(msgspec.Struct, forbid_unknown_fields=True):
    purpose: Id
    task: Id


class PortalsArgs(msgspec.Struct, forbid_unknown_fields=True):
    preference: dict[str, Any] | None = None
    exclude: list[Id] = []
    limit: Annotated[int, msgspec.Meta(ge=0, le=16)] = 3


class ClaimArgs(msgspec.Struct, forbid_unknown_fields=True):
    purpose: Id
    task: Id
    worker_id: Id


class WorkersArgs(msgspec.Struct, forbid_unknown_fields=True):
    purpose: Id | None = None


# -- results --------------------------------------------------------------------------------------


class Scheduled(msgspec.Struct):
    """Where a task goes: the worker id and the info it joined with, verbatim."""

    id: str
    info: dict[str, Any]


class PortalAddress(msgspec.Struct):
    """Where clients reach a portal: ``host`` (``hostname:port``) and whether over TLS."""

    id: str
    host: str
    secure: bool


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


class FaultsArgs(msgspec.Struct, forbid_unknown_fields=True):
    #: The ``next`` of the last page read (0: from the oldest kept).
    since: Annotated[int, msgspec.Meta(ge=0)] = 0
    limit: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None


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


class WorkerExit(msgspec.Struct):
    """Payload of the ``exit.quit`` fault event (OWT's ``{purpose, id, type}`` plus a reason)."""

    purpose: str
    id: str
    type: str = "worker"
    #: ``quit`` (the worker said so), ``connection_lost`` (its broker connection closed) or
    #: ``timeout`` (it missed too many liveness sweeps).
    reason: str = "quit"


# -- snapshots ------------------------------------------------------------------------------------


class TaskSnapshot(msgspec.Struct):
    task: str
    state: Literal["reserved", "executing"]
    #: Seconds left of a reservation (``None`` while executing).
    expires_in: float | None = None
    #: How long the task lingers once laid down (``None``: the default reserve time).
    reserve_time: float | None = None


class WorkerSnapshot(msgspec.Struct):
    id: str
    purpose: str
    info: dict[str, Any]
    state: str
    load: float
    drained: bool
    tasks: list[TaskSnapshot] = []


class Snapshot(msgspec.Struct):
    """Everything a standby needs to take over without a not-ready window."""

    version: int = 1
    workers: list[WorkerSnapshot] = []


_A = TypeVar("_A", bound=msgspec.Struct)


def parse_args(method: str, args_type: type[_A], /, **values: Any) -> _A:
    """The arguments of a call of ``method`` as ``args_type``; ``bad_arguments`` when they do not fit."""
    try:
        return msgspec.convert(values, args_type)
    except msgspec.ValidationError as exc:
        raise bad_arguments(method, str(exc)) from None


def to_builtins(value: msgspec.Struct) -> dict[str, Any]:
    """A result struct as the plain dict sent to callers."""
    return cast(dict[str, Any], msgspec.to_builtins(value))
