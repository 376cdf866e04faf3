"""Property-based tests: random operation sequences against a simple model of the rules.

Invariants checked after every step:

* a task maps to at most one worker, and exactly where the model says;
* an ISP filter is never violated, and a new task goes to a worker the rules allow
  (for ``least-used``/``most-used``: one with the lowest/highest effective load among them);
* an expired reservation is gone;
* a drained worker never gets a new task;
* a removed worker owns nothing.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from scheduler.strategies.rotation import LastUsedIndex

from scheduler import (
    STRATEGY_NAMES,
    NoMatchingWorker,
    NoWorkerAvailable,
    Scheduler,
    SchedulerError,
    TaskAlreadyClaimed,
    TaskExpired,
    TaskOnOtherWorker,
    UnknownTask,
    create_strategy,
)
from tests.support.fake_clock import FakeClock

WORKERS = [f"w{i}" for i in range(5)]
TASKS = [f"t{i}" for i in range(8)]
ISPS = ["a", "b"]
REGIONS = ["x", "y"]
STEP = 0.1
DEFAULT_RESERVE = 4.0


@dataclass
class ModelWorker:
    isps: frozenset[str]
    regions: frozenset[str]
    max_load: float
    load: float = 0.0
    state: str = "available"
    drained: bool = False


@dataclass
class ModelTask:
    worker: str
    reserve: float
    expires_at: float | None  # None: executing


@dataclass
class Model:
    workers: dict[str, ModelWorker] = field(default_factory=dict)
    tasks: dict[str, ModelTask] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)
    #: Reservations of removed workers: task → (that worker's ISPs, when it lapses).
    orphans: dict[str, tuple[frozenset[str], float]] = field(default_factory=dict)

    def covers(self, worker: str, isps: frozenset[str]) -> bool:
        """``worker`` serves every ISP a worker declaring ``isps`` served (the model has no codecs)."""
        theirs = self.workers[worker].isps
        return not theirs or (bool(isps) and isps <= theirs)

    def sweep(self, now: float) -> None:
        for task, record in list(self.tasks.items()):
            if record.expires_at is not None and record.expires_at <= now:
                del self.tasks[task]
                self.expired.add(task)

    def reserved(self, worker: str) -> int:
        return sum(1 for t in self.tasks.values() if t.worker == worker and t.expires_at is not None)

    def effective(self, worker: str) -> float:
        return self.workers[worker].load + self.reserved(worker) * STEP

    def servable(self, worker: str) -> bool:
        w = self.workers[worker]
        return w.state == "available" and not w.drained and w.load < w.max_load

    def allowed(self, isp: str | None, region: str | None) -> tuple[type[SchedulerError] | None, list[str]]:
        """The error a new task must get, or the workers it may go to."""
        if not self.workers:
            return NoWorkerAvailable, []
        matching = [w for w, r in self.workers.items() if isp is None or not r.isps or isp in r.isps]
        if not matching:
            return NoMatchingWorker, []
        candidates = [w for w in matching if self.servable(w) and self.effective(w) < self.workers[w].max_load]
        if not candidates:
            candidates = [w for w in matching if self.servable(w)]
        sweet = [w for w in candidates if region is not None and region in self.workers[w].regions]
        pool = sweet or candidates
        return (None, pool) if pool else (NoWorkerAvailable, [])


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock(0.0)
        self.model = Model()
        self.scheduler: Scheduler

    @initialize(strategy=st.sampled_from(STRATEGY_NAMES), seed=st.integers(0, 100))
    def start(self, strategy: str, seed: int) -> None:
        self.strategy = strategy
        self.scheduler = Scheduler(
            "portal",
            strategy,
            clock=self.clock,
            default_reserve_time=DEFAULT_RESERVE,
            rng=random.Random(seed),
            reservation_load=STEP,
            max_pools=6,
        )

    @rule(
        worker=st.sampled_from(WORKERS),
        isps=st.sets(st.sampled_from(ISPS)),
        regions=st.sets(st.sampled_from(REGIONS)),
        max_load=st.sampled_from([0.5, 0.85]),
    )
    def add_worker(self, worker: str, isps: set[str], regions: set[str], max_load: float) -> None:
        info = {"capacity": {"isps": sorted(isps), "regions": sorted(regions)}, "max_load": max_load}
        self.scheduler.add_worker(worker, info)
        previous = self.model.workers.get(worker)
        self.model.workers[worker] = ModelWorker(frozenset(isps), frozenset(regions), max_load)
        if previous is not None:
            self.model.workers[worker].drained = previous.drained

    @precondition(lambda self: self.model.workers)
    @rule(data=st.data())
    def remove_worker(self, data: st.DataObject) -> None:
        worker = data.draw(st.sampled_from(sorted(self.model.workers)))
        self.model.sweep(self.clock.now)
        owned = sorted(self.scheduler.remove_worker(worker))
        expected = sorted(t for t, r in self.model.tasks.items() if r.worker == worker)
        assert owned == expected
        for task in expected:
            record = self.model.tasks.pop(task)
            if record.expires_at is not None:
                self.model.orphans[task] = (self.model.workers[worker].isps, record.expires_at)
        del self.model.workers[worker]
        assert not self.scheduler.has_worker(worker)
        assert all(self.scheduler.get_scheduled(t) != worker for t in TASKS)

    @precondition(lambda self: self.model.workers)
    @rule(data=st.data(), load=st.sampled_from([0.0, 0.2, 0.45, 0.7, 0.9, 1.3]))
    def update_load(self, data: st.DataObject, load: float) -> None:
        worker = data.draw(st.sampled_from(sorted(self.model.workers)))
        self.scheduler.update_load(worker, load)
        self.model.workers[worker].load = load

    @precondition(lambda self: self.model.workers)
    @rule(data=st.data(), state=st.sampled_from(["available", "unavailable", "warning"]))
    def update_state(self, data: st.DataObject, state: str) -> None:
        worker = data.draw(st.sampled_from(sorted(self.model.workers)))
        self.scheduler.update_state(worker, state)
        self.model.workers[worker].state = state

    @precondition(lambda self: self.model.workers)
    @rule(data=st.data(), drained=st.booleans())
    def drain(self, data: st.DataObject, drained: bool) -> None:
        worker = data.draw(st.sampled_from(sorted(self.model.workers)))
        (self.scheduler.drain if drained else self.scheduler.undrain)(worker)
        self.model.workers[worker].drained = drained

    @rule(
        task=st.sampled_from(TASKS),
        isp=st.sampled_from([None, "a", "b", "c"]),
        region=st.sampled_from([None, "x", "y", "z"]),
        reserve=st.sampled_from([None, 1.0, 2.5, 6.0]),
    )
    def schedule(self, task: str, isp: str | None, region: str | None, reserve: float | None) -> None:
        now = self.clock.now
        self.model.sweep(now)
        reserve_time = DEFAULT_RESERVE if reserve is None else reserve
        known = self.model.tasks.get(task)
        if known is not None:
            assert self.scheduler.schedule(task, {"isp": isp, "region": region}, reserve) == known.worker
            known.reserve = max(known.reserve, reserve_time)
            if known.expires_at is not None:
                known.expires_at = now + known.reserve
            return
        error, allowed = self.model.allowed(isp, region)
        try:
            worker = self.scheduler.schedule(task, {"isp": isp, "region": region}, reserve)
        except SchedulerError as exc:
            assert error is not None and type(exc) is error, (exc, error, allowed)
            return
        assert error is None, (error, worker)
        assert worker in allowed, (worker, allowed)
        record = self.model.workers[worker]
        assert isp is None or not record.isps or isp in record.isps  # the ISP filter holds
        assert not record.drained  # a drained worker gets no new task
        loads = [self.model.effective(w) for w in allowed]
        if self.strategy == "least-used":
            assert self.model.effective(worker) == min(loads)
        elif self.strategy == "most-used":
            assert self.model.effective(worker) == max(loads)
        self.model.tasks[task] = ModelTask(worker, reserve_time, now + reserve_time)
        self.model.expired.discard(task)
        self.model.orphans.pop(task, None)

    @precondition(lambda self: self.model.workers)
    @rule(data=st.data(), tasks=st.lists(st.sampled_from(TASKS), max_size=3))
    def pick_up(self, data: st.DataObject, tasks: list[str]) -> None:
        worker = data.draw(st.sampled_from(sorted(self.model.workers)))
        self.model.sweep(self.clock.now)
        self.scheduler.pick_up(worker, tasks)
        for task in tasks:
            known = self.model.tasks.get(task)
            reserve = known.reserve if known is not None else DEFAULT_RESERVE
            self.model.tasks[task] = ModelTask(worker, reserve, None)
            self.model.expired.discard(task)
            if known is None:
                self.model.orphans.pop(task, None)

    @precondition(lambda self: self.model.workers)
    @rule(data=st.data(), task=st.sampled_from(TASKS))
    def lay_down(self, data: st.DataObject, task: str) -> None:
        worker = data.draw(st.sampled_from(sorted(self.model.workers)))
        self.model.sweep(self.clock.now)
        self.scheduler.lay_down(worker, task)
        known = self.model.tasks.get(task)
        if known is not None and known.worker == worker:
            if known.expires_at is None:
                known.expires_at = self.clock.now + known.reserve
            else:
                del self.model.tasks[task]

    @precondition(lambda self: self.model.workers)
    @rule(data=st.data(), task=st.sampled_from(TASKS))
    def unschedule(self, data: st.DataObject, task: str) -> None:
        worker = data.draw(st.sampled_from(sorted(self.model.workers)))
        self.model.sweep(self.clock.now)
        self.scheduler.unschedule(worker, task)
        known = self.model.tasks.get(task)
        if known is not None and known.worker == worker:
            del self.model.tasks[task]

    @precondition(lambda self: self.model.workers)
    @rule(data=st.data(), task=st.sampled_from(TASKS))
    def claim(self, data: st.DataObject, task: str) -> None:
        worker = data.draw(st.sampled_from(sorted(self.model.workers)))
        self.model.sweep(self.clock.now)
        known = self.model.tasks.get(task)
        orphan = self.model.orphans.get(task)
        expected: type[SchedulerError] | None
        if known is None and orphan is not None:
            isps, lapses = orphan
            expected = (TaskExpired if lapses <= self.clock.now
                        else None if self.model.covers(worker, isps) else TaskOnOtherWorker)
        elif known is None:
            expected = TaskExpired if task in self.model.expired else UnknownTask
        elif known.worker != worker and not (
            known.expires_at is not None and self.model.covers(worker, self.model.workers[known.worker].isps)
        ):
            expected = TaskOnOtherWorker
        elif known.expires_at is None:
            expected = TaskAlreadyClaimed
        else:
            expected = None
        try:
            self.scheduler.claim(task, worker)
        except SchedulerError as exc:
            assert type(exc) is expected
            return
        assert expected is None
        if known is None:  # a removed worker's reservation, taken by a sibling
            del self.model.orphans[task]
            self.model.tasks[task] = ModelTask(worker, DEFAULT_RESERVE, None)
            return
        known.worker, known.expires_at = worker, None

    @rule(seconds=st.sampled_from([0.5, 1.0, 2.5, 5.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def expire(self) -> None:
        before = set(self.model.tasks)
        self.model.sweep(self.clock.now)
        dropped = before - set(self.model.tasks)
        assert dropped <= set(self.scheduler.expire())

    @invariant()
    def tasks_map_exactly_as_the_model_says(self) -> None:
        if not hasattr(self, "scheduler"):
            return
        self.model.sweep(self.clock.now)
        owners: dict[str, str] = {}
        for view in self.scheduler.workers_view():
            for task in view["tasks"]:
                assert task not in owners, f"{task} on {owners[task]} and {view['id']}"
                owners[task] = view["id"]
            assert view["reserved"] == self.model.reserved(view["id"])
            assert view["effective_load"] == self.model.effective(view["id"])
        assert owners == {t: r.worker for t, r in self.model.tasks.items()}
        for task in TASKS:
            expected = self.model.tasks.get(task)
            assert self.scheduler.get_scheduled(task) == (expected.worker if expected else None)
            task_view = self.scheduler.task_view(task)
            assert (task_view is None) == (expected is None)
            if expected is not None and task_view is not None:
                executing = expected.expires_at is None
                assert task_view["state"] == ("executing" if executing else "reserved")
                if not executing:
                    assert expected.expires_at is not None
                    assert abs(task_view["expires_in"] - (expected.expires_at - self.clock.now)) < 1e-9
        assert set(self.scheduler.worker_ids()) == set(self.model.workers)

    @invariant()
    def every_candidate_index_agrees_with_a_scan_of_its_pool(self) -> None:
        """White-box: the incremental indexes choose what a scan of the pool would."""
        if not hasattr(self, "scheduler"):
            return
        for pool in self.scheduler._pools._pools.values():
            candidates = [w for w in pool.members if w.candidate]
            assert pool.index.count == len(candidates)
            assert all(w.alive and pool.key in w.pools for w in pool.members)
            if self.strategy in ("least-used", "most-used"):
                picked = pool.index.pick(self.clock.now)
                if not candidates:
                    assert picked is None
                else:
                    expected = create_strategy(self.strategy).pick(
                        sorted(candidates, key=lambda w: w.join_seq), self.clock.now
                    )
                    assert picked is expected
            elif self.strategy == "last-used":
                index = pool.index
                assert isinstance(index, LastUsedIndex)
                last = index._last
                if last is not None and last.candidate and last.epoch == index._last_epoch:
                    assert last in pool.members
            elif self.strategy in ("randomly-pick", "two-choices"):
                picked = pool.index.pick(self.clock.now)
                assert (picked is None) if not candidates else (picked in candidates)


#: Under ``make mutate`` (mutmut runs the tests in its own process) a failure is all that counts, not the
#: smallest one: shrinking and explaining it took ~30 s for each mutant this test kills.
_UNDER_MUTMUT = "mutmut" in sys.modules or bool(os.environ.get("MUTANT_UNDER_TEST"))
_PHASES = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target] if _UNDER_MUTMUT else list(Phase)

SchedulerMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=_PHASES,
)
test_random_operation_sequences_keep_every_scheduler_invariant = SchedulerMachine.TestCase
