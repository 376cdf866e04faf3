"""Strategies: the factory, OWT's defaults, each strategy's choice, and reservations as load."""

from __future__ import annotations

import itertools
import random
from collections import Counter

import pytest

from scheduler import (
    DEFAULT_STRATEGIES,
    STRATEGY_NAMES,
    NoWorkerAvailable,
    Scheduler,
    UnknownStrategy,
    create_strategy,
    default_strategy_for,
)
from scheduler.records import Capacity, WorkerRecord
from tests.scheduler.scheduler_testing import MakeScheduler

_task_ids = itertools.count()


def _schedule(s: Scheduler, n: int = 1, preference: object = None) -> list[str]:
    return [s.schedule(f"t{next(_task_ids)}", preference) for _ in range(n)]


def _with_loads(s: Scheduler, loads: dict[str, float]) -> Scheduler:
    for worker, load in loads.items():
        s.add_worker(worker, {})
        s.update_load(worker, load)
    return s


def test_the_factory_builds_every_named_strategy() -> None:
    assert STRATEGY_NAMES == (
        "last-used",
        "least-used",
        "most-used",
        "randomly-pick",
        "round-robin",
        "two-choices",
        "weight-robin",
    )
    for name in STRATEGY_NAMES:
        assert create_strategy(name).name == name


def test_the_factory_rejects_unknown_names_with_a_clear_error() -> None:
    with pytest.raises(UnknownStrategy) as caught:
        create_strategy("fastest")
    assert caught.value.code == "unknown_strategy"
    assert "'fastest'" in caught.value.message and "least-used" in caught.value.message
    with pytest.raises(ValueError):
        Scheduler("portal", "fastest")


def test_default_strategies_follow_owt() -> None:
    assert dict(DEFAULT_STRATEGIES) == {
        "portal": "last-used",
        "conference": "last-used",
        "webrtc": "last-used",
        "general": "last-used",
        "sip": "round-robin",
        "streaming": "round-robin",
        "recording": "randomly-pick",
        "audio": "most-used",
        "video": "least-used",
        "analytics": "least-used",
    }
    assert default_strategy_for("quic") == "last-used"
    assert Scheduler("audio").strategy == "most-used"


