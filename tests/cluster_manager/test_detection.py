"""Fast failure detection (a worker's service going away) and the grace after the manager's own
broker loss: the tracker and the watch on their own, then through a served manager."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from cluster_manager.detection import DeathWatch
from cluster_manager.liveness import LivenessTracker
from rpc import rpc_method
from tests.support.fake_clock import FakeClock
from tests.support.stepped_sleep import SteppedSleep
from tests.support.waiting import wait_until

from .conftest import MakeCluster

SETTLE = 0.25


# ------------------------------------------------------------------ liveness while cut off


def test_no_sweep_counts_while_deaf_and_a_grace_period_follows_the_reconnection() -> None:
    clock = FakeClock()
    tracker = LivenessTracker(2, clock=clock)
    tracker.track("w")
    assert tracker.sweep() == [] and tracker.missed("w") == 1
    tracker.deaf()
    for _ in range(10):
        assert tracker.sweep() == []
    assert tracker.missed("w") == 1
    tracker.hearing_again(5.0)
    assert tracker.missed("w") == 0  # the sweep it missed before the loss is forgiven too
    clock.advance(4.9)
    for _ in range(10):
        assert tracker.sweep() == []
    assert tracker.missed("w") == 0
    clock.advance(0.1)  # the grace period is over: sweeps count again, from zero
    assert [tracker.sweep() for _ in range(3)] == [[], [], ["w"]]


# ------------------------------------------------------------------ departures


class _Watched:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.tracker = LivenessTracker(3, clock=self.clock)
        self.members: dict[str, object] = {"w1": object(), "w2": object()}
        self.dead: list[str] = []
        self.sleep = SteppedSleep()

        async def on_dead(worker_id: str) -> None:
            self.dead.append(worker_id)

        self.watch = DeathWatch(self.tracker, member_of=self.members.get, on_dead=on_dead,
                                settle=SETTLE, grace=5.0, sleep=self.sleep)


async def test_a_departed_worker_is_dead_once_the_departure_settled() -> None:
    w = _Watched()
    w.watch.departed("w1")
    w.watch.departed("reply.someone")  # not a worker: ignored
    await w.sleep.asleep(SETTLE)
    assert w.dead == []
    assert await w.sleep.step(SETTLE) is None
    assert w.dead == ["w1"]
    assert w.sleep.asked == [SETTLE]


async def test_a_departure_is_not_a_death_when_the_manager_lost_the_broker_meanwhile() -> None:
    w = _Watched()
    w.watch.departed("w1")
    await w.sleep.asleep(SETTLE)
    w.watch.link_changed(False)
    w.watch.link_changed(True)  # even back already: the departure may have been the broker's shutdown
    assert await w.sleep.step(SETTLE) is None
    assert w.dead == []


async def test_a_departure_is_not_a_death_when_the_worker_joined_again() -> None:
    w = _Watched()
    w.watch.departed("w1")
    await w.sleep.asleep(SETTLE)
    w.members["w1"] = object()  # a new registration of the same id
    await w.sleep.step(SETTLE)
    assert w.dead == []


async def test_a_departure_after_the_quit_says_nothing_more_at_info(caplog: pytest.LogCaptureFixture) -> None:
    # One worker stopping: worker_departed, then its quit removed it (worker_removed); the settled
    # departure finding it gone is no event of its own (debug), a rejoin still is (info).
    caplog.set_level(logging.DEBUG, logger="switchboard.cluster_manager")
    w = _Watched()
    w.watch.departed("w1")
    await w.sleep.asleep(SETTLE)
    del w.members["w1"]  # quit
    await w.sleep.step(SETTLE)
    w.watch.departed("w2")
    await w.sleep.asleep(SETTLE)
    w.members["w2"] = object()  # rejoined
    await w.sleep.step(SETTLE)
    ignored = [(r.levelno, getattr(r, "fields")["worker_id"]) for r in caplog.records
               if getattr(r, "event", None) == "departure_ignored"]
    assert sorted(ignored) == [(logging.DEBUG, "w1"), (logging.INFO, "w2")]


# ------------------------------------------------------------------ through the manager


class _Worker:
    @rpc_method
    async def ping(self) -> str:
        return "pong"


async def test_a_worker_whose_service_goes_away_is_removed_before_any_sweep(make_cluster: MakeCluster) -> None:
    # The sweep could remove nobody within this test: only the departure can.
    cluster = await make_cluster(check_alive_interval=3600.0, departure_settle=0.05)
    events = await cluster.watch_exits()
    worker = await cluster.transports.make("conf-gone")
    service = await worker.serve("conf-gone", _Worker())
    await cluster.join("conf-gone", purpose="conference")
    await cluster.join("conf-stays", purpose="conference")

    await service.stop()

    await wait_until(lambda: events, what="exit.quit of the worker that went away")
    assert events == [("exit.quit", {"purpose": "conference", "id": "conf-gone", "type": "worker",
                                     "reason": "connection_lost"})]
    assert await cluster.call("keep_alive", worker_id="conf-gone") == "whoareyou"
    assert [w["id"] for w in await cluster.call("get_workers")] == ["conf-stays"]


async def test_the_manager_cut_off_removes_nobody_and_gives_a_grace_period(make_cluster: MakeCluster) -> None:
    clock = FakeClock()
    cluster = await make_cluster(clock=clock, check_alive_interval=3600.0, check_alive_count=2,
                                 reconnect_grace=5.0)
    events = await cluster.watch_exits()
    await cluster.join("portal-1")
    manager = cluster.manager
    link: Any = manager.transport
    await manager._reaper.sweep()  # one missed sweep before the loss
    link._link_changed(False)
    for _ in range(10):
        clock.advance(1.0)
        await manager._reaper.sweep()
    link._link_changed(True)
    for _ in range(10):
        clock.advance(0.4)
        await manager._reaper.sweep()
    assert events == []
    assert (await cluster.call("get_worker", worker_id="portal-1"))["missed_keepalives"] == 0
    clock.advance(1.1)  # grace over: counting restarts from zero
    await manager._reaper.sweep()
    await manager._reaper.sweep()
    assert events == []
    await manager._reaper.sweep()
    await wait_until(lambda: events, what="exit.quit after the grace period")
    assert events[0][1]["reason"] == "timeout"
