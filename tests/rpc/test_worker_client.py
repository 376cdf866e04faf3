"""The cluster-worker client against a fake cluster manager, on both transports.

No real time passes: the worker sleeps through a :class:`SteppedSleep` and the test lets each turn
of its loops through (``step``), then checks exactly what the worker sent (a recording transport)
and what the manager saw.  Each loop has its own delay, which names it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from rpc import RpcUnavailable, ServiceError, rpc_method
from rpc.settings import WorkerSettings
from rpc.worker import ClusterWorker
from tests.support.fake_cluster_manager import FakeClusterManager
from tests.support.recording import RecordingTransport, Sent
from tests.support.stepped_sleep import SteppedSleep
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

KEEPALIVE = 0.8
LOAD = 1.0
JOIN = 0.5
KEEPALIVE_TIMEOUT = 1.5
MAX_FAILURES = 3


class _Manager(FakeClusterManager):
    """The fake manager, whose methods named in ``failing`` raise a ``ServiceError`` (recorded as
    ``refused``) instead of answering."""

    def __init__(self, state: str = "in-service") -> None:
        super().__init__(state)
        self.failing: set[str] = set()
        self.refused: list[str] = []

    def _maybe_fail(self, method: str) -> None:
        if method in self.failing:
            self.refused.append(method)
            raise ServiceError("unavailable", f"{method} refused")

    @rpc_method
    async def join(self, purpose: str, worker_id: str, info: dict[str, Any]) -> str:
        self._maybe_fail("join")
        return await super().join(purpose, worker_id, info)

    @rpc_method
    async def keep_alive(self, worker_id: str) -> str:
        self._maybe_fail("keep_alive")
        return await super().keep_alive(worker_id)

    @rpc_method
    async def report_load(self, worker_id: str, load: float) -> None:
        self._maybe_fail("report_load")
        await super().report_load(worker_id, load)

    @rpc_method
    async def pick_up_tasks(self, worker_id: str, tasks: list[str]) -> None:
        self._maybe_fail("pick_up_tasks")
        await super().pick_up_tasks(worker_id, tasks)


@dataclass
class _World:
    manager: _Manager
    transport: RecordingTransport
    name: str
    sleeps: SteppedSleep
    events: list[tuple[str, list[str]]] = field(default_factory=list)

    def settings(self, **over: Any) -> WorkerSettings:
        fields: dict[str, Any] = dict(
            cluster_name=self.name, keepalive_interval=KEEPALIVE, keepalive_timeout=KEEPALIVE_TIMEOUT,
            keepalive_max_failures=MAX_FAILURES, join_retries=3, join_interval=JOIN, load_report_interval=LOAD)
        fields.update(over)
        return WorkerSettings(**fields)

    def worker(self, *, hooks: bool = True, worker_id: str = "w", load: Callable[[], float] | None = None,
               **settings: Any) -> ClusterWorker:
        async def on_loss(tasks: list[str]) -> None:
            self.events.append(("loss", tasks))

        async def on_recovery() -> None:
            self.events.append(("recovery", []))

        extra: dict[str, Any] = {"load": load} if load is not None else {}
        return ClusterWorker(self.transport, purpose="portal", worker_id=worker_id, info={"max_load": 0.85},
                             settings=self.settings(**settings), sleep=self.sleeps,
                             on_loss=on_loss if hooks else None, on_recovery=on_recovery if hooks else None, **extra)

    async def started(self, worker: ClusterWorker) -> ClusterWorker:
        """``worker`` started, joined at the first attempt, both loops asleep."""
        starting = asyncio.create_task(worker.start())
        await self.sleeps.until(lambda: starting.done() or JOIN in self.sleeps.sleeping(), "joined or retrying")
        assert starting.done(), "the first join failed"
        await starting
        await self.sleeps.asleep(KEEPALIVE)
        await self.sleeps.asleep(LOAD)
        return worker

    def joins(self) -> int:
        return len(self.transport.of("join"))


@pytest.fixture
async def world(transports: TransportFactory) -> _World:
    name = f"cluster-{uuid.uuid4().hex[:6]}"
    manager = _Manager()
    await (await transports.make()).serve(name, manager)
    return _World(manager, RecordingTransport(await transports.make()), name, SteppedSleep())


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], list[str]]]:
    caplog.set_level(logging.DEBUG, logger="switchboard.worker")
    def line(record: logging.LogRecord) -> str:  # the event and its fields but the bound worker_id and purpose
        fields = {k: v for k, v in getattr(record, "fields").items() if k not in ("worker_id", "purpose")}
        return " ".join([getattr(record, "event"), *(f"{k}={v}" for k, v in fields.items())])

    yield lambda: [line(r) for r in caplog.records if r.name == "switchboard.worker"]


# -- joining -----------------------------------------------------------------------------------------


async def test_a_worker_joins_with_its_purpose_id_and_info_and_knows_the_manager_state(
        world: _World, logs: Callable[[], list[str]]) -> None:
    worker = world.worker()
    assert (worker.manager_state, worker.recoveries, worker.tasks) == (None, 0, set())
    await world.started(worker)
    assert world.transport.sent == [
        Sent("call", world.name, "join", {"purpose": "portal", "worker_id": "w", "info": {"max_load": 0.85}},
             2 * KEEPALIVE_TIMEOUT)]
    assert world.manager.joins == [("portal", "w", {"max_load": 0.85})]
    assert (worker.manager_state, worker.recoveries) == ("in-service", 0)
    assert logs() == ["joined_cluster manager_state=in-service attempts=1"]
    assert world.sleeps.sleeping() == [KEEPALIVE, LOAD]
    assert {"keepalive:w", "load:w"} <= {task.get_name() for task in asyncio.all_tasks()}
    await worker.stop()


async def test_a_worker_without_settings_uses_the_defaults() -> None:
    worker = ClusterWorker(RecordingTransport(TransportFactory("local").local.transport("n")), purpose="portal",
                           worker_id="w", info={})
    assert worker.settings == WorkerSettings()


async def test_join_is_retried_every_join_interval_until_the_manager_answers(world: _World) -> None:
    world.manager.failing.add("join")
    worker = world.worker(join_retries=3)
    starting = asyncio.create_task(worker.start())
    assert await world.sleeps.step(JOIN) == JOIN
    world.manager.failing.clear()
    assert await world.sleeps.step(JOIN) is None  # the third attempt joined: start() returned
    await starting
    assert (world.joins(), world.manager.refused, world.sleeps.asked[:2]) == (3, ["join", "join"], [JOIN, JOIN])
    assert world.manager.joins == [("portal", "w", {"max_load": 0.85})]
    await worker.stop()


@pytest.mark.parametrize(("retries", "attempts"), [(3, 3), (1, 1), (0, 1), (-2, 1)])
async def test_join_gives_up_after_join_retries_attempts_with_the_last_error(
        world: _World, retries: int, attempts: int, logs: Callable[[], list[str]]) -> None:
    world.manager.failing.add("join")
    starting = asyncio.create_task(world.worker(join_retries=retries).start())
    assert await world.sleeps.step(JOIN, attempts) is None
    with pytest.raises(RpcUnavailable) as refused:
        await starting
    assert str(refused.value) == "w could not join the cluster manager: join refused"
    assert (world.joins(), world.sleeps.asked) == (attempts, [JOIN] * attempts)
    assert logs()[0] == "join_attempt_failed attempt=1 error=join refused"


async def test_a_worker_that_could_not_join_cannot_be_started_again(world: _World) -> None:
    world.manager.failing.add("join")
    worker = world.worker(join_retries=1)
    starting = asyncio.create_task(worker.start())
    assert await world.sleeps.step(JOIN) is None
    with pytest.raises(RpcUnavailable):
        await starting
    world.manager.failing.clear()
    with pytest.raises(RuntimeError, match="the cluster worker w was stopped; make a new one"):
        await worker.start()
    assert world.joins() == 1


async def test_start_is_idempotent_and_a_stopped_worker_cannot_be_started_again(world: _World) -> None:
    worker = await world.started(world.worker())
    await worker.start()
    await worker.stop()
    with pytest.raises(RuntimeError, match="the cluster worker w was stopped; make a new one"):
        await worker.start()
    assert world.joins() == 1
    assert not {"keepalive:w", "load:w"} & {task.get_name() for task in asyncio.all_tasks()}


# -- keep-alives -------------------------------------------------------------------------------------


async def test_each_keepalive_interval_the_worker_keeps_alive(world: _World) -> None:
    worker = await world.started(world.worker())
    assert await world.sleeps.step(KEEPALIVE, 3) == KEEPALIVE
    assert world.transport.of("keep_alive") == [
        Sent("call", world.name, "keep_alive", {"worker_id": "w"}, KEEPALIVE_TIMEOUT)] * 3
    assert (world.manager.keepalives, world.joins(), worker.recoveries) == (3, 1, 0)
    await worker.stop()


async def test_more_than_max_failed_keepalives_in_a_row_start_a_rejoin(
        world: _World, logs: Callable[[], list[str]]) -> None:
    # only the failed keep-alives can start these rejoins: the manager never says whoareyou
    worker = await world.started(world.worker())
    world.manager.failing.add("keep_alive")
    assert await world.sleeps.step(KEEPALIVE, MAX_FAILURES) == KEEPALIVE
    assert (world.joins(), worker.recoveries) == (1, 0)
    assert await world.sleeps.step(KEEPALIVE) == KEEPALIVE
    assert (world.joins(), worker.recoveries, world.events) == (2, 1, [("recovery", [])])
    assert [m for m in logs() if m.startswith("keepalive")] == [
        f"keepalive_failed failures={n} error=keep_alive refused" for n in (1, 2, 3, 4)]
    assert "cluster_manager_lost failures=4" in logs()
    # the count starts again after a rejoin
    assert await world.sleeps.step(KEEPALIVE, MAX_FAILURES) == KEEPALIVE
    assert (world.joins(), worker.recoveries) == (2, 1)
    assert await world.sleeps.step(KEEPALIVE) == KEEPALIVE
    assert (world.joins(), worker.recoveries) == (3, 2)
    await worker.stop()


async def test_failed_keepalives_count_only_in_a_row(world: _World) -> None:
    worker = await world.started(world.worker())
    for _ in range(3):
        world.manager.failing.add("keep_alive")
        assert await world.sleeps.step(KEEPALIVE, MAX_FAILURES) == KEEPALIVE
        world.manager.failing.clear()
        assert await world.sleeps.step(KEEPALIVE) == KEEPALIVE
    assert world.manager.refused == ["keep_alive"] * 3 * MAX_FAILURES
    assert (world.joins(), worker.recoveries) == (1, 0)
    await worker.stop()


class _CutOff(RecordingTransport):
    """A worker's transport that lost its broker while ``cut`` (as the RabbitMQ one says: not
    connected, and every call fails at once)."""

    cut = False

    @property
    def connected(self) -> bool:
        return not self.cut and self.inner.connected

    async def call(
        self, target: str, method: str, args: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        if self.cut:
            self.sent.append(Sent("call", target, method, args, timeout))
            raise RpcUnavailable("broker unavailable")
        return await super().call(target, method, args, timeout)


async def test_keepalives_that_fail_because_the_worker_lost_the_broker_do_not_count(world: _World) -> None:
    world.transport = _CutOff(world.transport.inner)
    worker = await world.started(world.worker())
    assert isinstance(world.transport, _CutOff)
    world.transport.cut = True
    assert await world.sleeps.step(KEEPALIVE, 4 * MAX_FAILURES) == KEEPALIVE
    assert len(world.transport.of("keep_alive")) == 4 * MAX_FAILURES  # each one was tried
    world.transport.cut = False
    assert await world.sleeps.step(KEEPALIVE) == KEEPALIVE
    # Back: the manager still knows it, nothing was rejoined, no task was given up.
    assert (world.manager.keepalives, world.joins(), worker.recoveries, world.events) == (1, 1, 0, [])
    await worker.stop()


async def test_whoareyou_rejoins_at_once(world: _World, logs: Callable[[], list[str]]) -> None:
    worker = await world.started(world.worker())
    world.manager.workers.clear()
    assert await world.sleeps.step(KEEPALIVE) == KEEPALIVE
    assert [s.method for s in world.transport.sent] == ["join", "keep_alive", "join"]
    assert (worker.recoveries, worker.manager_state, world.events) == (1, "in-service", [("recovery", [])])
    assert "unknown_to_cluster_manager" in logs()
    assert await world.sleeps.step(KEEPALIVE) == KEEPALIVE  # known again: no further rejoin
    assert (world.joins(), worker.recoveries) == (2, 1)
    await worker.stop()


# -- recovery ----------------------------------------------------------------------------------------


async def _lose_manager(world: _World, worker: ClusterWorker, *tasks: str, state: str = "in-service",
                        failing: str = "") -> None:
    """``worker`` takes ``tasks``, then the manager forgets it (and starts failing ``failing``) and
    says ``state`` at the rejoin the next keep-alive starts."""
    for task in tasks:
        await worker.add_task(task)
    await wait_until(lambda: world.manager.picked == list(tasks), what="the tasks at the manager")
    if failing:
        world.manager.failing.add(failing)
    world.manager.workers.clear()
    world.manager.state = state
    assert await world.sleeps.step(KEEPALIVE) == KEEPALIVE


async def test_a_fresh_manager_gets_every_task_re_reported_and_nothing_is_lost(world: _World) -> None:
    worker = await world.started(world.worker())
    await _lose_manager(world, worker, "b", "a", state="initializing")
    assert world.transport.sent[-1] == Sent("call", world.name, "pick_up_tasks", {"worker_id": "w", "tasks": ["a", "b"]})
    assert world.manager.picked[-2:] == ["a", "b"]
    assert (worker.tasks, worker.recoveries, worker.manager_state) == ({"a", "b"}, 1, "initializing")
    assert world.events == [("recovery", [])]
    await worker.stop()


async def test_a_fresh_manager_and_no_tasks_means_nothing_to_re_report(world: _World) -> None:
    worker = await world.started(world.worker())
    await _lose_manager(world, worker, state="initializing")
    assert [s.method for s in world.transport.sent] == ["join", "keep_alive", "join"]
    assert world.events == [("recovery", [])]
    await worker.stop()


async def test_a_re_report_that_fails_is_logged_and_recovery_goes_on(
        world: _World, logs: Callable[[], list[str]]) -> None:
    worker = await world.started(world.worker())
    await _lose_manager(world, worker, "a", "b", state="initializing", failing="pick_up_tasks")
    assert "tasks_not_reported tasks=2 error=pick_up_tasks refused" in logs()
    assert (worker.tasks, worker.recoveries, world.events) == ({"a", "b"}, 1, [("recovery", [])])
    await worker.stop()


async def test_a_manager_in_service_that_forgot_the_worker_means_its_tasks_are_lost(world: _World) -> None:
    worker = await world.started(world.worker())
    await _lose_manager(world, worker, "b", "a")
    assert world.events == [("loss", ["a", "b"]), ("recovery", [])]
    assert (worker.tasks, worker.recoveries) == (set(), 1)
    assert world.transport.of("pick_up_tasks") == [
        Sent("cast", world.name, "pick_up_tasks", {"worker_id": "w", "tasks": [task]}) for task in ("b", "a")]
    await worker.stop()


async def test_no_loss_is_reported_when_no_task_was_held(world: _World) -> None:
    worker = await world.started(world.worker())
    await _lose_manager(world, worker)
    assert world.events == [("recovery", [])]
    await worker.stop()


async def test_a_worker_without_hooks_recovers_all_the_same(world: _World) -> None:
    worker = await world.started(world.worker(hooks=False))
    await _lose_manager(world, worker, "a")
    assert (worker.tasks, worker.recoveries, world.joins()) == (set(), 1, 2)
    assert await world.sleeps.step(KEEPALIVE) == KEEPALIVE
    await worker.stop()


async def test_a_failing_hook_is_logged_and_neither_stops_the_other_nor_the_loop(
        world: _World, logs: Callable[[], list[str]]) -> None:
    calls: list[str] = []

    async def on_loss(tasks: list[str]) -> None:
        calls.append("loss")
        raise RuntimeError("owner broke")

    async def on_recovery() -> None:
        calls.append("recovery")
        raise RuntimeError("owner broke again")

    worker = ClusterWorker(world.transport, purpose="portal", worker_id="w", info={}, settings=world.settings(),
                           sleep=world.sleeps, on_loss=on_loss, on_recovery=on_recovery)
    await world.started(worker)
    await _lose_manager(world, worker, "a")
    assert calls == ["loss", "recovery"]
    assert ["hook_failed hook=on_loss", "hook_failed hook=on_recovery"] == [m for m in logs() if m.startswith("hook_failed")]
    world.manager.workers.clear()
    assert await world.sleeps.step(KEEPALIVE) == KEEPALIVE  # the loop goes on: a second recovery
    assert (calls, worker.recoveries) == (["loss", "recovery", "recovery"], 2)
    await worker.stop()


async def test_a_rejoin_that_fails_gives_up_for_this_turn_and_keeps_alive_again(
        world: _World, logs: Callable[[], list[str]]) -> None:
    worker = await world.started(world.worker(join_retries=2))
    world.manager.workers.clear()
    world.manager.failing.add("join")
    assert await world.sleeps.step(KEEPALIVE) == JOIN  # recovering: between two join attempts
    assert await world.sleeps.step(JOIN) == JOIN
    assert await world.sleeps.step(JOIN) == KEEPALIVE  # gave up: back to keeping alive
    assert (world.joins(), worker.recoveries, world.events) == (3, 0, [])
    assert "join_failed attempts=2 error=join refused" in logs()
    world.manager.failing.clear()
    assert await world.sleeps.step(KEEPALIVE) == KEEPALIVE
    assert (world.joins(), worker.recoveries, world.events) == (4, 1, [("recovery", [])])
    await worker.stop()


# -- load reports ------------------------------------------------------------------------------------


async def test_the_load_is_reported_at_the_first_check(world: _World) -> None:
    worker = await world.started(world.worker(load=lambda: 0.25))
    assert await world.sleeps.step(LOAD) == LOAD
    assert world.transport.sent[-1] == Sent("call", world.name, "report_load", {"worker_id": "w", "load": 0.25},
                                            KEEPALIVE_TIMEOUT)
    assert world.manager.loads == [0.25]
    await worker.stop()


async def test_an_unchanged_load_is_reported_again_every_tenth_check(world: _World) -> None:
    worker = await world.started(world.worker(load=lambda: 0.25))
    assert await world.sleeps.step(LOAD, 9) == LOAD
    assert world.manager.loads == [0.25]
    assert await world.sleeps.step(LOAD) == LOAD
    assert world.manager.loads == [0.25, 0.25]
    assert await world.sleeps.step(LOAD, 9) == LOAD
    assert world.manager.loads == [0.25, 0.25]
    assert await world.sleeps.step(LOAD) == LOAD
    assert world.manager.loads == [0.25, 0.25, 0.25]
    await worker.stop()


async def test_a_changed_load_is_reported_at_the_next_check_as_a_float(world: _World) -> None:
    values = iter([0.25, 0.5, 0.5, 0.25, 1])
    worker = await world.started(world.worker(load=lambda: next(values)))
    assert await world.sleeps.step(LOAD, 5) == LOAD
    assert world.manager.loads == [0.25, 0.5, 0.25, 1.0]
    last = world.transport.of("report_load")[-1].args
    assert last is not None and type(last["load"]) is float
    await worker.stop()


async def test_the_default_load_is_zero(world: _World) -> None:
    worker = await world.started(world.worker())
    assert await world.sleeps.step(LOAD) == LOAD
    assert world.manager.loads == [0.0]
    await worker.stop()


async def test_a_load_that_cannot_be_measured_is_logged_and_not_counted_as_a_check(
        world: _World, logs: Callable[[], list[str]]) -> None:
    measured = 0

    def load() -> float:
        nonlocal measured
        measured += 1
        if measured == 2:
            raise RuntimeError("no /proc")
        return 0.25

    worker = await world.started(world.worker(load=load))
    assert await world.sleeps.step(LOAD, 10) == LOAD  # checks 1 to 9, and the failed measure
    assert world.manager.loads == [0.25]
    assert await world.sleeps.step(LOAD) == LOAD  # check 10
    assert world.manager.loads == [0.25, 0.25]
    assert "load_not_measured" in logs()
    await worker.stop()


async def test_a_load_report_that_fails_is_sent_again_at_the_next_check(
        world: _World, logs: Callable[[], list[str]]) -> None:
    worker = await world.started(world.worker(load=lambda: 0.25))
    world.manager.failing.add("report_load")
    assert await world.sleeps.step(LOAD) == LOAD
    world.manager.failing.clear()
    assert await world.sleeps.step(LOAD) == LOAD
    assert await world.sleeps.step(LOAD) == LOAD
    assert (len(world.transport.of("report_load")), world.manager.loads) == (2, [0.25])
    assert "load_report_failed error=report_load refused" in logs()
    await worker.stop()


async def test_after_a_rejoin_the_load_is_reported_again_at_once(world: _World) -> None:
    worker = await world.started(world.worker(load=lambda: 0.25))
    assert await world.sleeps.step(LOAD, 2) == LOAD
    world.manager.workers.clear()
    assert await world.sleeps.step(KEEPALIVE) == KEEPALIVE
    assert await world.sleeps.step(LOAD) == LOAD
    assert world.manager.loads == [0.25, 0.25]
    await worker.stop()


# -- tasks and stopping ------------------------------------------------------------------------------


async def test_tasks_are_picked_up_laid_down_and_ended_at_the_manager(world: _World) -> None:
    worker = await world.started(world.worker())
    for task in ("t1", "t2", "t3", "t4"):
        await worker.add_task(task)
    await worker.remove_task("t1")
    await worker.end_task("t2")
    await worker.end_task("t3")
    await worker.end_task("t9")
    assert worker.tasks == {"t4"}
    n = world.name
    assert world.transport.sent[1:] == [
        *(Sent("cast", n, "pick_up_tasks", {"worker_id": "w", "tasks": [t]}) for t in ("t1", "t2", "t3", "t4")),
        Sent("cast", n, "lay_down_task", {"worker_id": "w", "task": "t1"}),
        Sent("cast", n, "unschedule", {"worker_id": "w", "task": "t2"}),
        Sent("cast", n, "unschedule", {"worker_id": "w", "task": "t3"}),
        Sent("cast", n, "unschedule", {"worker_id": "w", "task": "t9"}),
    ]
    await wait_until(lambda: world.manager.picked == ["t1", "t2", "t3", "t4"] and world.manager.laid_down == ["t1"]
                     and world.manager.unscheduled == ["t2", "t3", "t9"])
    await worker.stop()


async def test_a_cast_the_manager_cannot_get_is_logged_not_raised(logs: Callable[[], list[str]]) -> None:
    # in-process only: there a cast to a name nobody serves fails at once (a broker may take it)
    factory = TransportFactory("local")
    transport = RecordingTransport(await factory.make())
    worker = ClusterWorker(transport, purpose="portal", worker_id="w", info={},
                           settings=WorkerSettings(cluster_name=f"nobody-{uuid.uuid4().hex[:6]}"))
    await worker.add_task("t1")
    await worker.end_task("t2")
    assert worker.tasks == {"t1"}
    nobody = f"no service {worker.settings.cluster_name!r}"
    assert logs() == [f"report_not_delivered method=pick_up_tasks error={nobody}",
                      f"report_not_delivered method=unschedule error={nobody}"]
    await worker.stop()
    assert [s.method for s in transport.sent] == ["pick_up_tasks", "unschedule", "quit"]
    assert logs()[-1] == f"quit_not_delivered error=no service {worker.settings.cluster_name!r}"
    await factory.close()


async def test_stop_ends_both_loops_and_says_quit_once(world: _World) -> None:
    worker = await world.started(world.worker())
    await worker.stop()
    assert world.sleeps.sleeping() == []
    assert world.transport.sent[-1] == Sent("cast", world.name, "quit", {"worker_id": "w"})
    await worker.stop()
    assert len(world.transport.of("quit")) == 1
    await wait_until(lambda: world.manager.quits == ["w"])


async def test_stop_without_quit_ends_the_loops_and_tells_the_manager_nothing(world: _World) -> None:
    worker = await world.started(world.worker())
    await worker.stop(quit=False)
    assert world.sleeps.sleeping() == []
    assert [s.method for s in world.transport.sent] == ["join"]


async def test_a_worker_never_started_can_stop(world: _World) -> None:
    worker = world.worker()
    await worker.stop()
    assert world.transport.sent == [Sent("cast", world.name, "quit", {"worker_id": "w"})]


class _SwallowingTransport(RecordingTransport):
    """Its keep-alive call never answers and swallows the cancellation that ends it, as Python 3.11's
    ``asyncio.wait_for`` can when a reply arrives at the same moment as the cancel."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.in_keepalive = asyncio.Event()

    async def call(self, target: str, method: str, args: dict[str, Any] | None = None,
                   timeout: float | None = None) -> Any:
        if method != "keep_alive":
            return await super().call(target, method, args, timeout)
        self.in_keepalive.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            pass
        return "ok"


async def test_stop_ends_a_loop_whose_cancellation_was_swallowed(world: _World) -> None:
    transport = _SwallowingTransport(world.transport.inner)
    worker = ClusterWorker(transport, purpose="portal", worker_id="w", info={}, settings=world.settings(),
                           sleep=world.sleeps)
    await world.started(worker)
    stepping = asyncio.create_task(world.sleeps.step(KEEPALIVE))
    await transport.in_keepalive.wait()
    stopping = asyncio.create_task(worker.stop(quit=False))
    done, _ = await asyncio.wait([stopping], timeout=10)  # it would sleep on for ever, still "cancelling"
    assert done == {stopping}
    await stepping
    assert world.sleeps.sleeping() == []
