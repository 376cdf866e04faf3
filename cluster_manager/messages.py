"""The cluster manager's own serialised state: snapshots (a restart's, a standby's copy).

What crosses the wire to other components is in :mod:`contracts.cluster` (the worker-facing RPC
and ``exit.quit``) and :mod:`contracts.admin` (the admin RPC).
"""

from __future__ import annotations

from typing import Any, Literal, cast

import msgspec

__all__ = ["TaskSnapshot", "WorkerSnapshot", "Snapshot", "to_builtins"]


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


def to_builtins(value: msgspec.Struct) -> dict[str, Any]:
    """A struct as a plain JSON-ready dict."""
    return cast(dict[str, Any], msgspec.to_builtins(value))
