"""Helpers shared by the scheduler tests."""

from __future__ import annotations

from collections.abc import Callable

from scheduler import Scheduler

__all__ = ["MakeScheduler", "portal_info"]


MakeScheduler = Callable[..., Scheduler]


def portal_info(isps: list[str] | None = None, regions: list[str] | None = None, **extra: object) -> dict[str, object]:
    """A worker info with an ISP/region capacity."""
    return {"capacity": {"isps": isps or [], "regions": regions or []}, **extra}
