"""Reserving a portal within the budget, on a fake clock: which calls are made, when, with which
timeout, and when the scheduler gives up (no test here waits for real time)."""

from __future__ import annotations

from typing import Any

import pytest

from rpc import LocalBroker, RpcRemoteError, RpcTimeout, RpcUnavailable
from rpc.local import LocalTransport
from tests.support.fake_clock import FakeClock
from token_api import TokenApiSettings
from token_api.errors import CloudError, PortalUnavailable
from token_api.metrics import Metrics
from token_api.placement import Placement, PortalScheduler

START = 1000.0
_INFO = {"hostname": "p.example.net", "port": 8080}


class ScriptedManager(LocalTransport):
    """A transport whose ``schedule`` calls get scripted outcomes; ``"hang"`` takes the whole timeout."""

    def __init__(self, clock: FakeClock, outcomes: list[Any]) -> None:
        super().__init__(LocalBroker(), "token-api")
        self.clock = clock
        self.outcomes = outcomes
        #: (seconds since START, target, method, timeout) of every call
        self.calls: list[tuple[float, str, str, float | None]] = []

    async def call(
        self, target: str, method: str, args: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        self.calls.append((round(self.clock() - START, 9), target, method, timeout and round(timeout, 9)))
        outcome = self.outcomes.pop(0)
        if outcome == "hang":
            assert timeout is not None
            self.clock.advance(timeout)
            raise RpcTimeout(f"{target}.{method} did not answer within {timeout:g} s")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def _scheduler(outcomes: list[Any], **settings: Any) -> tuple[PortalScheduler, ScriptedManager, list[float]]:
    clock = FakeClock(START)
    manager = ScriptedManager(clock, outcomes)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    scheduler = PortalScheduler(
        manager, TokenApiSettings(**settings), Metrics(), cluster_name="cm", clock=clock, sleep=sleep
    )
    return scheduler, manager, sleeps


def _no_worker() -> RpcRemoteError:
    return RpcRemoteError("no_worker_available", "nothing to schedule on")


async def test_a_failure_that_may_pass_is_retried_with_backoff_until_the_budget_is_spent() -> None:
    scheduler, manager, sleeps = _scheduler([_no_worker()] * 10, schedule_budget=1.0, retry_after=3)
    with pytest.raises(PortalUnavailable) as info:
        await scheduler.reserve("code-1", None, 180.0)
    # back-off doubles from 50 ms; the next wait would end past the budget, so it gives up at 0.75 s
    assert sleeps == [0.05, 0.1, 0.2, 0.4]
    assert manager.calls == [
        (0.0, "cm", "schedule", 1.0),
        (0.05, "cm", "schedule", 0.95),
        (0.15, "cm", "schedule", 0.85),
        (0.35, "cm", "schedule", 0.65),
        (0.75, "cm", "schedule", 0.25),
    ]
    assert info.value.status == 503
    assert info.value.headers["Retry-After"] == "3"
    assert info.value.error_reason == "no_portal_available"
    assert len(manager.outcomes) == 5  # five attempts used, five left


async def test_an_unreachable_manager_is_retried_within_the_budget_and_reported_as_such() -> None:
    scheduler, manager, sleeps = _scheduler([RpcUnavailable("no service 'cm'")] * 10, schedule_budget=1.0)
    with pytest.raises(PortalUnavailable) as info:
        await scheduler.reserve("code-1", None, 180.0)
    assert [at for at, *_ in manager.calls] == [0.0, 0.05, 0.15, 0.35, 0.75]
    assert sleeps == [0.05, 0.1, 0.2, 0.4]
    assert info.value.error_reason == "cluster_unreachable"


async def test_a_silent_manager_costs_at_most_the_budget_each_call_capped_by_what_is_left() -> None:
    scheduler, manager, sleeps = _scheduler(["hang"] * 10, schedule_budget=3.0, schedule_call_timeout=1.0)
    with pytest.raises(PortalUnavailable) as info:
        await scheduler.reserve("code-1", None, 180.0)
    assert manager.calls == [
        (0.0, "cm", "schedule", 1.0),
        (1.05, "cm", "schedule", 1.0),
        (2.15, "cm", "schedule", 0.85),
    ]
    assert sleeps == [0.05, 0.1]
    assert manager.clock() - START == pytest.approx(3.0)  # the answer comes exactly when the budget ends
    assert info.value.error_reason == "cluster_unreachable"


async def test_a_manager_that_becomes_ready_within_the_budget_gives_the_placement() -> None:
    outcomes: list[Any] = [RpcRemoteError("not_ready", "initializing")] * 2 + [{"id": "portal-a", "info": _INFO}]
    scheduler, manager, sleeps = _scheduler(outcomes, schedule_budget=1.0)
    placement = await scheduler.reserve("code-1", {"isp": "isp-a"}, 180.0)
    assert placement == Placement(worker_id="portal-a", host="p.example.net:8080", secure=False)
    assert sleeps == [0.05, 0.1]
    assert len(manager.calls) == 3


async def test_no_portal_for_the_isp_is_answered_at_once() -> None:
    scheduler, manager, sleeps = _scheduler([RpcRemoteError("no_matching_worker", "no portal for isp-c")])
    with pytest.raises(PortalUnavailable) as info:
        await scheduler.reserve("code-1", {"isp": "isp-c"}, 180.0)
    assert info.value.error_reason == "no_matching_portal"
    assert (len(manager.calls), sleeps) == (1, [])


async def test_an_unexpected_manager_error_is_not_retried() -> None:
    scheduler, manager, sleeps = _scheduler([RpcRemoteError("internal", "boom")])
    with pytest.raises(CloudError) as info:
        await scheduler.reserve("code-1", None, 180.0)
    assert info.value.error_reason == "scheduling_error"
    assert (len(manager.calls), sleeps) == (1, [])
