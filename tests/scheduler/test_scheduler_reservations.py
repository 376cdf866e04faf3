"""Task reservations: sticky scheduling, expiry, pick up, lay down, unschedule and claim."""

from __future__ import annotations

import pytest

from scheduler import (
    InvalidArgument,
    TaskAlreadyClaimed,
    TaskExpired,
    TaskNotReserved,
    TaskOnOtherWorker,
    UnknownTask,
)
from tests.scheduler.scheduler_testing import MakeScheduler
from tests.support.fake_clock import FakeClock


def _group(isps: list[str], regions: list[str]) -> dict[str, object]:
    return {"capacity": {"isps": isps, "regions": regions}}



def test_a_known_task_goes_back_to_its_worker_whatever_its_load(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.add_worker("p2", {})
    first = s.schedule("room", None)
    s.update_load(first, 5.0)
    s.update_state(first, "unavailable")
    assert s.schedule("room", None) == first


def test_the_default_reserve_time_is_used_when_none_or_not_positive_is_given(
    make_scheduler: MakeScheduler, clock: FakeClock
) -> None:
    s = make_scheduler(default_reserve_time=45.0)
    s.add_worker("p1", {})
    for task, reserve in (("none", None), ("zero", 0), ("negative", -3), ("nan", float("nan"))):
        s.schedule(task, None, reserve)
        assert s.task_view(task)["expires_in"] == 45.0  # type: ignore[index]
    s.schedule("given", None, 5.5)
    assert s.task_view("given")["expires_in"] == 5.5  # type: ignore[index]
    assert s.default_reserve_time == 45.0


def test_an_expired_reservation_is_gone_even_if_expire_was_not_called(
    make_scheduler: MakeScheduler, clock: FakeClock
) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.schedule("t1", None, 10)
    clock.advance(9.999)
    assert s.get_scheduled("t1") == "p1"
    clock.advance(0.001)
    assert s.get_scheduled("t1") is None
    assert s.tasks_of("p1") == []


def test_expire_drops_due_reservations_and_reports_them_once(
    make_scheduler: MakeScheduler, clock: FakeClock
) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.schedule("short", None, 5)
    s.schedule("long", None, 50)
    s.schedule("lazy", None, 1)
    clock.advance(2)
    assert s.get_scheduled("lazy") is None  # dropped lazily here, reported by expire()
    assert s.expire() == ["lazy"]
    assert s.expire(clock.now + 10) == ["short"]
    assert s.expire(clock.now + 10) == []
    assert s.get_scheduled("long") == "p1"


def test_sticky_scheduling_extends_the_reservation_to_the_larger_time(
    make_scheduler: MakeScheduler, clock: FakeClock
) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.schedule("t", None, 10)
    clock.advance(8)
    s.schedule("t", None, 5)  # restarts with max(10, 5) = 10 from now
    clock.advance(9)
    assert s.get_scheduled("t") == "p1"
    s.schedule("t", None, 60)
    clock.advance(59)
    assert s.get_scheduled("t") == "p1"
    clock.advance(1)
    assert s.get_scheduled("t") is None


def test_a_picked_up_task_never_expires_and_stops_counting_as_load(
    make_scheduler: MakeScheduler, clock: FakeClock
) -> None:
    s = make_scheduler(reservation_load=0.1)
    s.add_worker("p1", {})
    s.schedule("t", None, 10)
    assert s.worker_view("p1")["effective_load"] == pytest.approx(0.1)
    s.pick_up("p1", ["t"])
    assert s.worker_view("p1")["effective_load"] == 0.0
    clock.advance(1e6)
    assert s.expire() == []
    assert s.get_scheduled("t") == "p1"


def test_a_laid_down_task_lingers_for_its_reserve_time_then_is_forgotten(
    make_scheduler: MakeScheduler, clock: FakeClock
) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.add_worker("p2", {})
    worker = s.schedule("room", None, 30)
    s.pick_up(worker, ["room"])
    clock.advance(100)
    s.lay_down(worker, "room")
    assert s.task_view("room") == {"task": "room", "worker": worker, "state": "reserved", "expires_in": 30.0}
    clock.advance(29)
    assert s.schedule("room", None) == worker
    clock.advance(30)
    assert s.get_scheduled("room") is None


def test_laying_down_a_task_only_reserved_on_the_worker_repeals_it(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.schedule("t", None)
    s.lay_down("p1", "t")
    assert s.get_scheduled("t") is None


def test_laying_down_or_unscheduling_another_workers_task_changes_nothing(
    make_scheduler: MakeScheduler,
) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.add_worker("p2", {})
    s.pick_up("p1", ["t"])
    s.lay_down("p2", "t")
    s.unschedule("p2", "t")
    s.lay_down("p2", "unknown")
    assert s.task_view("t")["state"] == "executing"  # type: ignore[index]
    assert s.get_scheduled("t") == "p1"


def test_unschedule_repeals_a_reserved_or_executing_task_of_that_worker(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler(reservation_load=0.1)
    s.add_worker("p1", {})
    s.schedule("reserved", None)
    s.pick_up("p1", ["running"])
    s.unschedule("p1", "reserved")
    s.unschedule("p1", "running")
    assert s.get_scheduled("reserved") is None and s.get_scheduled("running") is None
    assert s.worker_view("p1")["effective_load"] == 0.0


def test_picking_up_an_unknown_task_adopts_it_as_executing(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.pick_up("p1", ["restored-1", "restored-2"])
    assert [t["state"] for t in s.tasks_of("p1")] == ["executing", "executing"]
    assert s.schedule("restored-1", None) == "p1"


def test_picking_up_a_task_reserved_elsewhere_moves_it_to_the_reporting_worker(
    make_scheduler: MakeScheduler,
) -> None:
    s = make_scheduler(reservation_load=0.1)
    s.add_worker("p1", {})
    s.add_worker("p2", {})
    s.update_load("p2", 0.5)
    assert s.schedule("t", None) == "p1"
    s.pick_up("p2", ["t"])
    assert s.get_scheduled("t") == "p2"
    assert s.worker_view("p1")["tasks"] == [] and s.worker_view("p1")["effective_load"] == 0.0
    assert s.worker_view("p2")["tasks"] == ["t"]
    assert s.tasks_of("p2") == [{"task": "t", "worker": "p2", "state": "executing", "expires_in": None}]


def test_a_claim_turns_a_reservation_into_an_executing_task_exactly_once(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.schedule("token", None, 60)
    s.claim("token", "p1")
    assert s.task_view("token")["state"] == "executing"  # type: ignore[index]
    with pytest.raises(TaskAlreadyClaimed) as caught:
        s.claim("token", "p1")
    assert caught.value.code == "already_claimed"


def test_claiming_an_expired_reservation_raises_task_expired(
    make_scheduler: MakeScheduler, clock: FakeClock
) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.schedule("token", None, 60)
    clock.advance(60)
    assert s.expire() == ["token"]
    with pytest.raises(TaskExpired) as caught:
        s.claim("token", "p1")
    assert caught.value.code == "expired"


def test_claiming_an_unknown_task_raises_unknown_task(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    with pytest.raises(UnknownTask) as caught:
        s.claim("never", "p1")
    assert caught.value.code == "unknown_task"
    assert TaskNotReserved is UnknownTask


def test_claiming_a_task_reserved_on_another_worker_raises_and_keeps_the_reservation(
    make_scheduler: MakeScheduler,
) -> None:
    s = make_scheduler()
    s.add_worker("p1", _group(["isp-a"], []))
    s.add_worker("p2", _group(["isp-b"], []))
    worker = s.schedule("token", None)
    other = "p2" if worker == "p1" else "p1"
    with pytest.raises(TaskOnOtherWorker) as caught:
        s.claim("token", other)
    assert caught.value.code == "wrong_worker"
    s.claim("token", worker)


def test_a_sibling_claims_a_live_workers_reservation_but_not_its_running_task(
    make_scheduler: MakeScheduler,
) -> None:
    # The portal a token names died and nobody noticed yet; the load balancer sent its client on.
    s = make_scheduler()
    s.add_worker("p1", _group(["isp-a"], ["eu"]))
    s.add_worker("p2", _group(["isp-a"], ["us"]))
    s.reserve("token", "p1", 30)
    s.reserve("running", "p1", 30)
    s.claim("running", "p1")
    s.claim("token", "p2")
    assert s.task_view("token")["worker"] == "p2"  # type: ignore[index]
    assert [t["task"] for t in s.tasks_of("p1")] == ["running"]
    with pytest.raises(TaskOnOtherWorker):
        s.claim("running", "p2")
    with pytest.raises(TaskOnOtherWorker):  # claimed once, at p2
        s.claim("token", "p1")
    with pytest.raises(TaskAlreadyClaimed):
        s.claim("token", "p2")


def test_a_repealed_then_rescheduled_task_is_claimable_again(
    make_scheduler: MakeScheduler, clock: FakeClock
) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.schedule("t", None, 1)
    clock.advance(2)
    s.expire()
    s.schedule("t", None, 10)
    s.claim("t", "p1")


def test_a_task_id_must_be_a_string(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    with pytest.raises(InvalidArgument):
        s.schedule(42, None)  # type: ignore[arg-type]


def test_the_clock_is_injected_and_no_real_time_passes(make_scheduler: MakeScheduler, clock: FakeClock) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.schedule("t", None, 0.5)
    clock.now = 10.0**9
    assert s.get_scheduled("t") is None


def test_laying_down_a_task_adds_to_the_worker_s_other_reservations(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    for task in ("r1", "r2", "run"):
        s.schedule(task, None, 30.0)
    s.pick_up("p1", ["run"])
    view = s.worker_view("p1")
    assert (view["reserved"], view["executing"]) == (2, 1)
    s.lay_down("p1", "run")
    view = s.worker_view("p1")
    assert (view["reserved"], view["executing"]) == (3, 0)


def test_an_expired_task_adopted_by_pick_up_is_no_longer_expired(make_scheduler: MakeScheduler, clock: FakeClock) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.schedule("t", None, 5)
    clock.advance(5)
    assert s.expire() == ["t"]
    s.pick_up("p1", ["t"])
    s.unschedule("p1", "t")
    with pytest.raises(UnknownTask) as caught:
        s.claim("t", "p1")
    assert caught.value.message == "task 't' is not reserved"


def test_a_reservation_extended_many_times_expires_at_its_last_expiry(
    make_scheduler: MakeScheduler, clock: FakeClock
) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    for _ in range(1100):  # every extension queues one more expiry; the stale ones are dropped on the way
        s.schedule("t", None, 10)
        clock.advance(0.001)
    s.schedule("other", None, 10)
    clock.advance(9.99)
    assert s.expire() == []
    clock.advance(0.02)
    assert s.expire() == ["t", "other"]


def test_a_task_that_expired_and_is_scheduled_again_is_no_longer_expired(
    make_scheduler: MakeScheduler, clock: FakeClock
) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.schedule("t", None, 5)
    clock.advance(5)
    s.schedule("t", None, 5)
    s.unschedule("p1", "t")
    with pytest.raises(UnknownTask):
        s.claim("t", "p1")


def test_the_last_expired_memory_expired_tasks_are_remembered(make_scheduler: MakeScheduler, clock: FakeClock) -> None:
    s = make_scheduler(expired_memory=2)
    s.add_worker("p1", {})
    for i, reserve in enumerate((1, 2, 3)):
        s.schedule(f"t{i}", None, reserve)
    clock.advance(3)
    for task in ("t1", "t2"):
        with pytest.raises(TaskExpired):
            s.claim(task, "p1")
    with pytest.raises(UnknownTask):
        s.claim("t0", "p1")


def test_a_removed_workers_unclaimed_reservation_is_claimed_once_by_a_sibling(
    make_scheduler: MakeScheduler, clock: FakeClock
) -> None:
    s = make_scheduler()
    s.add_worker("p1", _group(["isp-a"], ["eu"]))
    s.reserve("token", "p1", 30)
    s.add_worker("p2", _group(["isp-a"], ["eu"]))
    assert s.remove_worker("p1") == ["token"]
    clock.advance(29)
    s.check_claim("token", "p2")
    s.claim("token", "p2")
    assert s.task_view("token") == {"task": "token", "worker": "p2", "state": "executing", "expires_in": None}
    with pytest.raises(TaskAlreadyClaimed):
        s.claim("token", "p2")


def test_a_removed_workers_reservation_is_refused_to_a_worker_that_does_not_serve_all_it_served(
    make_scheduler: MakeScheduler,
) -> None:
    s = make_scheduler()
    s.add_worker("p1", _group(["isp-a", "isp-b"], ["eu"]))
    s.reserve("token", "p1", 30)
    s.add_worker("other-isp", _group(["isp-b"], ["eu"]))
    s.remove_worker("p1")
    with pytest.raises(TaskOnOtherWorker, match="gone"):
        s.claim("token", "other-isp")
    assert s.task_view("token") is None
    s.add_worker("any-isp-region-us", _group([], ["us"]))  # regions are soft; any ISP covers all
    s.claim("token", "any-isp-region-us")


def test_a_removed_any_isp_or_codec_workers_reservation_needs_a_worker_as_wide(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {"capacity": {"video": {"encode": ["vp8"], "decode": ["h264"]}, "algorithms": ["a"]}})
    s.reserve("token", "p1", 30)
    s.add_worker("one-isp", {"capacity": {"isps": ["isp-a"], "video": {"encode": ["vp8"], "decode": ["h264"]},
                                          "algorithms": ["a"]}})
    s.add_worker("no-encode", {"capacity": {"video": {"decode": ["h264"]}, "algorithms": ["a"]}})
    s.add_worker("no-decode", {"capacity": {"video": {"encode": ["vp8"]}, "algorithms": ["a"]}})
    s.add_worker("no-algorithm", {"capacity": {"video": {"encode": ["vp8"], "decode": ["h264"]}}})
    s.remove_worker("p1")
    for worker in ("one-isp", "no-encode", "no-decode", "no-algorithm"):
        with pytest.raises(TaskOnOtherWorker, match="gone"):
            s.claim("token", worker)
    s.add_worker("wider", {"capacity": {"video": {"encode": ["vp8", "vp9"], "decode": ["h264"]},
                                        "algorithms": ["a", "b"]}})
    s.claim("token", "wider")


def test_a_removed_workers_reservation_lapses_when_it_would_have(
    make_scheduler: MakeScheduler, clock: FakeClock
) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.reserve("token", "p1", 30)
    s.add_worker("p2", {})
    s.remove_worker("p1")
    clock.advance(30)
    with pytest.raises(TaskExpired):
        s.claim("token", "p2")


def test_a_removed_workers_claimed_task_is_not_claimable_again(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.reserve("token", "p1", 30)
    s.claim("token", "p1")
    s.add_worker("p2", {})
    s.remove_worker("p1")
    with pytest.raises(UnknownTask):
        s.claim("token", "p2")


def test_orphaned_reservations_are_bounded_by_the_expired_memory(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler(expired_memory=2)
    s.add_worker("p1", {})
    for task in ("t1", "t2", "t3"):
        s.reserve(task, "p1", 30)
    s.add_worker("p2", {})
    s.remove_worker("p1")
    with pytest.raises(UnknownTask):
        s.claim("t1", "p2")
    s.claim("t2", "p2")
    s.claim("t3", "p2")


def test_a_rescheduled_orphan_is_an_ordinary_reservation_again(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", _group(["isp-a"], []))
    s.reserve("token", "p1", 30)
    s.add_worker("p2", _group(["isp-b"], []))
    s.remove_worker("p1")
    s.reserve("token", "p2", 30)
    s.add_worker("p3", _group(["isp-a"], []))
    with pytest.raises(TaskOnOtherWorker, match="not on 'p3'"):
        s.claim("token", "p3")
    s.claim("token", "p2")
