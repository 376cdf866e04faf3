"""A participant's session on its own: its stream and subscription sets, holds, and the ticket rules
(which relogin is a first use, which is a retry, which is refused)."""

from __future__ import annotations

import msgspec
import pytest

from conference_controller import ControllerSettings
from conference_controller.errors import TicketMismatch
from conference_controller.ids import ParticipantId, RoomId, StreamId, SubscriptionId, WorkerId
from conference_controller.logs import EventLog
from conference_controller.messages import Permission
from conference_controller.participant import Participant
from tests.support.fake_clock import FakeClock

RETRY_WINDOW = 30.0


def _participant(ticket: str = "t0", clock: FakeClock | None = None) -> Participant:
    settings = msgspec.convert({"ticket_retry_window": RETRY_WINDOW}, ControllerSettings)
    return Participant(id=ParticipantId("p1"), user="alice", role="presenter", permission=Permission(),
                       room_id=RoomId("room-1"), portal=WorkerId("portal-a"), origin={}, ticket_id=ticket,
                       extension=False, settings=settings, log=EventLog(), clock=clock or FakeClock())


def test_streams_are_added_and_discarded_one_by_one() -> None:
    participant = _participant()
    participant.discard_stream(StreamId("nothing"))
    assert participant.streams == frozenset()
    participant.add_stream(StreamId("s1"))
    participant.add_stream(StreamId("s2"))
    participant.discard_stream(StreamId("s1"))
    assert participant.streams == {"s2"}
    participant.discard_stream(StreamId("s2"))
    assert participant.streams == frozenset()
    participant.add_stream(StreamId("s3"))
    assert participant.streams == {"s3"}


def test_subscriptions_are_added_and_discarded_one_by_one() -> None:
    participant = _participant()
    participant.discard_subscription(SubscriptionId("nothing"))
    assert participant.subscriptions == frozenset()
    participant.add_subscription(SubscriptionId("u1"))
    participant.add_subscription(SubscriptionId("u2"))
    assert participant.subscriptions == {"u1", "u2"}
    participant.discard_subscription(SubscriptionId("u1"))
    assert participant.subscriptions == {"u2"}
    participant.discard_subscription(SubscriptionId("u2"))
    assert participant.subscriptions == frozenset()
    participant.add_subscription(SubscriptionId("u3"))
    assert participant.subscriptions == {"u3"}


def test_a_hold_expires_at_its_deadline_by_the_given_clock() -> None:
    participant = _participant()
    assert participant.hold_expired(now=10**9) is False  # connected: never expired
    participant.hold(100.0)
    assert [participant.hold_expired(now=now) for now in (99.9, 100.0, 100.1)] == [False, True, True]
    participant.reconnect(WorkerId("portal-b"))
    assert (participant.hold_expired(now=10**9), participant.hold_deadline, participant.epoch) == (False, None, 1)


def test_a_relogin_with_the_current_ticket_is_no_retry_and_a_retry_is_one() -> None:
    participant = _participant("t0")
    assert participant.check_resume("t0", "t1", "key") is False
    participant.rotate("t0", "t1", "key")
    assert participant.check_resume("t1", "t2", None) is False
    assert participant.check_resume("t0", "t1", "key") is True  # the lost answer, asked again
    participant.rotate("t0", "t1", "key")  # a retry changes nothing
    assert participant.is_ticket("t1") and not participant.is_ticket("t0")


def test_a_keyless_retry_is_one_only_while_held() -> None:
    clock = FakeClock()
    participant = _participant("t0", clock)
    participant.rotate("t0", "t1", None)
    with pytest.raises(TicketMismatch):
        participant.check_resume("t0", "t1", None)
    participant.hold(clock.now + 60)
    assert participant.check_resume("t0", "t1", None) is True


def test_a_retry_is_accepted_until_just_before_the_window_ends() -> None:
    clock = FakeClock(500.0)
    participant = _participant("t0", clock)
    participant.rotate("t0", "t1", "key")
    clock.now = 500.0 + RETRY_WINDOW - 0.001
    assert participant.check_resume("t0", "t1", "key") is True
    clock.now = 500.0 + RETRY_WINDOW
    with pytest.raises(TicketMismatch):
        participant.check_resume("t0", "t1", "key")
