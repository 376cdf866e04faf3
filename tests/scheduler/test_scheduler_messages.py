"""What callers and operators read: every error's exact message, the defaults, and the reprs."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from scheduler import (
    InvalidArgument,
    NoMatchingWorker,
    NoWorkerAvailable,
    Scheduler,
    SchedulerError,
    TaskAlreadyClaimed,
    TaskExpired,
    TaskOnOtherWorker,
    UnknownTask,
    UnknownWorker,
    create_matcher,
    create_strategy,
)
from tests.scheduler.scheduler_testing import MakeScheduler, portal_info
from tests.support.fake_clock import FakeClock


def _message(call: Callable[[], object], error: type[SchedulerError]) -> str:
    with pytest.raises(error) as caught:
        call()
    assert str(caught.value) == caught.value.message
    return caught.value.message


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"purpose": ""}, "purpose must be a non-empty string, got ''"),
        ({"purpose": 3}, "purpose must be a non-empty string, got 3"),
        ({"default_reserve_time": "x"}, "default_reserve_time must be a number, got 'x'"),
        ({"default_reserve_time": True}, "default_reserve_time must be a number, got True"),
        ({"default_reserve_time": float("nan")}, "default_reserve_time must be a number, got nan"),
        ({"default_reserve_time": 0}, "default_reserve_time must be positive, got 0"),
        ({"default_reserve_time": -1.5}, "default_reserve_time must be positive, got -1.5"),
        ({"default_max_load": "x"}, "default_max_load must be a number, got 'x'"),
        ({"default_max_load": 0}, "default_max_load must be positive, got 0"),
        ({"reservation_load": None}, "reservation_load must be a number, got None"),
        ({"reservation_load": -0.1}, "reservation_load must not be negative, got -0.1"),
    ],
)
def test_a_scheduler_refuses_bad_settings_with_the_reason(
    clock: FakeClock, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"purpose": "portal", "clock": clock, **kwargs}
    assert _message(lambda: Scheduler(**arguments), InvalidArgument) == message  # type: ignore[arg-type]


def test_the_limits_of_the_settings_are_accepted(clock: FakeClock) -> None:
    s = Scheduler("portal", clock=clock, default_reserve_time=float("inf"), reservation_load=0)
    assert s.default_reserve_time == float("inf")
    s.add_worker("p1", {})
    s.schedule("t1")
    assert s.worker_view("p1")["effective_load"] == 0.0
    assert Scheduler("portal", clock=clock, default_reserve_time=0.001).default_reserve_time == 0.001


def test_a_scheduler_s_defaults(clock: FakeClock) -> None:
    s = Scheduler("portal", clock=clock)
    assert (s.purpose, s.strategy, s.matcher, s.default_reserve_time) == ("portal", "last-used", "isp-region", 30.0)
    s.add_worker("p1", {})
    s.schedule("t1")
    view = s.worker_view("p1")
    assert (view["max_load"], view["effective_load"]) == (0.85, 0.01)
    assert s.task_view("t1") == {"task": "t1", "worker": "p1", "state": "reserved", "expires_in": 30.0}
    assert repr(s) == "Scheduler(purpose='portal', strategy='last-used', workers=1, tasks=1)"


def test_worker_calls_refuse_bad_arguments_with_the_reason(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    assert _message(lambda: s.add_worker(3, {}), InvalidArgument) == "worker id must be a string, got 3"  # type: ignore[arg-type]
    assert _message(lambda: s.add_worker("p2", [1]), InvalidArgument) == "worker info must be a mapping, got list"  # type: ignore[arg-type]
    assert _message(lambda: s.update_load("p1", "0.5"), InvalidArgument) == "load must be a number, got '0.5'"  # type: ignore[arg-type]
    assert _message(lambda: s.update_load("p1", False), InvalidArgument) == "load must be a number, got False"
    assert _message(lambda: s.update_state("p1", 7), InvalidArgument) == (
        "worker state must be a non-empty string or 0/1/2, got 7"
    )
    assert _message(lambda: s.update_state("p1", ""), InvalidArgument) == (
        "worker state must be a non-empty string or 0/1/2, got ''"
    )
    assert _message(lambda: s.update_state("p1", True), InvalidArgument) == (
        "worker state must be a non-empty string or 0/1/2, got True"
    )
    assert _message(lambda: s.schedule(3), InvalidArgument) == "task must be a string, got 3"  # type: ignore[arg-type]
    assert _message(lambda: s.drain("x"), UnknownWorker) == "worker 'x' does not exist"


def test_a_failed_schedule_says_why(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    assert _message(lambda: s.schedule("t"), NoWorkerAvailable) == "no portal worker is registered"
    s.add_worker("a", portal_info(["isp-a"]))
    assert _message(lambda: s.schedule("t", {"isp": "isp-b"}), NoMatchingWorker) == (
        "no portal worker matches the preference {'isp': 'isp-b'}"
    )
    s.drain("a")
    assert _message(lambda: s.schedule("t", {"isp": "isp-a"}), NoWorkerAvailable) == (
        "no portal worker available: every matching worker is full, unavailable or drained"
    )


def test_a_refused_claim_says_why(make_scheduler: MakeScheduler, clock: FakeClock) -> None:
    s = make_scheduler()
    s.add_worker("p1", {"capacity": {"isps": ["a"]}})
    s.add_worker("p2", {"capacity": {"isps": ["b"]}})
    assert _message(lambda: s.claim("t", "p1"), UnknownTask) == "task 't' is not reserved"
    worker = s.schedule("t", None, 10)
    other = "p2" if worker == "p1" else "p1"
    assert _message(lambda: s.claim("t", other), TaskOnOtherWorker) == (
        f"task 't' is reserved on another worker, not on {other!r}"
    )
    s.claim("t", worker)
    assert _message(lambda: s.claim("t", worker), TaskAlreadyClaimed) == "task 't' has already been claimed"
    s.schedule("late", None, 10)
    clock.advance(10)
    assert _message(lambda: s.claim("late", worker), TaskExpired) == "the reservation of task 'late' has expired"


def test_an_error_without_a_message_says_its_code() -> None:
    assert NoWorkerAvailable().message == "no_worker_available"
    assert str(TaskExpired()) == "expired"
    assert str(UnknownWorker()) == "unknown_worker"
    assert TaskExpired("gone").message == "gone"
    assert repr(SchedulerError("m")) == "SchedulerError(code='scheduler_error', message='m')"
    assert repr(UnknownTask()) == "UnknownTask(code='unknown_task', message='unknown_task')"


def test_by_default_the_last_4096_expired_tasks_are_remembered(clock: FakeClock) -> None:
    s = Scheduler("portal", clock=clock)
    s.add_worker("p1", {})
    for i in range(4097):
        s.schedule(f"t{i}", None, 1 + i / 10000)
    clock.advance(2)
    expired = s.expire()  # the report is as long as the memory: the oldest is left out
    assert (len(expired), expired[0], expired[-1]) == (4096, "t1", "t4096")
    assert _message(lambda: s.claim("t1", "p1"), TaskExpired) == "the reservation of task 't1' has expired"
    assert _message(lambda: s.claim("t0", "p1"), UnknownTask) == "task 't0' is not reserved"


def test_by_default_256_pools_keep_their_rotation(clock: FakeClock) -> None:
    s = Scheduler("portal", "round-robin", clock=clock, reservation_load=0.0)
    isps = [f"i{n}" for n in range(257)]
    s.add_worker("a", portal_info(isps))
    s.add_worker("b", portal_info(isps))
    assert {s.schedule(f"first-{isp}", {"isp": isp}) for isp in isps[:256]} == {"a"}
    assert s.schedule("again-i0", {"isp": "i0"}) == "b"  # i0 is now the most recently used
    assert s.schedule("first-i256", {"isp": "i256"}) == "a"  # the 257th pool: i1's goes
    assert [s.schedule("again-i2", {"isp": "i2"}), s.schedule("again-i1", {"isp": "i1"})] == ["b", "a"]


def test_a_scheduler_takes_a_strategy_or_matcher_by_name_or_as_an_instance(clock: FakeClock) -> None:
    assert Scheduler("video", clock=clock).strategy == "least-used"
    s = Scheduler("portal", create_strategy("round-robin"), clock=clock, matcher=create_matcher("video"))
    assert (s.strategy, s.matcher) == ("round-robin", "video")
    assert Scheduler("portal", clock=clock, matcher="analytics").matcher == "analytics"


def test_a_random_strategy_named_to_a_scheduler_draws_from_its_rng(clock: FakeClock) -> None:
    s = Scheduler("recording", "randomly-pick", clock=clock, rng=random.Random(3), reservation_load=0.0)
    for worker in ("a", "b", "c"):
        s.add_worker(worker, {})
    model = random.Random(3)
    assert [s.schedule(f"t{i}") for i in range(20)] == [["a", "b", "c"][model.randrange(3)] for _ in range(20)]


@pytest.mark.parametrize("memory", [0, -5])
def test_without_expired_memory_no_expired_task_is_remembered(clock: FakeClock, memory: int) -> None:
    s = Scheduler("portal", clock=clock, expired_memory=memory)
    s.add_worker("p1", {})
    for i in range(1025):
        s.schedule(f"t{i}", None, 1 + i / 10000)
    clock.advance(2)
    expired = s.expire()  # the report still holds the last 1024
    assert (len(expired), expired[0]) == (1024, "t1")
    assert _message(lambda: s.claim("t1024", "p1"), UnknownTask) == "task 't1024' is not reserved"
