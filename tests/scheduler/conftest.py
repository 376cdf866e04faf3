"""Fixtures for the scheduler tests: a settable clock and a scheduler factory."""

from __future__ import annotations

import random
from typing import Any

import pytest

from scheduler import Scheduler
from tests.scheduler.scheduler_testing import MakeScheduler
from tests.support.fake_clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_scheduler(clock: FakeClock) -> MakeScheduler:
    def make(purpose: str = "portal", strategy: str | None = "least-used", **kwargs: Any) -> Scheduler:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("default_reserve_time", 30.0)
        kwargs.setdefault("rng", random.Random(7))
        return Scheduler(purpose, strategy, **kwargs)

    return make
