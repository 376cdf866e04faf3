"""The room core on its own: ``decide_*`` makes events (or a coded error, changing nothing) and
``apply`` writes them; times are passed in.  The outbox, ticket, hold and answer rules."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from conference_controller import machine
from conference_controller.errors import (
    AlreadyJoined,
    HoldExpired,
    InvalidRole,
    ResyncRequired,
    RoomClosed as RoomClosedError,
    RoomFull,
    TicketMismatch,
    UnknownParticipant,
    UnknownTarget,
)
from conference_controller.events import (
    Acked,
    Answered,
    Event,
    Held,
    Left,
    Notified,
    Resumed,
    TakenOver,
    decode_events,
    encode_events,
)
from contracts.controller import ParticipantInit
from contracts.rooms import RoomConfig
from conference_controller.state import Limits, RoomState
from tests.support.hypothesis_profiles import property_settings

CONFIG = {"id": "room-1", "participantLimit": 3, "roles": [
    {"role": "presenter", "publish": {"audio": True, "video": True}, "subscribe": {"audio": True, "video": True}},
    {"role": "viewer", "subscribe": {"audio": True, "video": True}},
]}
RETRY_WINDOW = 30.0
HOLD = 60.0


def room(**limits: Any) -> RoomState:
    state = machine.new_room("room-1")
    bounds = Limits(**{"ticket_retry_window": RETRY_WINDOW, "reconnection_timeout": HOLD, **limits})
    machine.apply_all(state, machine.decide_open("room-1", msgspec.convert(CONFIG, RoomConfig), bounds, 1, "c1"))
    return state


def do(state: RoomState, events: list[Event]) -> list[Event]:
    machine.apply_all(state, events)
    return events


def join(state: RoomState, pid: str, ticket: str = "t0", role: str = "presenter", at: float = 0.0) -> None:
    init = ParticipantInit(id=pid, user=f"user-{pid}", role=role, portal="portal-a")
    do(state, machine.decide_join(state, init, ticket, False, at))


def text(state: RoomState, sender: str, to: str, n: Any, at: float = 0.0) -> list[Event]:
    return do(state, machine.decide_text(state, sender, to, n, at))


def resume(state: RoomState, pid: str, ticket: str, new: str, last_seq: int | None, at: float = 0.0,
           retry_key: str | None = None, portal: str = "portal-b") -> list[Event]:
    return do(state, machine.decide_resume(state, pid, ticket, new, portal, last_seq, retry_key, at))


def seqs(state: RoomState, pid: str) -> list[int]:
    return [m.seq for m in state.participants[pid].outbox.messages]


# -- join, leave, notifications -------------------------------------------------------------------


def test_a_join_tells_the_others_with_their_next_seq() -> None:
    state = room()
    join(state, "p1")
    events = machine.decide_join(state, ParticipantInit(id="p2", user="u2", role="viewer", portal="portal-b"),
                                 "t", True, 5.0)
    assert events[1] == Notified(targets=[("p1", 1)], event="participant",
                                 data={"action": "join", "data": {"id": "p2", "user": "u2", "role": "viewer"}},
                                 at=5.0)
    assert "p2" not in state.participants  # deciding changed nothing
    do(state, events)
    assert (state.participants["p2"].extension, state.participants["p2"].portal) == (True, "portal-b")
    assert seqs(state, "p1") == [1] and seqs(state, "p2") == []


def test_a_join_beyond_the_limit_or_with_an_unknown_role_is_refused_and_changes_nothing() -> None:
    state = room()
    for pid in ("p1", "p2", "p3"):
        join(state, pid)
    before = copy.deepcopy(state)
    with pytest.raises(RoomFull, match="room room-1 is full \\(3 participants\\)"):
        machine.decide_join(state, ParticipantInit(id="p4", user="u", role="viewer", portal="a"), "t", False, 0.0)
    state = room()
    with pytest.raises(InvalidRole, match="role 'guest' is not defined in room room-1"):
        machine.decide_join(state, ParticipantInit(id="p4", user="u", role="guest", portal="a"), "t", False, 0.0)
    assert before.participants.keys() == {"p1", "p2", "p3"}


def test_text_to_all_numbers_each_outbox_on_and_to_one_reaches_only_it() -> None:
    state = room()
    join(state, "p1")
    join(state, "p2")
    text(state, "p1", "all", 1)
    text(state, "p2", "p1", 2)
    assert seqs(state, "p1") == [1, 2, 3] and seqs(state, "p2") == [1]
    assert state.participants["p1"].outbox.messages[-1].data == {"from": "p2", "to": "me", "message": 2}
    with pytest.raises(UnknownTarget, match="target participant does not exist: p9"):
        machine.decide_text(state, "p1", "p9", 3, 0.0)


def test_a_leave_tells_the_others_and_forgets_the_participant() -> None:
    state = room()
    join(state, "p1")
    join(state, "p2")
    events = do(state, machine.decide_leave(state, "p1", "leave", 0.0))
    assert [type(e) for e in events] == [Left, Notified]
    assert list(state.participants) == ["p2"]
    assert machine.decide_leave(state, "p1", "leave", 0.0) == []


# -- the outbox -------------------------------------------------------------------------------------


def test_acks_trim_the_outbox_and_an_ack_past_the_last_seq_stops_there() -> None:
    state = room()
    join(state, "p1")
    for n in range(4):
        text(state, "p1", "p1", n)
    do(state, machine.decide_ack(state, "p1", 3, "portal-a", by_client=False))
    assert seqs(state, "p1") == [4]
    do(state, machine.decide_ack(state, "p1", 99, "portal-a", by_client=False))
    assert (state.participants["p1"].outbox.acked, seqs(state, "p1")) == (4, [])
    assert machine.decide_ack(state, "p1", 4, "portal-a", by_client=False) == []  # nothing new


def test_an_ack_from_another_portal_changes_nothing() -> None:
    state = room()
    join(state, "p1")
    text(state, "p1", "p1", 0)
    assert machine.decide_ack(state, "p1", 1, "portal-b", by_client=True) == []
    assert machine.decide_ack(state, "nobody", 1, "portal-a", by_client=True) == []


def test_a_resume_replays_after_the_seq_given_and_acks_the_rest() -> None:
    state = room()
    join(state, "p1")
    for n in range(3):
        text(state, "p1", "p1", n)
    resume(state, "p1", "t0", "t1", 1)
    assert seqs(state, "p1") == [2, 3] and state.participants["p1"].outbox.acked == 1
    resume(state, "p1", "t1", "t2", 0)  # behind the ack: no gap, the ack stands
    assert seqs(state, "p1") == [2, 3]
    resume(state, "p1", "t2", "t3", None)  # no seq: after the last ack
    assert [m.to_wire() for m in machine.replay_of(state.participants["p1"])] == [
        {"seq": 2, "event": "text", "data": {"from": "p1", "to": "me", "message": 1}},
        {"seq": 3, "event": "text", "data": {"from": "p1", "to": "me", "message": 2}},
    ]


def test_the_count_bound_drops_the_oldest_and_a_resume_before_them_is_a_resync() -> None:
    state = room(outbox_max_messages=2)
    join(state, "p1")
    for n in range(5):
        text(state, "p1", "p1", n)
    assert seqs(state, "p1") == [4, 5]
    with pytest.raises(machine.Rejected) as info:
        machine.decide_resume(state, "p1", "t0", "t1", "portal-b", 1, None, 0.0)
    assert isinstance(info.value.error, ResyncRequired) and info.value.error.message == "missing 2..3"
    assert [type(e) for e in info.value.events] == [Left]
    resume(state, "p1", "t0", "t1", 3)
    assert seqs(state, "p1") == [4, 5]


def test_a_message_is_kept_exactly_max_age_then_a_resume_needing_it_is_a_resync() -> None:
    state = room(outbox_max_age=5.0)
    join(state, "p1")
    text(state, "p1", "p1", 1, at=0.0)
    text(state, "p1", "p1", 2, at=3.0)
    probe = copy.deepcopy(state)
    resume(probe, "p1", "t0", "t1", 0, at=5.0)  # max_age old: still kept
    assert seqs(probe, "p1") == [1, 2]
    with pytest.raises(machine.Rejected) as info:
        machine.decide_resume(state, "p1", "t0", "t1", "portal-b", 0, None, 5.5)
    assert info.value.error.message == "missing 1..1"
    resume(state, "p1", "t0", "t1", 1, at=5.5)
    assert seqs(state, "p1") == [2]


def test_the_outbox_never_loses_or_repeats_an_unacked_message() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    @property_settings(150)
    @given(st.integers(1, 6), st.lists(st.tuples(st.sampled_from(["send", "ack", "resume"]), st.integers(0, 30)),
                                       max_size=60))
    def check(bound: int, ops: list[tuple[str, int]]) -> None:
        state = room(outbox_max_messages=bound)
        join(state, "p1")
        sent = acked = 0
        ticket = 0
        for op, arg in ops:
            if op == "send":
                text(state, "p1", "p1", arg)
                sent += 1
            elif op == "ack":
                do(state, machine.decide_ack(state, "p1", arg, "portal-a", by_client=False))
                acked = max(acked, min(arg, sent))
            else:
                seen = min(max(arg, acked), sent)
                first_kept = max(seen, sent - bound) + 1
                try:
                    resume(state, "p1", f"t{ticket}", f"t{ticket + 1}", arg, portal="portal-a")
                except machine.Rejected as rejected:
                    assert rejected.error.message == f"missing {seen + 1}..{first_kept - 1}"
                    return
                ticket += 1
                assert first_kept == seen + 1
                assert seqs(state, "p1") == list(range(seen + 1, sent + 1))
                acked = seen
        assert state.participants["p1"].outbox.last_seq == sent

    check()


# -- tickets ---------------------------------------------------------------------------------------


def test_a_relogin_with_the_current_ticket_is_no_retry_and_a_keyed_retry_is_one() -> None:
    state = room()
    join(state, "p1")
    first = resume(state, "p1", "t0", "t1", None, retry_key="key")
    assert isinstance(first[0], Resumed) and first[0].retry is False
    again = resume(state, "p1", "t0", "t1", None, retry_key="key")  # the lost answer, asked again
    assert isinstance(again[0], Resumed) and again[0].retry is True
    assert state.participants["p1"].ticket.current == "t1"
    with pytest.raises(TicketMismatch):
        machine.decide_resume(state, "p1", "t0", "t1", "portal-b", None, "other key", 0.0)
    with pytest.raises(TicketMismatch):
        machine.decide_resume(state, "p1", "t0", "t9", "portal-b", None, "key", 0.0)


def test_a_keyless_retry_is_one_only_while_held() -> None:
    state = room()
    join(state, "p1")
    resume(state, "p1", "t0", "t1", None, portal="portal-a")
    with pytest.raises(TicketMismatch):
        machine.decide_resume(state, "p1", "t0", "t1", "portal-a", None, None, 0.0)
    do(state, machine.decide_hold(state, "p1", "portal-a", 0.0))
    assert resume(state, "p1", "t0", "t1", None)[0] == Resumed(participant="p1", portal="portal-b", seen=0,
                                                                retry=True, new_ticket="t1")


def test_a_retry_is_accepted_until_just_before_the_window_ends() -> None:
    state = room()
    join(state, "p1")
    resume(state, "p1", "t0", "t1", None, at=500.0, retry_key="key")
    assert machine.decide_resume(state, "p1", "t0", "t1", "b", None, "key", 500.0 + RETRY_WINDOW - 0.001)
    with pytest.raises(TicketMismatch):
        machine.decide_resume(state, "p1", "t0", "t1", "b", None, "key", 500.0 + RETRY_WINDOW)


def test_the_clients_own_ack_ends_the_retry_and_a_portal_made_ack_does_not() -> None:
    state = room()
    join(state, "p1")
    text(state, "p1", "p1", 0)
    resume(state, "p1", "t0", "t1", 0, retry_key="key", portal="portal-a")
    assert do(state, machine.decide_ack(state, "p1", 1, "portal-a", by_client=False)) == [
        Acked(participant="p1", seq=1, confirm=False)]
    assert machine.decide_resume(state, "p1", "t0", "t1", "portal-a", None, "key", 0.0)
    do(state, machine.decide_ack(state, "p1", 1, "portal-a", by_client=True))
    with pytest.raises(TicketMismatch):
        machine.decide_resume(state, "p1", "t0", "t1", "portal-a", None, "key", 0.0)


def test_a_refresh_rotates_its_exact_repeat_changes_nothing_and_it_ends_a_retry() -> None:
    state = room()
    join(state, "p1")
    resume(state, "p1", "t0", "t1", None, retry_key="key")
    do(state, machine.decide_refresh(state, "p1", "t1", "t2"))
    assert machine.decide_refresh(state, "p1", "t1", "t2") == []
    with pytest.raises(TicketMismatch):
        machine.decide_refresh(state, "p1", "t1", "t3")
    with pytest.raises(TicketMismatch):
        machine.decide_resume(state, "p1", "t0", "t1", "b", None, "key", 0.0)
    with pytest.raises(TicketMismatch):  # a refresh opens no retry
        machine.decide_resume(state, "p1", "t1", "t2", "b", None, None, 0.0)
    with pytest.raises(UnknownParticipant):
        machine.decide_refresh(state, "p9", "t", "u")


# -- holds -----------------------------------------------------------------------------------------


def test_a_hold_carries_its_deadline_and_only_the_current_portal_may_ask_for_it() -> None:
    state = room()
    join(state, "p1")
    assert machine.decide_hold(state, "p1", "portal-b", 10.0) == []
    assert do(state, machine.decide_hold(state, "p1", "portal-a", 10.0)) == [Held(participant="p1",
                                                                                  deadline=10.0 + HOLD)]
    assert machine.decide_hold(state, "p1", "portal-a", 11.0) == []  # held already


def test_a_resume_at_the_hold_deadline_is_too_late_and_the_participant_leaves() -> None:
    state = room()
    join(state, "p1")
    do(state, machine.decide_hold(state, "p1", "portal-a", 0.0))
    assert machine.decide_resume(state, "p1", "t0", "t1", "b", None, None, HOLD - 0.001)
    with pytest.raises(machine.Rejected) as info:
        machine.decide_resume(state, "p1", "t0", "t1", "b", None, None, HOLD)
    assert isinstance(info.value.error, HoldExpired)
    assert info.value.error.message == "participant p1 was held too long"
    assert str(info.value) == "participant p1 was held too long"
    assert [type(e) for e in info.value.events] == [Left]


def test_a_takeover_holds_everyone_and_restarts_every_deadline_from_its_own_clock() -> None:
    state = room()
    join(state, "p1")
    join(state, "p2")
    text(state, "p2", "p2", 0, at=1000.0)
    resume(state, "p2", "t0", "t1", None, at=1000.0, retry_key="k", portal="portal-a")
    do(state, machine.decide_hold(state, "p1", "portal-a", 1000.0))
    do(state, machine.decide_takeover(state, "c2", 2, 7.0))
    p1, p2 = state.participants["p1"], state.participants["p2"]
    assert (state.epoch, state.controller) == (2, "c2")
    assert (p1.hold_deadline, p2.hold_deadline) == (7.0 + HOLD, 7.0 + HOLD)
    assert (p1.connected, p2.connected) == (False, False)  # held until their portals resume them
    assert (p1.ticket.previous_until, p2.ticket.previous_until) == (0.0, 7.0 + RETRY_WINDOW)
    assert [m.at for m in p2.outbox.messages] == [7.0]
    assert [m.to_wire() for m in p2.outbox.messages] == [
        {"seq": 1, "event": "text", "data": {"from": "p2", "to": "me", "message": 0}}]


# -- answers ---------------------------------------------------------------------------------------


def test_the_answers_window_keeps_the_newest_request_ids() -> None:
    state = room(dedupe_window=2)
    join(state, "p1")
    for request, result in (("a", 1), ("b", 2), ("a", 3), ("c", 4)):
        do(state, machine.decide_answer(state, "p1", request, result))
    assert state.participants["p1"].answers == {"a": 3, "c": 4}
    assert machine.decide_answer(state, "p1", None, 1) == []
    assert machine.decide_answer(state, "p9", "x", 1) == []
    assert do(state, machine.decide_answer(state, "p1", "d", {"id": "s"})) == [
        Answered(participant="p1", request="d", result={"id": "s"})]


# -- encoding ---------------------------------------------------------------------------------------


def test_events_and_state_survive_encoding() -> None:
    state = room()
    join(state, "p1")
    events = text(state, "p1", "all", {"nested": [1, "x"]})
    assert decode_events(encode_events(events)) == events
    copy_of = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=RoomState)
    assert copy_of == state
    assert decode_events(encode_events([TakenOver(controller="c", epoch=3, at=1.5)])) == [
        TakenOver(controller="c", epoch=3, at=1.5)]


# -- rules at their edges ----------------------------------------------------------------------------


def test_a_limit_of_one_admits_one_and_zero_or_below_means_no_limit() -> None:
    for limit, admitted in ((1, 1), (0, 4), (-1, 4)):
        state = machine.new_room("room-1")
        config = msgspec.convert({**CONFIG, "participantLimit": limit}, RoomConfig)
        machine.apply_all(state, machine.decide_open("room-1", config, Limits(), 1, "c1"))
        for pid in ("p1", "p2", "p3", "p4"):
            try:
                join(state, pid)
            except RoomFull as error:
                assert error.message == f"room room-1 is full ({limit} participants)"
        assert len(state.participants) == admitted


def test_refusals_of_joins_and_of_strangers_name_their_reason() -> None:
    state = room()
    init = ParticipantInit(id="p1", user="u", role="presenter", portal="portal-a", origin={"isp": "i", "region": "r"})
    do(state, machine.decide_join(state, init, "t0", False, 0.0))
    assert state.participants["p1"].origin == {"isp": "i", "region": "r"}
    with pytest.raises(AlreadyJoined) as joined:
        machine.decide_join(state, init, "t0", False, 0.0)
    assert joined.value.message == "participant p1 has already joined room room-1"
    with pytest.raises(UnknownParticipant) as unknown:
        machine.decide_text(state, "p9", "all", 1, 0.0)
    assert unknown.value.message == "participant p9 has not joined"
    do(state, machine.decide_leave(state, "p1", "leave", 0.0))
    do(state, machine.decide_close(state))
    with pytest.raises(RoomClosedError) as closed:
        machine.decide_join(state, init, "t0", False, 0.0)
    assert closed.value.message == "room room-1 is closed"


def test_the_count_bound_keeps_exactly_the_newest_messages() -> None:
    state = room(outbox_max_messages=2)
    join(state, "p1")
    text(state, "p1", "p1", 1)
    text(state, "p1", "p1", 2)
    assert seqs(state, "p1") == [1, 2]
    text(state, "p1", "p1", 3)
    assert seqs(state, "p1") == [2, 3]


def test_a_resume_after_every_kept_message_aged_out_needs_them_all() -> None:
    state = room(outbox_max_age=5.0)
    join(state, "p1")
    for n in range(3):
        text(state, "p1", "p1", n, at=0.0)
    with pytest.raises(machine.Rejected) as info:
        machine.decide_resume(state, "p1", "t0", "t1", "portal-b", 1, None, 10.0)
    assert info.value.error.message == "missing 2..3"
    assert info.value.events[0] == Left(participant="p1", reason="resync_required")
    assert resume(state, "p1", "t0", "t1", 3, at=10.0)[0] == Resumed(
        participant="p1", portal="portal-b", seen=3, new_ticket="t1", previous_until=10.0 + RETRY_WINDOW)


def test_a_resume_too_late_makes_the_participant_leave_as_hold_expired() -> None:
    state = room()
    join(state, "p1")
    join(state, "p2")
    do(state, machine.decide_hold(state, "p1", "portal-a", 0.0))
    with pytest.raises(machine.Rejected) as info:
        machine.decide_resume(state, "p1", "t0", "t1", "b", None, None, HOLD)
    assert info.value.events == [
        Left(participant="p1", reason="hold_expired"),
        Notified(targets=[("p2", 1)], event="participant", data={"action": "leave", "data": "p1"}, at=HOLD)]


def test_the_hold_timer_makes_only_a_participant_still_held_leave() -> None:
    state = room()
    join(state, "p1")
    join(state, "p2")
    assert machine.decide_hold_over(state, "p1", 70.0) == []  # connected
    assert machine.decide_hold_over(state, "p9", 70.0) == []
    do(state, machine.decide_hold(state, "p1", "portal-a", 0.0))
    assert machine.decide_hold_over(state, "p1", 70.0) == [
        Left(participant="p1", reason="hold_expired"),
        Notified(targets=[("p2", 1)], event="participant", data={"action": "leave", "data": "p1"}, at=70.0)]


def test_a_held_participant_is_not_connected_and_survives_a_snapshot() -> None:
    state = room()
    join(state, "p1")
    do(state, machine.decide_hold(state, "p1", "portal-a", 0.0))
    assert state.participants["p1"].connected is False
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=RoomState) == state


def test_every_accepted_resume_counts_in_the_epoch_a_keyed_retry_keeps_no_key() -> None:
    state = room()
    join(state, "p1")
    assert resume(state, "p1", "t0", "t1", None, retry_key="key", at=2.0)[0] == Resumed(
        participant="p1", portal="portal-b", seen=0, new_ticket="t1", retry_key="key",
        previous_until=2.0 + RETRY_WINDOW)
    assert resume(state, "p1", "t0", "t1", None, retry_key="key", at=3.0)[0] == Resumed(
        participant="p1", portal="portal-b", seen=0, retry=True, new_ticket="t1")
    assert state.participants["p1"].epoch == 2
    assert state.participants["p1"].ticket.retry_key == "key"


def test_a_client_ack_confirms_a_rotation_once_and_only_after_one() -> None:
    state = room()
    join(state, "p1")
    text(state, "p1", "p1", 0)
    assert machine.decide_ack(state, "p1", 1, "portal-a", by_client=True) == [
        Acked(participant="p1", seq=1, confirm=False)]
    resume(state, "p1", "t0", "t1", None, portal="portal-a")  # keyless
    assert do(state, machine.decide_ack(state, "p1", 0, "portal-a", by_client=True)) == [
        Acked(participant="p1", seq=0, confirm=True)]
    assert (state.participants["p1"].ticket.previous, state.participants["p1"].ticket.retry_key) == (None, None)
    assert machine.decide_ack(state, "p1", 0, "portal-a", by_client=True) == []
    resume(state, "p1", "t1", "t2", None, portal="portal-a", retry_key="key")
    do(state, machine.decide_ack(state, "p1", 0, "portal-a", by_client=True))
    assert machine.decide_ack(state, "p1", 0, "portal-a", by_client=True) == []


def test_apply_skips_what_is_gone() -> None:
    state = room()
    join(state, "p1")
    machine.apply_all(state, [Notified(targets=[("p9", 1), ("p1", 1)], event="e", data=None, at=0.0),
                              Left(participant="p9", reason="leave")])
    assert seqs(state, "p1") == [1] and list(state.participants) == ["p1"]


def test_a_notification_to_one_participant() -> None:
    state = room()
    join(state, "p1")
    text(state, "p1", "p1", 0)
    assert machine.decide_notify(state, "p1", "drop", {"why": "x"}, 4.0) == [
        Notified(targets=[("p1", 2)], event="drop", data={"why": "x"}, at=4.0)]
    assert machine.decide_notify(state, "p9", "drop", None, 4.0) == []


def test_a_text_to_all_reaches_everyone_from_its_sender() -> None:
    state = room()
    join(state, "p1")
    join(state, "p2")
    assert text(state, "p2", "all", {"hi": 1}, at=3.0) == [
        Notified(targets=[("p1", 2), ("p2", 1)], event="text", data={"from": "p2", "to": "all", "message": {"hi": 1}},
                 at=3.0)]
