"""Grouping on a fake clock: repeats and related faults within the window become one alert."""

from __future__ import annotations

from alerts import Fault, Grouper
from tests.support.fake_clock import FakeClock


def _fault(subject: str, summary: str = "", *, group: str = "", kind: str = "worker_lost") -> Fault:
    return Fault(kind=kind, subject=subject, group=group, summary=summary or f"{subject} lost")  # type: ignore[arg-type]


def test_a_hundred_repeats_within_the_window_are_one_alert_with_their_count() -> None:
    clock = FakeClock()
    grouper = Grouper(5.0, max_groups=10, max_listed=3, clock=clock)
    for i in range(100):
        assert grouper.add(_fault("w1", f"failure {i}", kind="handler_failed")) == []
        clock.advance(0.04)
    assert grouper.due() == []  # 4 s into a 5 s window
    clock.advance(1.5)
    [alert] = grouper.due()
    assert alert.count == 100
    assert [f.summary for f in alert.faults] == ["failure 0", "failure 1", "failure 2"]
    assert alert.title == "failure 0 (+99 related)"
    assert len(grouper) == 0 and grouper.due() == []


def test_a_lost_worker_and_its_failover_share_the_group_others_do_not() -> None:
    clock = FakeClock()
    grouper = Grouper(2.0, max_groups=10, max_listed=10, clock=clock)
    grouper.add(_fault("c1", "controller c1 lost", group="c1"))
    clock.advance(1.0)
    grouper.add(_fault("c1", "failover of c1: 2 moved", group="c1", kind="failover"))
    grouper.add(_fault("p1", "portal p1 lost"))
    assert grouper.next_deadline() == clock.now + 1.0
    clock.advance(1.0)
    [alert] = grouper.due()
    assert alert.group == "c1" and alert.count == 2
    assert [f.kind for f in alert.faults] == ["worker_lost", "failover"]
    clock.advance(1.0)
    [other] = grouper.due()
    assert other.group == "worker_lost:p1" and other.count == 1


def test_a_fault_after_the_window_opens_a_new_alert() -> None:
    clock = FakeClock()
    grouper = Grouper(1.0, max_groups=10, max_listed=10, clock=clock)
    grouper.add(_fault("w1"))
    clock.advance(1.0)
    assert len(grouper.due()) == 1
    grouper.add(_fault("w1"))
    assert grouper.due() == []
    clock.advance(1.0)
    assert [a.count for a in grouper.due()] == [1]


def test_too_many_open_groups_send_the_oldest_early() -> None:
    clock = FakeClock()
    grouper = Grouper(10.0, max_groups=2, max_listed=10, clock=clock)
    assert grouper.add(_fault("a")) == []
    assert grouper.add(_fault("b")) == []
    [early] = grouper.add(_fault("c"))
    assert early.group == "worker_lost:a"
    assert len(grouper) == 2
    assert sorted(a.group for a in grouper.drain()) == ["worker_lost:b", "worker_lost:c"]
