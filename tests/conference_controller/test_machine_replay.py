"""The room core's replay property: any sequence of commands, journaled as the live run makes them,
replayed from the journal — from the start or from any snapshot — yields the live state; and
deciding a command (even one that is refused) changes nothing."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from conference_controller import machine
from conference_controller.events import Event, decode_events, encode_events
from contracts.controller import ParticipantInit, PublishInfo, SubscribeInfo
from contracts.rooms import RoomConfig
from conference_controller.state import Limits, RoomState
from rpc import ServiceError
from tests.support.hypothesis_profiles import property_settings

CONFIG = msgspec.convert({"id": "r", "participantLimit": 4, "roles": [
    {"role": "presenter", "publish": {"audio": True, "video": True}, "subscribe": {"audio": True, "video": True}},
    {"role": "viewer", "subscribe": {"audio": True, "video": True}},
]}, RoomConfig)
LIMITS = Limits(outbox_max_messages=4, outbox_max_age=50.0, dedupe_window=3, reconnection_timeout=20.0,
                ticket_retry_window=10.0)
PEOPLE = ["p1", "p2", "p3", "p4", "p5"]
PUBLISH = msgspec.convert({"media": {"tracks": [{"type": "audio", "source": "mic"},
                                                {"type": "video", "source": "camera"}]}}, PublishInfo)

_encode = msgspec.msgpack.Encoder()
_decode = msgspec.msgpack.Decoder(RoomState)

Command = tuple[str, str, int, int]
NAMES = ["join", "leave", "hold", "hold_over", "resume", "refresh", "ack", "text", "text_all", "answer", "publish",
         "ready", "unpublish", "subscribe", "unsubscribe", "error", "agent_lost", "control", "takeover"]
#: How often each command comes up: media ones more, so that streams get ready and are subscribed to.
WEIGHTS = [3, 1, 2, 1, 3, 1, 3, 3, 2, 2, 4, 6, 1, 5, 1, 1, 1, 2, 1]


def _script(rng: random.Random, length: int) -> list[Command]:
    return [(rng.choices(NAMES, WEIGHTS)[0], rng.choice(PEOPLE), rng.randint(0, 12), rng.randint(0, 3))
            for _ in range(length)]


#: Scripts drawn from a seeded generator (Hypothesis picks the seed and length, and shrinks them).
commands = st.builds(_script, st.randoms(use_true_random=False), st.integers(0, 90))


def _decide(state: RoomState, command: Command, at: float) -> Callable[[], list[Event]]:
    """The decision for one generated command (called later, so a refusal can be checked)."""
    name, who, n, k = command
    participant = state.participants.get(who)
    ticket = participant.ticket.current if participant is not None else "none"
    other = PEOPLE[n % 4]
    portal = participant.portal if participant is not None and k else f"portal-{k}"
    stream, subscription, transport = f"s-{who}-{k % 2}", f"u-{who}-{k % 2}", f"t-{who}"
    # Commands that name a stream or subscription pick one that exists (by n), so they do something.
    ready = sorted(s.id for s in state.streams.values() if s.ready) or ["none"]
    subscribe = msgspec.convert({"media": {"tracks": [{"type": "audio", "from": ready[n % len(ready)]}]}},
                                SubscribeInfo)
    waiting = [s.id for s in state.streams.values() if not s.ready] + [
        s.id for s in state.subscriptions.values() if not s.ready]
    sessions = waiting or sorted(state.streams) + sorted(state.subscriptions) or ["none"]
    session = sessions[n % len(sessions)]
    record = state.streams.get(session) or state.subscriptions.get(session)
    session_transport = record.transport_id if record is not None else "none"
    decisions: dict[str, Callable[[], list[Event]]] = {
        "join": lambda: machine.decide_join(state, ParticipantInit(id=who, user=f"u-{who}",
                                                                   role="presenter" if k < 2 else "viewer",
                                                                   portal=f"portal-{k}"), f"{who}-t0", bool(k % 2),
                                            at),
        "leave": lambda: machine.decide_leave(state, who, "leave", at),
        "hold": lambda: machine.decide_hold(state, who, portal, at),
        "hold_over": lambda: machine.decide_hold_over(state, who, at),
        "resume": lambda: machine.decide_resume(state, who, ticket if k else f"{who}-stale", f"{who}-t{n}-{at}",
                                                f"portal-{k}", n if k != 3 else None, "key" if k % 2 else None, at),
        "refresh": lambda: machine.decide_refresh(state, who, ticket, f"{who}-r{n}-{at}"),
        "ack": lambda: machine.decide_ack(state, who, n, portal, by_client=bool(k % 2)),
        "text": lambda: machine.decide_text(state, who, other, n, at),
        "text_all": lambda: machine.decide_text(state, who, "all", n, at),
        "answer": lambda: machine.decide_answer(state, who, f"req-{n % 5}", {"n": n}),
        "publish": lambda: machine.decide_publish(state, who, stream, transport, f"agent-{k % 2}", PUBLISH),
        "ready": lambda: machine.decide_progress(state, session_transport, session, "ready", None, at),
        "unpublish": lambda: machine.decide_unpublish(state, who, stream, at),
        "subscribe": lambda: machine.decide_subscribe(state, who, subscription, transport, f"agent-{k % 2}",
                                                      subscribe),
        "unsubscribe": lambda: machine.decide_unsubscribe(state, who, subscription),
        "error": lambda: machine.decide_progress(state, transport, None if n % 3 == 0 else stream, "error", None,
                                                 at),
        "agent_lost": lambda: machine.decide_agent_lost(state, f"agent-{k % 2}", at),
        "control": lambda: machine.decide_stream_control(state, who, stream, "pause" if n % 2 else "play",
                                                         "audio" if k % 2 else "video", at),
        "takeover": lambda: machine.decide_takeover(state, f"c-{n}", state.epoch + 1, at),
    }
    return decisions[name]


def _live(script: list[Command]) -> tuple[RoomState, list[bytes], list[bytes]]:
    """Run ``script``: the final state, the journal (one record per command that changed
    something) and a snapshot taken before each record."""
    state = machine.new_room("r")
    opened = machine.decide_open("r", CONFIG, LIMITS, 1, "c-0")
    journal = [encode_events(opened)]
    snapshots = [_encode.encode(state)]
    machine.apply_all(state, opened)
    # Most commands need people in the room: four join first (one may be refused later: the limit).
    for step, command in enumerate([("join", who, 0, index) for index, who in enumerate(PEOPLE[:4])] + script):
        at = float(step * 3)
        before = _encode.encode(state)
        decide = _decide(state, command, at)
        try:
            events = decide()
        except machine.Rejected as rejected:
            assert _encode.encode(state) == before, f"{command} changed the state while being refused"
            events = rejected.events
        except ServiceError:
            assert _encode.encode(state) == before, f"{command} changed the state while being refused"
            continue
        assert _encode.encode(state) == before, f"deciding {command} changed the state"
        if not events:
            continue
        snapshots.append(before)
        journal.append(encode_events(events))
        machine.apply_all(state, events)
    return state, journal, snapshots


@property_settings(300)
@given(commands, st.data())
def test_replay_from_any_snapshot_yields_the_live_state(script: list[Command], data: Any) -> None:
    live, journal, snapshots = _live(script)
    start = data.draw(st.integers(0, len(journal) - 1), label="snapshot")
    rebuilt = _decode.decode(snapshots[start])
    for record in journal[start:]:
        machine.apply_all(rebuilt, decode_events(record))
    assert rebuilt == live
    from_scratch = machine.new_room("r")
    for record in journal:
        machine.apply_all(from_scratch, decode_events(record))
    assert from_scratch == live


@property_settings(200)
@given(commands)
def test_seqs_stay_gapless_and_every_kept_message_is_unacked(script: list[Command]) -> None:
    live, _, _ = _live(script)
    for participant in live.participants.values():
        outbox = participant.outbox
        kept = [m.seq for m in outbox.messages]
        assert kept == list(range(outbox.last_seq - len(kept) + 1, outbox.last_seq + 1))
        assert all(seq > outbox.acked for seq in kept)
        assert len(kept) <= LIMITS.outbox_max_messages
        assert len(participant.answers) <= LIMITS.dedupe_window
        assert set(participant.streams) == {s.id for s in live.streams.values() if s.owner == participant.id}
    for subscription in live.subscriptions.values():
        assert set(subscription.streams) <= set(live.streams)
        assert subscription.owner in live.participants
    for transport in live.transports.values():
        sessions = {s.id for s in live.streams.values() if s.transport_id == transport.id} | {
            s.id for s in live.subscriptions.values() if s.transport_id == transport.id}
        assert set(transport.sessions) == sessions and sessions
