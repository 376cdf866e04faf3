"""A clock for code that takes one (``clock=``): the test sets or advances its time by hand."""

from __future__ import annotations

__all__ = ["FakeClock"]


class FakeClock:
    """A clock the test moves by hand (seconds): ``clock.now = ...`` or ``clock.advance(...)``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