def test_least_used_picks_the_lowest_effective_load(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(make_scheduler("video", "least-used"), {"a": 0.5, "b": 0.2, "c": 0.3})
    assert _schedule(s) == ["b"]


def test_least_used_returns_a_worker_even_when_every_load_is_at_or_above_one(
    make_scheduler: MakeScheduler,
) -> None:
    s = _with_loads(make_scheduler("video", "least-used"), {"a": 1.5, "b": 1.2})
    s.add_worker("c", {"max_load": 2.0})
    s.update_load("c", 1.0)
    s.add_worker("d", {"max_load": 2.0})
    s.update_load("d", 1.1)
    assert _schedule(s) == ["c"]


def test_most_used_packs_and_breaks_ties_toward_the_later_worker(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(make_scheduler("audio", "most-used", reservation_load=0.0), {"a": 0.5, "b": 0.7, "c": 0.7})
    assert _schedule(s, 3) == ["c", "c", "c"]


def test_last_used_keeps_the_previous_worker_while_it_is_a_candidate(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(make_scheduler("portal", "last-used", reservation_load=0.0), {"a": 0.1, "b": 0.0})
    assert _schedule(s, 3) == ["a", "a", "a"]
    s.update_load("a", 0.9)
    assert _schedule(s, 2) == ["b", "b"]
    s.update_load("a", 0.1)
    assert _schedule(s) == ["b"]
    s.remove_worker("b")
    assert _schedule(s) == ["a"]


def test_round_robin_cycles_through_candidates(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(make_scheduler("sip", "round-robin"), {"a": 0.1, "b": 0.1, "c": 0.1})
    assert _schedule(s, 6) == ["a", "b", "c", "a", "b", "c"]
    s.update_state("b", "unavailable")
    assert _schedule(s, 4) == ["a", "c", "a", "c"]


def test_randomly_pick_uses_the_injected_rng_and_reaches_every_candidate(make_scheduler: MakeScheduler) -> None:
    def run(seed: int) -> list[str]:
        s = _with_loads(make_scheduler("recording", "randomly-pick", rng=random.Random(seed)), {"a": 0, "b": 0, "c": 0})
        return _schedule(s, 30)

    assert run(1) == run(1)
    assert set(run(1)) == {"a", "b", "c"}


def test_two_choices_never_picks_the_most_loaded_of_three(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(
        make_scheduler("portal", "two-choices", reservation_load=0.0, rng=random.Random(3)),
        {"a": 0.1, "b": 0.5, "c": 0.8},
    )
    picks = Counter(_schedule(s, 300))
    assert "c" not in picks
    assert picks["a"] > picks["b"] > 0


def test_weight_robin_shares_in_proportion_to_free_capacity(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(make_scheduler("portal", "weight-robin", reservation_load=0.0), {"a": 0.25, "b": 0.75})
    picks = Counter(_schedule(s, 100))
    assert picks == {"a": 75, "b": 25}


def test_reservations_count_as_load_so_a_burst_spreads(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(make_scheduler("portal", "least-used", reservation_load=0.01), {"a": 0.2, "b": 0.2, "c": 0.2})
    assert Counter(_schedule(s, 30)) == {"a": 10, "b": 10, "c": 10}


def test_a_burst_moves_on_from_a_last_used_worker_its_reservations_fill(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(make_scheduler("portal", "last-used", reservation_load=0.1), {"a": 0.5, "b": 0.0})
    assert _schedule(s, 6) == ["a", "a", "a", "a", "b", "b"]


def test_the_reservation_load_comes_from_max_tasks_when_a_worker_declares_it(make_scheduler: MakeScheduler) -> None:
    s = make_scheduler("portal", "least-used", reservation_load=0.01)
    s.add_worker("small", {"max_tasks": 4})
    s.add_worker("big", {"maxTasks": 100})
    picks = Counter(_schedule(s, 10))
    assert s.worker_view("small")["effective_load"] == pytest.approx(picks["small"] / 4)
    assert picks["big"] > picks["small"]


def test_when_only_reservations_fill_every_worker_the_scheduler_overcommits(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(make_scheduler("portal", "least-used", reservation_load=0.5), {"only": 0.1})
    assert _schedule(s, 5) == ["only"] * 5
    assert s.worker_view("only")["schedulable"] is False
    s.update_load("only", 0.9)
    with pytest.raises(NoWorkerAvailable):
        _schedule(s)


def test_every_strategy_overcommits_on_the_slow_path_without_error(make_scheduler: MakeScheduler) -> None:
    for name in STRATEGY_NAMES:
        s = _with_loads(make_scheduler("portal", name, reservation_load=1.0), {"a": 0.1, "b": 0.2})
        assert set(_schedule(s, 6)) <= {"a", "b"}


def _records(loads: list[float]) -> list[WorkerRecord]:
    records = []
    for i, load in enumerate(loads):
        w = WorkerRecord(id=f"w{i}", purpose="p", info={}, capacity=Capacity(), max_load=10, load_step=0, join_seq=i)
        w.load = w.effective_load = load
        records.append(w)
    return records


def test_the_scan_form_of_each_strategy_follows_owt() -> None:
    ws = _records([0.5, 0.2, 0.5, 0.9])
    assert create_strategy("least-used").pick(ws, 0).id == "w1"
    assert create_strategy("most-used").pick(ws, 0).id == "w3"
    last = create_strategy("last-used")
    assert last.pick(ws, 0).id == "w0" and last.pick(ws[1:], 0).id == "w1" and last.pick(ws, 0).id == "w1"
    rr = create_strategy("round-robin")
    assert [rr.pick(ws, 0).id for _ in range(5)] == ["w0", "w1", "w2", "w3", "w0"]
    assert rr.pick([ws[0], ws[2]], 0).id == "w2"
    two = create_strategy("two-choices", random.Random(1))
    assert all(two.pick(ws, 0).id != "w3" for _ in range(50))
    assert create_strategy("two-choices").pick(ws[:1], 0).id == "w0"
    assert create_strategy("randomly-pick", random.Random(1)).pick(ws, 0) in ws
    wrr, pair = create_strategy("weight-robin"), _records([0.25, 0.75])
    assert Counter(wrr.pick(pair, 0).id for _ in range(4)) == {"w0": 3, "w1": 1}


def test_every_strategy_forgets_a_worker_whose_re_declared_capacity_leaves_the_pool(
    make_scheduler: MakeScheduler,
) -> None:
    for name in STRATEGY_NAMES:
        s = make_scheduler("portal", name, reservation_load=0.0)
        s.add_worker("a", {"capacity": {"isps": ["isp-a"]}})
        s.add_worker("b", {"capacity": {"isps": ["isp-a", "isp-b"]}})
        s.update_load("b", 0.5)
        _schedule(s, 4, {"isp": "isp-a"})
        s.add_worker("a", {"capacity": {"isps": ["isp-b"]}})
        assert set(_schedule(s, 6, {"isp": "isp-a"})) == {"b"}, name


def test_an_unknown_strategy_is_refused_with_every_known_name() -> None:
    known = "last-used, least-used, most-used, randomly-pick, round-robin, two-choices, weight-robin"
    with pytest.raises(UnknownStrategy) as caught:
        create_strategy("fastest")
    assert caught.value.message == f"unknown scheduling strategy 'fastest'; expected one of: {known}"
    with pytest.raises(UnknownStrategy) as caught:
        create_strategy(3)  # type: ignore[arg-type]
    assert caught.value.message == f"unknown scheduling strategy 3; expected one of: {known}"


def test_strategies_show_their_class() -> None:
    assert [repr(create_strategy(name)) for name in ("least-used", "round-robin", "two-choices")] == [
        "LeastUsed()",
        "RoundRobin()",
        "TwoChoices()",
    ]


def test_randomly_pick_draws_each_candidate_with_one_randrange(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(
        make_scheduler("recording", "randomly-pick", reservation_load=0.0, rng=random.Random(11)),
        {"a": 0.1, "b": 0.5, "c": 0.8},
    )
    model = random.Random(11)
    assert _schedule(s, 20) == [["a", "b", "c"][model.randrange(3)] for _ in range(20)]


def _two_choices(model: random.Random, names: list[str], loads: dict[str, float]) -> str:
    """The documented rule: two distinct uniform draws, the lower load wins, the first on a tie."""
    i = model.randrange(len(names))
    j = model.randrange(len(names) - 1)
    if j >= i:
        j += 1
    return names[j] if loads[names[j]] < loads[names[i]] else names[i]


def test_two_choices_takes_the_less_loaded_of_two_distinct_draws(make_scheduler: MakeScheduler) -> None:
    loads = {"a": 0.1, "b": 0.5, "c": 0.5, "d": 0.8}
    s = _with_loads(make_scheduler("portal", "two-choices", reservation_load=0.0, rng=random.Random(5)), loads)
    model = random.Random(5)
    assert _schedule(s, 40) == [_two_choices(model, list(loads), loads) for _ in range(40)]


def test_the_scan_forms_of_the_random_strategies_draw_as_documented() -> None:
    ws = _records([0.5, 0.2, 0.5, 0.9])
    loads = {w.id: w.effective_load for w in ws}
    names = [w.id for w in ws]
    two, model = create_strategy("two-choices", random.Random(9)), random.Random(9)
    assert [two.pick(ws, 0).id for _ in range(30)] == [_two_choices(model, names, loads) for _ in range(30)]
    pick, model = create_strategy("randomly-pick", random.Random(9)), random.Random(9)
    assert [pick.pick(ws, 0).id for _ in range(30)] == [names[model.randrange(4)] for _ in range(30)]


def _smooth_weighted_model(weights: dict[str, int], rounds: int) -> list[str]:
    """nginx's smooth weighted round-robin: add each weight, take the highest (the first on a tie),
    take the total weight off it."""
    current = dict.fromkeys(weights, 0)
    chosen = []
    for _ in range(rounds):
        for name, weight in weights.items():
            current[name] += weight
        best = max(current, key=lambda name: current[name])
        current[best] -= sum(weights.values())
        chosen.append(best)
    return chosen


def test_weight_robin_follows_smooth_weighted_round_robin(make_scheduler: MakeScheduler) -> None:
    loads = {"a": 0.5, "b": 0.7, "c": 0.0, "d": 0.7}
    s = _with_loads(make_scheduler("portal", "weight-robin", reservation_load=0.0), loads)
    assert _schedule(s, 60) == _smooth_weighted_model({"a": 50, "b": 30, "c": 100, "d": 30}, 60)


def test_weight_robin_goes_on_with_the_candidates_that_stay(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(make_scheduler("portal", "weight-robin", reservation_load=0.0), {"a": 0.5, "b": 0.5})
    assert _schedule(s, 1) == ["a"]
    s.drain("b")
    assert _schedule(s, 3) == ["a", "a", "a"]
    s.undrain("b")
    assert _schedule(s, 4) == ["b", "a", "b", "a"]


@pytest.mark.parametrize(
    ("loads", "weights"),
    [
        ([0.0, 0.5], [100, 50]),
        ([0.25, 0.995], [75, 1]),
        ([0.98, float("inf")], [2, 1]),
        ([0.98, float("nan")], [2, 1]),
        ([0.995, 0.98, 1.5], [1, 2, 1]),
    ],
)
def test_the_scan_form_of_weight_robin_weighs_floor_of_free_capacity(loads: list[float], weights: list[int]) -> None:
    ws = _records(loads)
    wrr = create_strategy("weight-robin")
    expected = _smooth_weighted_model({w.id: weight for w, weight in zip(ws, weights)}, 3 * sum(weights))
    assert [wrr.pick(ws, 0).id for _ in range(3 * sum(weights))] == expected


def test_the_scan_form_of_weight_robin_starts_a_newcomer_at_zero() -> None:
    ws = _records([0.5, 0.5])
    wrr = create_strategy("weight-robin")
    assert [wrr.pick(ws[:1], 0).id, wrr.pick(ws, 0).id, wrr.pick(ws, 0).id] == ["w0", "w0", "w1"]
    assert [wrr.pick(ws[1:], 0).id, wrr.pick(ws, 0).id] == ["w1", "w0"]


def test_a_random_strategy_without_an_rng_makes_its_own() -> None:
    ws = _records([0.5, 0.2, 0.5])
    assert create_strategy("randomly-pick").pick(ws, 0) in ws
    assert create_strategy("two-choices").pick(ws, 0) in ws


def test_weight_robin_starts_a_worker_that_joins_later_at_zero(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(make_scheduler("portal", "weight-robin", reservation_load=0.0), {"a": 0.5, "b": 0.5})
    assert _schedule(s, 2) == ["a", "b"]
    _with_loads(s, {"c": 0.5})
    assert _schedule(s, 3) == ["a", "b", "c"]


def test_a_name_that_is_no_string_is_an_unknown_strategy() -> None:
    with pytest.raises(UnknownStrategy):
        create_strategy(["least-used"])  # type: ignore[arg-type]


def test_a_worker_that_is_a_candidate_again_rejoins_the_rotation_at_the_back(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(make_scheduler("sip", "round-robin"), {"a": 0.1, "b": 0.1, "c": 0.1})
    assert _schedule(s, 2) == ["a", "b"]
    s.drain("a")
    s.undrain("a")
    # the scan form (the next in join order after the last chosen) would say c, a, b
    assert _schedule(s, 4) == ["c", "b", "a", "c"]


def _churn(s: Scheduler, worker: str, times: int) -> None:
    """Make ``worker`` leave and re-enter the candidates ``times`` times (stale index entries pile up)."""
    for _ in range(times):
        s.drain(worker)
        s.undrain(worker)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [("last-used", ["a", "a", "a"]), ("round-robin", ["b", "a", "c"])],
)
def test_rotating_indexes_keep_every_candidate_when_they_drop_stale_entries(
    make_scheduler: MakeScheduler, strategy: str, expected: list[str]
) -> None:
    s = _with_loads(make_scheduler("portal", strategy, reservation_load=0.0), {"a": 0.1, "b": 0.1, "c": 0.1})
    assert _schedule(s) == ["a"]  # the pool and its index exist from the first schedule on
    _churn(s, "c", 100)
    assert _schedule(s, 3) == expected
    s.drain("a")
    assert _schedule(s, 2) == (["b", "b"] if strategy == "last-used" else ["b", "c"])


def test_the_load_index_keeps_every_candidate_when_it_drops_stale_entries(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(make_scheduler("portal", "least-used", reservation_load=0.0), {"a": 0.1, "b": 0.2, "c": 0.5})
    assert _schedule(s) == ["a"]  # the pool and its index exist from the first schedule on
    for i in range(100):
        s.update_load("c", 0.5 + i / 1000)
    assert _schedule(s, 2) == ["a", "a"]
    s.update_load("a", 0.3)
    assert _schedule(s) == ["b"]


def test_randomly_pick_keeps_its_candidates_as_they_leave(make_scheduler: MakeScheduler) -> None:
    s = _with_loads(make_scheduler("recording", "randomly-pick"), {"a": 0.1, "b": 0.1, "c": 0.1})
    _schedule(s)  # the pool and its index exist from the first schedule on
    s.drain("a")
    s.drain("c")
    assert _schedule(s, 3) == ["b", "b", "b"]
    s.undrain("a")
    assert set(_schedule(s, 20)) == {"a", "b"}


def test_last_used_keeps_its_candidates_in_join_order_when_it_drops_stale_entries(
    make_scheduler: MakeScheduler,
) -> None:
    s = make_scheduler("portal", "last-used", reservation_load=0.0)
    s.add_worker("a", {})
    s.add_worker("b", {"max_tasks": 1})
    s.add_worker("c", {})
    assert _schedule(s) == ["a"]
    _churn(s, "c", 100)
    s.pick_up("b", ["held"])
    s.lay_down("b", "held")  # b's one reservation fills it: no candidate, though its load allows more
    s.drain("a")
    assert _schedule(s, 2) == ["c", "c"]
