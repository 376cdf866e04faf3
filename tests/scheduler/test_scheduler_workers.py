"""Workers: registration, load and state, drain, removal and admin views."""

from __future__ import annotations

import json

import pytest

from scheduler import InvalidArgument, NoMatchingWorker, NoWorkerAvailable, UnknownWorker
from tests.scheduler.scheduler_testing import MakeScheduler, portal_info
from tests.support.fake_clock import FakeClock


def test_a_freshly_joined_worker_is_schedulable_at_once(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", portal_info())
    assert s.schedule("t1", None) == "p1"
    assert s.worker_view("p1")["load"] == 0.0


def test_has_worker_and_worker_ids_follow_registration(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("b", {})
    s.add_worker("a", {})
    assert s.has_worker("a") and s.has_worker("b") and not s.has_worker("c")
    assert s.worker_ids() == ["b", "a"]
    s.remove_worker("b")
    assert s.worker_ids() == ["a"]


def test_a_worker_at_or_above_max_load_gets_no_new_task(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {"max_load": 0.5})
    s.update_load("p1", 0.5)
    with pytest.raises(NoWorkerAvailable):
        s.schedule("t1", None)
    s.update_load("p1", 0.49)
    assert s.schedule("t1", None) == "p1"


def test_max_load_is_read_from_max_load_or_owt_maxload_with_a_default(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler(default_max_load=0.85)
    s.add_worker("snake", {"max_load": 0.5})
    s.add_worker("camel", {"maxLoad": 0.6})
    s.add_worker("none", {})
    s.add_worker("bad", {"max_load": "high"})
    assert [s.worker_view(w)["max_load"] for w in ("snake", "camel", "none", "bad")] == [0.5, 0.6, 0.85, 0.85]


def test_only_the_available_state_takes_new_tasks(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    for state in ("unavailable", "warning", 0, 1):
        s.update_state("p1", state)
        with pytest.raises(NoWorkerAvailable):
            s.schedule("t", None)
    s.update_state("p1", 2)
    assert s.worker_view("p1")["state"] == "available"
    assert s.schedule("t", None) == "p1"


def test_a_nan_load_or_a_bad_state_is_rejected(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    with pytest.raises(InvalidArgument):
        s.update_load("p1", float("nan"))
    with pytest.raises(InvalidArgument):
        s.update_load("p1", "0.5")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        s.update_state("p1", 7)
    s.update_load("p1", -1.0)
    assert s.worker_view("p1")["load"] == 0.0


def test_operations_on_an_unknown_worker_raise_unknown_worker(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    for call in (
        lambda: s.update_load("x", 0.1),
        lambda: s.update_state("x", "available"),
        lambda: s.drain("x"),
        lambda: s.undrain("x"),
        lambda: s.remove_worker("x"),
        lambda: s.pick_up("x", ["t"]),
        lambda: s.lay_down("x", "t"),
        lambda: s.unschedule("x", "t"),
        lambda: s.claim("t", "x"),
        lambda: s.worker_view("x"),
        lambda: s.tasks_of("x"),
        lambda: s.worker_info("x"),
    ):
        with pytest.raises(UnknownWorker) as caught:
            call()
        assert caught.value.code == "unknown_worker"
        assert "'x'" in str(caught.value)


def test_a_drained_worker_keeps_its_tasks_and_sticky_reservations_but_gets_no_new_task(
    make_scheduler: MakeScheduler,
) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.schedule("reserved", None)
    s.schedule("running", None)
    s.pick_up("p1", ["running"])
    s.drain("p1")
    assert s.schedule("reserved", None) == "p1"
    assert s.schedule("running", None) == "p1"
    with pytest.raises(NoWorkerAvailable):
        s.schedule("new", None)
    view = s.worker_view("p1")
    assert view["drained"] is True and view["schedulable"] is False
    assert view["tasks"] == ["reserved", "running"]


def test_undrain_makes_a_worker_schedulable_again(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.add_worker("p2", {})
    s.update_load("p2", 0.5)
    s.drain("p1")
    assert s.schedule("t1", None) == "p2"
    assert s.worker_view("p1")["drained"] is True
    s.undrain("p1")
    assert s.worker_view("p1")["drained"] is False
    assert s.schedule("t2", None) == "p1"


def test_removing_a_worker_returns_and_repeals_its_tasks(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {})
    s.schedule("a", None)
    s.schedule("b", None)
    s.pick_up("p1", ["b", "c"])
    assert s.remove_worker("p1") == ["a", "b", "c"]
    assert [s.get_scheduled(t) for t in "abc"] == [None, None, None]
    assert not s.has_worker("p1")
    with pytest.raises(NoWorkerAvailable):
        s.schedule("a", None)


def test_re_adding_a_worker_replaces_its_info_and_keeps_its_tasks_and_drain_flag(
    make_scheduler: MakeScheduler,
) -> None:
    s = make_scheduler()
    s.add_worker("p1", portal_info(["isp-a"], hostname="old"))
    s.schedule("t1", {"isp": "isp-a"})
    s.update_load("p1", 0.7)
    s.update_state("p1", "warning")
    s.drain("p1")
    s.add_worker("p1", portal_info(["isp-b"], hostname="new"))
    view = s.worker_view("p1")
    assert view["info"]["hostname"] == "new"
    assert (view["load"], view["state"], view["drained"]) == (0.0, "available", True)
    assert s.get_scheduled("t1") == "p1"
    s.undrain("p1")
    assert s.schedule("t2", {"isp": "isp-b"}) == "p1"
    with pytest.raises(NoMatchingWorker):
        s.schedule("t3", {"isp": "isp-a"})


def test_worker_views_are_json_ready_and_show_load_effective_load_tasks_and_drain(
    make_scheduler: MakeScheduler, clock: FakeClock
) -> None:
    s = make_scheduler("portal", reservation_load=0.01)
    s.add_worker("p1", portal_info(["isp-a"], hostname="h", port=8080))
    s.update_load("p1", 0.25)
    s.schedule("t1", {"isp": "isp-a"}, 60)
    s.schedule("t2", {"isp": "isp-a"}, 60)
    s.pick_up("p1", ["t2"])
    view = s.worker_view("p1")
    assert json.loads(json.dumps(view)) == view
    assert view["id"] == "p1" and view["purpose"] == "portal"
    assert view["load"] == 0.25
    assert view["effective_load"] == pytest.approx(0.26)
    assert (view["reserved"], view["executing"], view["tasks"]) == (1, 1, ["t1", "t2"])
    assert view["info"]["port"] == 8080 and view["drained"] is False
    assert s.workers_view() == [view]
    clock.advance(20)
    assert s.tasks_of("p1") == [
        {"task": "t1", "worker": "p1", "state": "reserved", "expires_in": 40.0},
        {"task": "t2", "worker": "p1", "state": "executing", "expires_in": None},
    ]
    assert json.loads(json.dumps(s.tasks_of("p1"))) == s.tasks_of("p1")
    assert s.task_view("t1") == s.tasks_of("p1")[0]
    assert s.task_view("nope") is None


def test_worker_info_may_be_missing_or_hold_malformed_capacity(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("a", None)
    s.add_worker("b", {"capacity": "everything"})
    s.add_worker("c", {"capacity": {"isps": "isp-a", "regions": [1, None]}})
    assert sorted(s.schedule(f"t{i}", {"isp": "isp-a", "region": "r"}) for i in range(3)) == ["a", "b", "c"]


def test_a_worker_id_must_be_a_string_and_info_a_mapping(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    with pytest.raises(InvalidArgument):
        s.add_worker(1, {})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        s.add_worker("a", ["not", "a", "dict"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("info", "max_load", "step"),
    [
        ({"max_tasks": 4}, 0.85, 0.25),
        ({"maxTasks": 8}, 0.85, 0.125),
        ({"max_tasks": 4, "maxTasks": 2}, 0.85, 0.25),
        ({"max_tasks": 0, "maxTasks": 2}, 0.85, 0.5),
        ({"max_tasks": "4"}, 0.85, 0.01),
        ({"max_tasks": True}, 0.85, 0.01),
        ({"max_tasks": float("inf")}, 0.85, 0.01),
        ({"max_tasks": -4}, 0.85, 0.01),
        ({"max_load": 0.5, "maxLoad": 0.7}, 0.5, 0.01),
        ({"max_load": 0, "maxLoad": 0.7}, 0.7, 0.01),
        ({"max_load": float("nan"), "maxLoad": 0.7}, 0.7, 0.01),
        ({"max_load": 2}, 2.0, 0.01),
        ({"max_load": float("-inf")}, 0.85, 0.01),
    ],
)
def test_max_load_and_the_load_of_a_reservation_come_from_the_info(
    make_scheduler: MakeScheduler, info: dict[str, object], max_load: float, step: float
) -> None:
    s = make_scheduler(default_max_load=0.85, reservation_load=0.01)
    s.add_worker("p1", info)
    s.schedule("t1", None)
    view = s.worker_view("p1")
    assert (view["max_load"], view["effective_load"]) == (max_load, step)


def test_the_isps_of_a_removed_worker_are_no_longer_known(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("portal", "round-robin")
    s.add_worker("any1", portal_info([]))
    s.add_worker("any2", portal_info([]))
    s.add_worker("x", portal_info(["isp-x"]))
    s.remove_worker("x")
    # isp-x and isp-y are both ISPs no worker lists: one pool, one rotation
    assert [s.schedule("t1", {"isp": "isp-x"}), s.schedule("t2", {"isp": "isp-y"})] == ["any1", "any2"]


def test_re_declaring_a_worker_keeps_one_place_in_the_rotation(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("sip", "round-robin")
    for worker in ("a", "b", "c"):
        s.add_worker(worker, {})
    assert s.schedule("t0", None) == "a"
    s.add_worker("b", {})
    s.add_worker("b", {})
    assert [s.schedule(f"t{i}", None) for i in range(1, 7)] == ["c", "a", "b", "c", "a", "b"]


def test_a_re_declared_worker_that_its_reservations_fill_is_no_candidate(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("recording", "randomly-pick")
    s.add_worker("a", {})
    assert s.schedule("t1", None) == "a"
    s.add_worker("a", {"max_tasks": 1})
    view = s.worker_view("a")
    assert (view["effective_load"], view["schedulable"]) == (1.0, False)
    assert s.schedule("t2", None) == "a"


def test_a_worker_its_reservations_bring_exactly_to_max_load_is_no_candidate(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler()
    s.add_worker("p1", {"max_load": 0.5, "max_tasks": 4})
    s.schedule("t1", None)
    assert s.worker_view("p1")["schedulable"] is True
    s.schedule("t2", None)
    view = s.worker_view("p1")
    assert (view["effective_load"], view["schedulable"]) == (0.5, False)


def test_least_used_ranks_a_worker_by_its_last_load_after_it_comes_back(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("video", "least-used", reservation_load=0.0)
    s.add_worker("a", {})
    s.add_worker("b", {})
    s.update_load("b", 0.3)
    assert s.schedule("t0", None) == "a"
    s.update_load("a", 0.5)
    s.update_load("a", 0.6)
    s.drain("a")
    s.undrain("a")
    assert s.schedule("t1", None) == "b"


def test_re_declaring_a_worker_replaces_its_isps_in_the_vocabulary(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("portal", "round-robin")
    s.add_worker("any1", portal_info([]))
    s.add_worker("any2", portal_info([]))
    s.add_worker("x", portal_info(["isp-x"]))
    s.add_worker("z", portal_info(["isp-z"]))
    s.add_worker("x", portal_info(["isp-w"]))
    # isp-x is no longer listed: it shares the rotation of isp-q, which no worker ever listed
    assert [s.schedule("u1", {"isp": "isp-x"}), s.schedule("u2", {"isp": "isp-q"})] == ["any1", "any2"]
    s.drain("any1")
    s.drain("any2")
    assert [s.schedule("u3", {"isp": "isp-z"}), s.schedule("u4", {"isp": "isp-w"})] == ["z", "x"]


def test_least_used_ranks_a_re_declared_worker_by_its_new_load(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("video", "least-used", reservation_load=0.0)
    s.add_worker("a", {})
    s.add_worker("b", {})
    s.update_load("b", 0.3)
    assert s.schedule("t0", None) == "a"
    s.update_load("a", 0.1)
    s.update_load("a", 0.2)
    s.add_worker("a", {})
    s.update_load("a", 0.5)
    assert s.schedule("t1", None) == "b"


def test_overcommitting_takes_the_workers_in_join_order(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("portal", "last-used", reservation_load=0.5)
    s.add_worker("a", {})
    s.add_worker("b", {})
    assert [s.schedule(f"t{i}", None) for i in range(4)] == ["a", "a", "b", "b"]
    s.add_worker("a", {})  # re-declared: still the first to join
    assert s.schedule("t4", None) == "a"
