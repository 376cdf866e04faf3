"""Worker and task records kept by a :class:`~scheduler.Scheduler`.

The records are internal bookkeeping: callers get plain-dict views (``view``) that
serialize to JSON.  A few fields exist only so that the candidate indexes can validate their lazy
entries in O(1):

* ``version`` changes whenever the worker's effective load or candidacy changes;
* ``epoch`` changes whenever the worker enters or leaves the candidate set;
* ``alive`` turns false when the worker is removed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Capacity",
    "WorkerRecord",
    "TaskRecord",
    "TaskState",
    "OrphanedReservation",
    "parse_capacity",
    "normalize_codec",
    "SERVICEABLE_STATE",
]

TaskState = Literal["reserved", "executing"]

#: The one worker state in which a worker takes new tasks.
SERVICEABLE_STATE = "available"


def _string_set(value: object) -> frozenset[str]:
    if isinstance(value, (list, tuple, set, frozenset)):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def normalize_codec(value: object) -> str | None:
    """A codec format as a comparable string.

    Strings are lower-cased (``"H264_CB"`` → ``"h264_cb"``); OWT-style objects
    ``{codec, profile?}`` become ``"codec"`` or ``"codec_profile"``.  Anything else is ``None``.
    """
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, dict):
        codec = value.get("codec")
        if not isinstance(codec, str):
            return None
        profile = value.get("profile")
        return f"{codec}_{profile}".lower() if isinstance(profile, str) else codec.lower()
    return None


def _codec_set(value: object) -> frozenset[str]:
    if not isinstance(value, (list, tuple, set, frozenset)):
        return frozenset()
    return frozenset(c for c in map(normalize_codec, value) if c is not None)


@dataclass(frozen=True, slots=True)
class Capacity:
    """What a worker declared it can serve, parsed once from ``info['capacity']``.

    An empty ``isps`` means the worker accepts any ISP.  Malformed entries are ignored.
    """

    isps: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    encode: frozenset[str] = frozenset()
    decode: frozenset[str] = frozenset()
    algorithms: frozenset[str] = frozenset()

    def covers(self, other: Capacity) -> bool:
        """Whether a worker declaring this serves whatever one declaring ``other`` serves: every ISP
        it served (or any ISP), every codec and algorithm.  Regions are a soft preference and do
        not count."""
        isps = not self.isps or (bool(other.isps) and other.isps <= self.isps)
        return (isps and other.encode <= self.encode and other.decode <= self.decode
                and other.algorithms <= self.algorithms)


def parse_capacity(info: object) -> Capacity:
    """Parse ``info['capacity']`` without ever raising."""
    capacity = info.get("capacity") if isinstance(info, dict) else None
    if not isinstance(capacity, dict):
        return Capacity()
    video = capacity.get("video")
    if not isinstance(video, dict):
        video = {}
    return Capacity(
        isps=_string_set(capacity.get("isps")),
        regions=_string_set(capacity.get("regions")),
        encode=_codec_set(video.get("encode")),
        decode=_codec_set(video.get("decode")),
        algorithms=_string_set(capacity.get("algorithms")),
    )


def _positive_number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value > 0 else None


@dataclass(slots=True, eq=False, repr=False)
class TaskRecord:
    """One task mapped to one worker.

    ``expires_at`` is ``None`` while the task is executing (no expiry).
    """

    task: str
    worker: "WorkerRecord"
    reserve_time: float
    state: TaskState
    expires_at: float | None

    def __repr__(self) -> str:
        return (
            f"TaskRecord(task={self.task!r}, worker={self.worker.id!r}, state={self.state!r}, "
            f"expires_at={self.expires_at!r})"
        )

    def view(self, now: float) -> dict[str, Any]:
        """``{task, worker, state, expires_in}``; ``expires_in`` is ``None`` while executing."""
        expires_in = None if self.expires_at is None else max(0.0, self.expires_at - now)
        return {
            "task": self.task,
            "worker": self.worker.id,
            "state": self.state,
            "expires_in": expires_in,
        }


@dataclass(frozen=True, slots=True)
class OrphanedReservation:
    """A reservation whose worker was removed before it was claimed (a portal died holding tokens
    not yet used): a sibling — a worker whose capacity :meth:`~Capacity.covers` the removed one's —
    may claim it until ``expires_at`` (the scheduler's clock), so a client a load balancer sends on
    logs in there."""

    capacity: Capacity
    expires_at: float


@dataclass(slots=True, eq=False, repr=False)
class WorkerRecord:
    """One worker: its reported state and load, its declared info, and the tasks mapped to it."""

    id: str
    purpose: str
    info: dict[str, Any]
    capacity: Capacity
    max_load: float
    load_step: float
    join_seq: int
    state: str = SERVICEABLE_STATE
    load: float = 0.0
    drained: bool = False
    reserved: int = 0
    effective_load: float = 0.0
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    candidate: bool = False
    alive: bool = True
    version: int = 0
    epoch: int = 0
    pools: dict[object, Any] = field(default_factory=dict)

    @staticmethod
    def limits(info: dict[str, Any], default_max_load: float, default_step: float) -> tuple[float, float]:
        """``(max_load, load_step)`` from a worker's info.

        ``max_load`` comes from ``info['max_load']`` or OWT's ``info['maxLoad']``.  The load a
        reservation adds is ``1 / info['max_tasks']`` (or ``maxTasks``) when the worker declares
        how many tasks it holds, else ``default_step``.
        """
        max_load = _positive_number(info.get("max_load"))
        if max_load is None:
            max_load = _positive_number(info.get("maxLoad"))
        max_tasks = _positive_number(info.get("max_tasks"))
        if max_tasks is None:
            max_tasks = _positive_number(info.get("maxTasks"))
        step = 1.0 / max_tasks if max_tasks is not None else default_step
        return (max_load if max_load is not None else default_max_load), step

    def servable(self) -> bool:
        """Takes new tasks if reservations are ignored: serviceable, not drained, load below max."""
        return self.state == SERVICEABLE_STATE and not self.drained and self.load < self.max_load

    def __repr__(self) -> str:
        return (
            f"WorkerRecord(id={self.id!r}, state={self.state!r}, load={self.load!r}, "
            f"effective_load={self.effective_load!r}, max_load={self.max_load!r}, "
            f"drained={self.drained!r}, candidate={self.candidate!r}, tasks={len(self.tasks)})"
        )

    def view(self) -> dict[str, Any]:
        """The admin view, a JSON-ready dict."""
        executing = len(self.tasks) - self.reserved
        return {
            "id": self.id,
            "purpose": self.purpose,
            "state": self.state,
            "load": self.load,
            "effective_load": self.effective_load,
            "max_load": self.max_load,
            "drained": self.drained,
            "schedulable": self.candidate,
            "reserved": self.reserved,
            "executing": executing,
            "tasks": list(self.tasks),
            "info": self.info,
        }
