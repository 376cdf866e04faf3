"""Helpers shared by the scheduler tests."""

from __future__ import annotations

from collections.abc import Callable

from scheduler import Scheduler

__all__ = ["FakeClock", "MakeScheduler", "portal_info"]


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


MakeScheduler = Callable[..., Scheduler]


def portal_info(isps: list[str] | None = None, regions: list[str] | None = None, **extra: object) -> dict[str, object]:
    """A worker info with an ISP/region capacity."""
    return {"capacity": {"isps": isps or [], "regions": regions or []}, **extra}
