"""Which room events are webhook events, and the room's hook outbox, in the pure core: seqs in the
order events are applied, a replay numbering them the same, the bound, ``HooksSent`` and webhooks off."""

from __future__ import annotations

from conference_controller import machine
from conference_controller.events import (
    Event, Held, HooksSent, Joined, Left, Resumed, RoomClosed, StreamAdded, StreamRemoved, TakenOver,
)
from contracts.controller import Permission, PublishInfo
from contracts.rooms import RoomConfig
from conference_controller.state import Limits, RoomState, StreamState


def _life() -> list[Event]:
    join = dict(role="presenter", permission=Permission(), portal="portal-1", ticket="t")
    return [
        *machine.decide_open("r", RoomConfig(id="r", name="Room R"), Limits(hook_outbox_max=100), 1, "c1",
                             instance="run1"),
        Joined(participant="p1", user="alice", **join),  # type: ignore[arg-type]
        Joined(participant="p2", user="bob", **join),  # type: ignore[arg-type]
        StreamAdded(stream=StreamState(id="s1", owner="p1", transport_id="tr1", info=PublishInfo())),
        Held(participant="p2", deadline=10.0),
        TakenOver(controller="c2", epoch=2, at=5.0),  # not an event of its own
        Resumed(participant="p2", portal="portal-1", seen=0, new_ticket="t2"),
        Resumed(participant="p2", portal="portal-1", seen=0, new_ticket="t2", retry=True),  # a repeat: none
        StreamRemoved(stream="s1", transport="tr1"),
        StreamRemoved(stream="s1", transport="tr1"),  # gone already: none
        Left(participant="p2", reason="leave"),
        Left(participant="p1", reason="drop"),
        RoomClosed(),
    ]


def _state(events: list[Event]) -> RoomState:
    state = machine.new_room("r")
    machine.apply_all(state, events)
    return state


def test_each_fact_gets_the_rooms_next_seq_in_the_order_applied() -> None:
    state = _state(_life())
    assert state.hooks.instance == "run1"
    assert [(h.seq, h.type, h.data) for h in state.hooks.pending] == [
        (1, "room.started", {"name": "Room R"}),
        (2, "participant.joined", {"participant": "p1", "user": "alice", "role": "presenter"}),
        (3, "participant.joined", {"participant": "p2", "user": "bob", "role": "presenter"}),
        (4, "stream.published", {"stream": "s1", "participant": "p1"}),
        (5, "participant.held", {"participant": "p2", "user": "bob"}),
        (6, "participant.resumed", {"participant": "p2", "user": "bob"}),
        (7, "stream.unpublished", {"stream": "s1", "participant": "p1"}),
        (8, "participant.left", {"participant": "p2", "user": "bob", "reason": "leave"}),
        (9, "participant.left", {"participant": "p1", "user": "alice", "reason": "drop"}),
        (10, "room.finished", {}),
    ]


def test_done_events_leave_the_outbox_and_a_replay_numbers_the_rest_the_same() -> None:
    events = _life()
    events.insert(4, HooksSent(seq=3))
    state = _state(events)
    assert [h.seq for h in state.hooks.pending] == list(range(4, 11))
    assert state.hooks.last_seq == 10
    again = _state(events)  # a rebuild from the same records
    assert again.hooks == state.hooks


def test_the_outbox_is_bounded_and_off_without_endpoints() -> None:
    events = _life()
    bounded = _state([machine.decide_open("r", RoomConfig(id="r"), Limits(hook_outbox_max=3), 1, "c1")[0],
                      *events[1:]])
    assert [h.seq for h in bounded.hooks.pending] == [8, 9, 10]
    assert bounded.hooks.dropped == 7
    off = _state([machine.decide_open("r", RoomConfig(id="r"), Limits(), 1, "c1")[0], *events[1:]])
    assert off.hooks.pending == [] and off.hooks.last_seq == 0
