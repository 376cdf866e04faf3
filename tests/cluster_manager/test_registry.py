"""The registry alone: changes applied, snapshots taken and restored, on a fake clock."""

from __future__ import annotations

import msgspec
import pytest

from cluster_manager.changes import (
    CHANGE_TYPES,
    AnyChange,
    LoadReported,
    TaskClaimed,
    TaskLaidDown,
    TaskReserved,
    TasksPickedUp,
    WorkerDrained,
    WorkerJoined,
    WorkerRemoved,
)
from cluster_manager.registry import Registry
from scheduler import TaskAlreadyClaimed, TaskExpired
from tests.support.fake_clock import FakeClock


def _registry(clock: FakeClock) -> Registry:
    return Registry(default_reserve_time=60.0, clock=clock)


def test_a_change_survives_its_wire_form() -> None:
    change = TaskReserved("portal", "token-1", "portal-1", 12.5)
    data = msgspec.json.encode(change)
    assert msgspec.json.decode(data, type=CHANGE_TYPES) == change
    assert msgspec.json.decode(data)["kind"] == "reserved"


def test_a_reservation_is_a_duration_counted_on_the_receivers_clock() -> None:
    active_clock, standby_clock = FakeClock(1000.0), FakeClock(5.0)
    active, standby = _registry(active_clock), _registry(standby_clock)
    changes: list[AnyChange] = [
        WorkerJoined("portal-1", "portal", {}, reset=False), TaskReserved("portal", "t", "portal-1", 10.0)
    ]
    for change in changes:
        active.apply(change)
    standby_clock.advance(3.0)  # the standby applies them later, on a clock that has nothing in common
    for change in changes:
        standby.apply(change)
    assert standby.schedulers["portal"].task_view("t") == active.schedulers["portal"].task_view("t")
    standby_clock.advance(9.9)
    standby.check_claim("portal", "t", "portal-1")
    standby_clock.advance(0.2)
    with pytest.raises(TaskExpired):
        standby.check_claim("portal", "t", "portal-1")


def test_a_claim_applied_is_executing_and_cannot_be_claimed_again() -> None:
    registry = _registry(FakeClock())
    registry.apply(WorkerJoined("portal-1", "portal", {}, reset=False))
    registry.apply(TaskReserved("portal", "token-1", "portal-1", 30.0))
    registry.check_claim("portal", "token-1", "portal-1")
    registry.apply(TaskClaimed("portal", "token-1", "portal-1"))
    with pytest.raises(TaskAlreadyClaimed):
        registry.check_claim("portal", "token-1", "portal-1")


def test_a_restored_snapshot_keeps_remaining_times_and_reserve_times() -> None:
    clock = FakeClock()
    registry = _registry(clock)
    for change in (
        WorkerJoined("portal-1", "portal", {"max_load": 0.9}, reset=False),
        WorkerJoined("conference-1", "conference", {}, reset=False),
        LoadReported("portal-1", 0.5),
        TaskReserved("portal", "token-1", "portal-1", 100.0),
        TaskReserved("conference", "room-1", "conference-1", 7.0),
        TasksPickedUp("conference-1", ["room-1", "room-2"]),
        WorkerDrained("portal-1", True),
    ):
        registry.apply(change)
    clock.advance(40.0)
    snapshot = registry.snapshot()

    copy = _registry(clock)
    copy.restore(snapshot)
    assert copy.snapshot() == snapshot
    assert copy.schedulers["portal"].task_view("token-1")["expires_in"] == 60.0  # type: ignore[index]
    # A restored task lingers for its own reserve time once laid down, not the default.
    copy.apply(TaskLaidDown("conference-1", "room-1"))
    assert copy.schedulers["conference"].task_view("room-1")["expires_in"] == 7.0  # type: ignore[index]


def test_a_removal_returns_the_repealed_tasks_and_forgets_the_worker() -> None:
    registry = _registry(FakeClock())
    registry.apply(WorkerJoined("conference-1", "conference", {}, reset=False))
    registry.apply(TasksPickedUp("conference-1", ["room-1"]))
    assert registry.apply(WorkerRemoved("conference-1", "timeout")) == ["room-1"]
    assert "conference-1" not in registry.members
    assert registry.schedulers["conference"].get_scheduled("room-1") is None


def test_only_the_request_that_claimed_a_task_is_recognised_when_delivered_again() -> None:
    registry = _registry(FakeClock())
    registry.apply(WorkerJoined("portal-1", "portal", {}, reset=False))
    registry.apply(TaskReserved("portal", "token-1", "portal-1", 30.0))
    registry.apply(TaskClaimed("portal", "token-1", "portal-1", "portal-1-node/7"))
    copy = _registry(FakeClock())
    copy.restore(registry.snapshot())
    assert registry.claimed_by("portal", "token-1", "portal-1", "portal-1-node/7")
    assert not registry.claimed_by("portal", "token-1", "portal-1", "portal-1-node/8")  # a second login
    assert not registry.claimed_by("portal", "token-1", "portal-1", None)
    assert not registry.claimed_by("portal", "token-1", "portal-2", "portal-1-node/7")
