"""The room core's media rules on their own: publications, subscriptions, transports, agent reports
and losses, each decided (exact events, exact refusals) then applied (exact state)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from conference_controller import machine
from conference_controller.errors import (
    InvalidRequest,
    PermissionDenied,
    UnknownStream,
    UnknownSubscription,
    UnsupportedOperation,
)
from conference_controller.events import (
    Event,
    Left,
    Notified,
    RoomClosed,
    StreamAdded,
    StreamReady,
    StreamRemoved,
    SubscriptionRemoved,
    TrackStatus,
    TransportLost,
)
from contracts.controller import ParticipantInit, Permission, PublishInfo, SubscribeInfo
from contracts.rooms import RoomConfig
from conference_controller.state import Limits, RoomState, StreamState, TransportState
from rpc import ServiceError

CONFIG = {"id": "room-1", "roles": [
    {"role": "presenter", "publish": {"audio": True, "video": True}, "subscribe": {"audio": True, "video": True}},
]}
AV = msgspec.convert({"media": {"tracks": [{"type": "audio", "source": "mic"},
                                           {"type": "video", "source": "camera"}]}}, PublishInfo)
AUDIO = msgspec.convert({"media": {"tracks": [{"type": "audio", "source": "mic"}]}}, PublishInfo)


def room(*people: str) -> RoomState:
    state = machine.new_room("room-1")
    machine.apply_all(state, machine.decide_open("room-1", msgspec.convert(CONFIG, RoomConfig),
                                                 Limits(), 1, "c1"))
    for pid in people:
        init = ParticipantInit(id=pid, user=f"user-{pid}", role="presenter", portal="portal-a")
        machine.apply_all(state, machine.decide_join(state, init, "t0", False, 0.0))
    return state


def do(state: RoomState, events: list[Event]) -> list[Event]:
    machine.apply_all(state, events)
    return events


def refused(error: type[ServiceError], message: str, decide: Any, *args: Any, **kwargs: Any) -> None:
    with pytest.raises(error) as info:
        decide(*args, **kwargs)
    assert info.value.message == message


def subscribe_info(*sources: tuple[str, str]) -> SubscribeInfo:
    return msgspec.convert({"media": {"tracks": [{"type": kind, "from": source} for kind, source in sources]}},
                           SubscribeInfo)


def publish(state: RoomState, pid: str, stream: str, transport: str, info: PublishInfo = AV,
            agent: str = "agent-1", ready: bool = True) -> None:
    do(state, machine.decide_publish(state, pid, stream, transport, agent, info))
    if ready:
        do(state, machine.decide_progress(state, transport, stream, "ready", None, 0.0))


def subscribe(state: RoomState, pid: str, subscription: str, transport: str, *sources: tuple[str, str],
              agent: str = "agent-2", ready: bool = True) -> None:
    do(state, machine.decide_subscribe(state, pid, subscription, transport, agent, subscribe_info(*sources)))
    if ready:
        do(state, machine.decide_progress(state, transport, subscription, "ready", None, 0.0))


def last_seq(state: RoomState, pid: str) -> int:
    return state.participants[pid].outbox.last_seq


# -- stream control --------------------------------------------------------------------------------


def test_pausing_one_track_sets_only_its_status_and_tells_everyone() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1")
    events = do(state, machine.decide_stream_control(state, "p1", "s1", "pause", "video", 4.0))
    update = {"id": "s1", "status": "update", "data": {"field": "video.status", "value": "inactive"}}
    assert events == [TrackStatus(stream="s1", kind="video", status="inactive"),
                      Notified(targets=[("p1", 4), ("p2", 2)], event="stream", data=update, at=4.0)]
    assert [(t.type, t.status) for t in state.streams["s1"].tracks] == [("audio", "active"), ("video", "inactive")]
    do(state, machine.decide_stream_control(state, "p1", "s1", "play", "video", 5.0))
    assert [(t.type, t.status) for t in state.streams["s1"].tracks] == [("audio", "active"), ("video", "active")]


def test_controlling_a_stream_not_yet_ready_tells_nobody() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1", ready=False)
    assert machine.decide_stream_control(state, "p1", "s1", "pause", "audio", 0.0) == [
        TrackStatus(stream="s1", kind="audio", status="inactive")]


def test_stream_control_refusals_name_their_reason() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1", info=AUDIO)
    control = machine.decide_stream_control
    refused(UnknownStream, "no stream s9 in room room-1", control, state, "p1", "s9", "pause", "audio", 0.0)
    refused(PermissionDenied, "stream s1 belongs to another participant", control, state, "p2", "s1", "pause",
            "audio", 0.0)
    refused(UnsupportedOperation, "stream operation 'mute' is not supported", control, state, "p1", "s1", "mute",
            "audio", 0.0)
    refused(InvalidRequest, "stream s1 has no 'video' track", control, state, "p1", "s1", "pause", "video", 0.0)
    refused(InvalidRequest, "stream s1 has no 'data' track", control, state, "p1", "s1", "pause", "data", 0.0)


# -- subscriptions -----------------------------------------------------------------------------------


def test_subscriptions_are_kept_by_id_with_their_owner_and_transport() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1")
    subscribe(state, "p2", "u1", "t2", ("audio", "s1"))
    subscribe(state, "p2", "u2", "t2", ("video", "s1-1"), ready=False)
    assert list(state.subscriptions) == ["u1", "u2"]
    assert (state.subscriptions["u1"].ready, state.subscriptions["u2"].ready) == (True, False)
    assert state.subscriptions["u1"].ready is True
    assert (state.subscriptions["u1"].streams, state.subscriptions["u2"].streams) == (["s1"], ["s1"])
    assert state.participants["p2"].subscriptions == ["u1", "u2"]
    assert state.transports["t2"] == TransportState(id="t2", agent="agent-2", owner="p2", sessions=["u1", "u2"])


def test_unsubscribing_forgets_the_subscription_and_its_transport_once_it_carries_nothing() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1")
    subscribe(state, "p2", "u1", "t2", ("audio", "s1"))
    subscribe(state, "p2", "u2", "t2", ("video", "s1"))
    assert do(state, machine.decide_unsubscribe(state, "p2", "u1")) == [
        SubscriptionRemoved(subscription="u1", transport="t2", agent="agent-2")]
    assert list(state.subscriptions) == ["u2"]
    assert state.participants["p2"].subscriptions == ["u2"]
    assert state.transports["t2"].sessions == ["u2"]
    do(state, machine.decide_unsubscribe(state, "p2", "u2"))
    assert (state.subscriptions, state.participants["p2"].subscriptions) == ({}, [])
    assert list(state.transports) == ["t1"]


def test_only_its_owner_may_unsubscribe() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1")
    subscribe(state, "p2", "u1", "t2", ("audio", "s1"))
    refused(UnknownSubscription, "participant p1 has no subscription u1", machine.decide_unsubscribe, state, "p1",
            "u1")
    refused(UnknownSubscription, "participant p2 has no subscription u9", machine.decide_unsubscribe, state, "p2",
            "u9")


def test_a_subscription_that_exists_already_is_refused() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1")
    subscribe(state, "p2", "u1", "t2", ("audio", "s1"))
    refused(InvalidRequest, "subscription u1 exists already", machine.decide_subscribe, state, "p2", "u1", "t2",
            "agent-2", subscribe_info(("audio", "s1")))


def test_a_source_is_a_stream_id_before_it_is_a_track_id() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s", "t1")  # its tracks: s-0 (audio), s-1 (video)
    publish(state, "p1", "s-0", "t1", info=AUDIO)
    assert machine.stream_of_track(state, "s-0").id == "s-0"
    assert machine.stream_of_track(state, "s-1").id == "s"
    refused(UnknownStream, "no stream s-9 in room room-1", machine.stream_of_track, state, "s-9")


# -- ends -------------------------------------------------------------------------------------------


def test_unpublishing_a_stream_ends_its_subscriptions_and_tells_everyone_when_it() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1")
    subscribe(state, "p2", "u1", "t2", ("audio", "s1"))
    events = do(state, machine.decide_unpublish(state, "p1", "s1", 9.0))
    assert events == [
        StreamRemoved(stream="s1", transport="t1", agent="agent-1"),
        Notified(targets=[("p1", 4), ("p2", 3)], event="stream", data={"id": "s1", "status": "remove"}, at=9.0),
        SubscriptionRemoved(subscription="u1", transport="t2", agent="agent-2"),
    ]
    assert (state.streams, state.subscriptions, state.transports) == ({}, {}, {})
    assert state.participants["p1"].streams == [] and state.participants["p2"].subscriptions == []
    refused(UnknownStream, "participant p1 has no stream s1", machine.decide_unpublish, state, "p1", "s1", 0.0)


def test_a_stream_never_announced_ends_without_a_notification_and_agents_are_told_only_if_asked() -> None:
    state = room("p1")
    publish(state, "p1", "s1", "t1", ready=False)
    assert machine.decide_end_stream(state, "s1", 0.0, tell_agent=False) == [
        StreamRemoved(stream="s1", transport="t1", agent=None)]
    assert machine.decide_end_stream(state, "s1", 0.0, tell_agent=True) == [
        StreamRemoved(stream="s1", transport="t1", agent="agent-1")]
    publish(state, "p1", "s2", "t1")
    subscribe(state, "p1", "u1", "t2", ("audio", "s2"))
    assert machine.decide_end_subscription(state, "u1", tell_agent=False) == [
        SubscriptionRemoved(subscription="u1", transport="t2", agent=None)]
    assert machine.decide_end_subscription(state, "u9", tell_agent=True) == []


def test_removals_of_what_is_gone_change_nothing_but_the_count() -> None:
    state = room("p1")
    before = msgspec.structs.replace(state, applied=state.applied + 3)
    machine.apply_all(state, [StreamRemoved(stream="s9", transport="t9"),
                              SubscriptionRemoved(subscription="u9", transport="t9"), TransportLost(transport="t9")])
    assert msgspec.msgpack.encode(state) == msgspec.msgpack.encode(before)


def test_a_lost_agent_ends_its_sessions_tells_their_owners_and_forgets_its_transports() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1", agent="agent-1")
    subscribe(state, "p2", "u1", "t2", ("audio", "s1"), agent="agent-2")
    publish(state, "p2", "s2", "t3", agent="agent-2")
    subscribe(state, "p1", "u2", "t4", ("audio", "s2"), agent="agent-1")
    subscribe(state, "p1", "u3", "t4", ("video", "s2"), agent="agent-1", ready=False)
    p1, p2 = last_seq(state, "p1"), last_seq(state, "p2")
    events = do(state, machine.decide_agent_lost(state, "agent-2", 7.0))
    assert events == [
        SubscriptionRemoved(subscription="u1", transport="t2", agent=None),
        Notified(targets=[("p2", p2 + 1)], event="progress",
                 data={"id": "t2", "sessionId": "u1", "status": "error", "data": "media agent lost"}, at=7.0),
        TransportLost(transport="t2"),
        StreamRemoved(stream="s2", transport="t3", agent=None),
        Notified(targets=[("p1", p1 + 1), ("p2", p2 + 2)], event="stream", data={"id": "s2", "status": "remove"},
                 at=7.0),
        SubscriptionRemoved(subscription="u2", transport="t4", agent="agent-1"),
        SubscriptionRemoved(subscription="u3", transport="t4", agent="agent-1"),
        Notified(targets=[("p2", p2 + 3)], event="progress",
                 data={"id": "t3", "sessionId": "s2", "status": "error", "data": "media agent lost"}, at=7.0),
        TransportLost(transport="t3"),
    ]
    assert list(state.streams) == ["s1"] and state.subscriptions == {}
    assert list(state.transports) == ["t1"]
    assert machine.decide_agent_lost(state, "agent-2", 8.0) == []


def test_a_lost_agent_tells_nobody_of_sessions_it_ended_already_or_of_an_owner_gone() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1", agent="agent-1")
    subscribe(state, "p1", "u1", "t1", ("audio", "s1"), agent="agent-1")
    do(state, machine.decide_leave(state, "p2", "leave", 0.0))
    p1 = last_seq(state, "p1")
    assert machine.decide_agent_lost(state, "agent-1", 3.0) == [
        StreamRemoved(stream="s1", transport="t1", agent=None),
        Notified(targets=[("p1", p1 + 1)], event="stream", data={"id": "s1", "status": "remove"}, at=3.0),
        SubscriptionRemoved(subscription="u1", transport="t1", agent=None),  # the lost agent is told nothing
        Notified(targets=[("p1", p1 + 2)], event="progress",
                 data={"id": "t1", "sessionId": "s1", "status": "error", "data": "media agent lost"}, at=3.0),
        TransportLost(transport="t1"),
    ]


# -- transports ------------------------------------------------------------------------------------


def test_a_transport_belongs_to_the_participant_that_placed_it() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1")
    assert machine.transport_of(state, "p1", "t1") == TransportState(id="t1", agent="agent-1", owner="p1",
                                                                     sessions=["s1"])
    assert machine.transport_of(state, "p1", "t9") is None
    refused(PermissionDenied, "transport t1 belongs to another participant", machine.transport_of, state, "p2", "t1")


# -- closing ---------------------------------------------------------------------------------------


def test_only_an_idle_open_room_closes() -> None:
    state = room("p1")
    assert machine.decide_close(state) == []
    do(state, machine.decide_leave(state, "p1", "leave", 0.0))
    assert do(state, machine.decide_close(state)) == [RoomClosed()]
    assert state.closed is True
    assert machine.decide_close(state) == []


def test_a_ready_report_of_a_stream_already_ready_announces_nothing_again() -> None:
    state = room("p1")
    publish(state, "p1", "s1", "t1")
    seq = last_seq(state, "p1")
    assert machine.decide_progress(state, "t1", "s1", "ready", None, 1.0) == [
        Notified(targets=[("p1", seq + 1)], event="progress", data={"id": "t1", "status": "ready", "sessionId": "s1"},
                 at=1.0)]
    assert not any(isinstance(e, StreamReady) for e in machine.decide_progress(state, "t1", "s1", "ready", None, 1.0))


# -- views -----------------------------------------------------------------------------------------


def test_the_room_summary_counts_only_ready_streams() -> None:
    state = machine.new_room("room-1")
    config = msgspec.convert({**CONFIG, "name": "Room one", "participantLimit": 5}, RoomConfig)
    machine.apply_all(state, machine.decide_open("room-1", config, Limits(), 1, "c1"))
    for pid in ("p1", "p2"):
        init = ParticipantInit(id=pid, user=f"user-{pid}", role="presenter", portal="portal-a")
        machine.apply_all(state, machine.decide_join(state, init, "t0", False, 0.0))
    publish(state, "p1", "s1", "t1")
    publish(state, "p1", "s2", "t1", ready=False)
    subscribe(state, "p2", "u1", "t2", ("audio", "s1"), ready=False)
    assert state.summary() == {"id": "room-1", "name": "Room one", "participants": 2, "streams": 1,
                               "subscriptions": 1, "participantLimit": 5}


def test_the_admin_view_of_a_held_participant_says_held() -> None:
    state = room("p1")
    do(state, machine.decide_hold(state, "p1", "portal-a", 0.0))
    assert machine.admin_info(state.participants["p1"]) == {
        "id": "p1", "user": "user-p1", "role": "presenter",
        "permission": {"publish": {"audio": True, "video": True}, "subscribe": {"audio": True, "video": True}},
        "portal": "portal-a", "state": "held", "extension": False, "lastSeq": 0, "acked": 0, "outbox": 0,
    }


def test_a_stream_is_announced_when_ready_in_owts_format_and_listed_in_join_results() -> None:
    state = room("p1", "p2")
    info = msgspec.convert({"media": {"tracks": [{"type": "audio", "source": "mic", "mid": "0"},
                                                 {"type": "video", "source": "screen-cast"}]},
                            "attributes": {"label": "cam"}, "data": True}, PublishInfo)
    publish(state, "p1", "s1", "t1", info=info, ready=False)
    publish(state, "p2", "s2", "t2", info=AUDIO, ready=False)
    announced = {
        "id": "s1", "type": "forward",
        "media": {"tracks": [{"id": "s1-0", "type": "audio", "source": "mic", "status": "active", "mid": "0"},
                             {"id": "s1-1", "type": "video", "source": "screen-cast", "status": "active"}]},
        "info": {"owner": "p1", "type": "webrtc", "inViews": [], "attributes": {"label": "cam"}},
        "data": True,
    }
    assert machine.decide_progress(state, "t1", "s1", "ready", None, 2.0) == [
        Notified(targets=[("p1", 2)], event="progress", data={"id": "t1", "status": "ready", "sessionId": "s1"},
                 at=2.0),
        StreamReady(stream="s1"),
        Notified(targets=[("p1", 3), ("p2", 1)], event="stream", data={"id": "s1", "status": "add",
                                                                       "data": announced}, at=2.0),
    ]
    do(state, machine.decide_progress(state, "t1", "s1", "ready", None, 2.0))
    do(state, machine.decide_stream_control(state, "p1", "s1", "pause", "video", 3.0))
    announced["media"]["tracks"][1]["status"] = "inactive"  # type: ignore[index]
    assert machine.join_result(state, state.participants["p2"]) == {
        "permission": {"publish": {"audio": True, "video": True}, "subscribe": {"audio": True, "video": True}},
        "room": {"id": "room-1", "views": [],
                 "participants": [{"id": "p1", "user": "user-p1", "role": "presenter"},
                                  {"id": "p2", "user": "user-p2", "role": "presenter"}],
                 "streams": [announced]},
    }
    do(state, machine.decide_progress(state, "t2", "s2", "ready", None, 4.0))
    assert state.streams["s2"].to_info() == {
        "id": "s2", "type": "forward",
        "media": {"tracks": [{"id": "s2-0", "type": "audio", "source": "mic", "status": "active"}]},
        "info": {"owner": "p2", "type": "webrtc", "inViews": [], "attributes": {}},
    }


# -- publish and subscribe refusals, tracks ------------------------------------------------------------


def test_publish_refusals_name_their_reason() -> None:
    state = room("p1")
    viewer = machine.decide_join(state, ParticipantInit(id="v", user="u", role="presenter", portal="a"), "t", False,
                                 0.0)
    do(state, viewer)
    do(state, machine.decide_permission(state, "v", msgspec.convert({"publish": {"audio": True}}, Permission)))
    publish(state, "p1", "s1", "t1")
    decide = machine.decide_publish
    no_tracks = msgspec.convert({"media": {"tracks": []}}, PublishInfo)
    refused(InvalidRequest, "publish needs media.tracks", decide, state, "p1", "s2", "t1", "agent-1", no_tracks)
    refused(InvalidRequest, "publish needs media.tracks", decide, state, "p1", "s2", "t1", "agent-1", PublishInfo())
    refused(PermissionDenied, "role presenter may not publish video", decide, state, "v", "s2", "t2", "agent-1", AV)
    refused(InvalidRequest, "stream s1 exists already", decide, state, "p1", "s1", "t1", "agent-1", AV)
    refused(PermissionDenied, "transport t1 belongs to another participant", decide, state, "v", "s2", "t1",
            "agent-1", AUDIO)


def test_subscribe_refusals_name_their_reason() -> None:
    state = room("p1", "v")
    do(state, machine.decide_permission(state, "v", msgspec.convert({"subscribe": {"audio": True}},
                                                                    Permission)))
    publish(state, "p1", "s1", "t1", info=AUDIO)
    decide = machine.decide_subscribe
    refused(InvalidRequest, "subscribe needs media.tracks", decide, state, "v", "u1", "t2", "agent-2",
            msgspec.convert({"media": {"tracks": []}}, SubscribeInfo))
    refused(InvalidRequest, "subscribe needs media.tracks", decide, state, "v", "u1", "t2", "agent-2", SubscribeInfo())
    refused(PermissionDenied, "role presenter may not subscribe to video", decide, state, "v", "u1", "t2", "agent-2",
            subscribe_info(("video", "s1")))
    refused(UnknownStream, "stream s1 has no video track", decide, state, "p1", "u1", "t2", "agent-2",
            subscribe_info(("video", "s1")))


def test_a_tracks_id_is_its_mid_or_else_its_index() -> None:
    state = room("p1")
    info = msgspec.convert({"media": {"tracks": [{"type": "audio", "source": "mic", "mid": "7"},
                                                 {"type": "video", "source": "camera"}]}}, PublishInfo)
    publish(state, "p1", "s1", "t1", info=info, ready=False)
    assert [(t.id, t.mid) for t in state.streams["s1"].tracks] == [("s1-7", "7"), ("s1-1", None)]


def test_a_stream_ended_for_another_reason_tells_everyone_and_ends_its_subscriptions() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1")
    publish(state, "p1", "s2", "t1")
    subscribe(state, "p2", "u1", "t2", ("audio", "s1"))
    subscribe(state, "p2", "u2", "t2", ("audio", "s2"))
    p1, p2 = last_seq(state, "p1"), last_seq(state, "p2")
    assert machine.decide_end_stream(state, "s1", 6.0, tell_agent=True) == [
        StreamRemoved(stream="s1", transport="t1", agent="agent-1"),
        Notified(targets=[("p1", p1 + 1), ("p2", p2 + 1)], event="stream", data={"id": "s1", "status": "remove"},
                 at=6.0),
        SubscriptionRemoved(subscription="u1", transport="t2", agent="agent-2"),
    ]


def test_a_participant_leaving_ends_its_subscriptions_then_its_streams_and_tells_their_agents() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1")
    publish(state, "p2", "s2", "t3")
    subscribe(state, "p1", "u1", "t2", ("audio", "s2"))
    subscribe(state, "p2", "u2", "t3", ("audio", "s1"))
    p1, p2 = last_seq(state, "p1"), last_seq(state, "p2")
    assert do(state, machine.decide_leave(state, "p1", "leave", 8.0)) == [
        SubscriptionRemoved(subscription="u1", transport="t2", agent="agent-2"),
        StreamRemoved(stream="s1", transport="t1", agent="agent-1"),
        Notified(targets=[("p1", p1 + 1), ("p2", p2 + 1)], event="stream", data={"id": "s1", "status": "remove"},
                 at=8.0),
        SubscriptionRemoved(subscription="u2", transport="t3", agent="agent-1"),
        Left(participant="p1", reason="leave"),
        Notified(targets=[("p2", p2 + 2)], event="participant", data={"action": "leave", "data": "p1"}, at=8.0),
    ]
    assert list(state.streams) == ["s2"] and state.subscriptions == {}
    assert list(state.transports) == ["t3"] and state.transports["t3"].sessions == ["s2"]


def test_a_participant_leaving_with_a_subscription_to_its_own_stream_ends_it_once() -> None:
    state = room("p1")
    publish(state, "p1", "s1", "t1")
    subscribe(state, "p1", "u1", "t2", ("audio", "s1"))
    events = machine.decide_leave(state, "p1", "leave", 8.0)
    assert [e for e in events if isinstance(e, SubscriptionRemoved)] == [
        SubscriptionRemoved(subscription="u1", transport="t2", agent="agent-2")]


# -- agent reports -------------------------------------------------------------------------------------


def test_an_agents_answer_goes_to_the_transports_owner() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1", ready=False)
    seq = last_seq(state, "p1")
    assert machine.decide_progress(state, "t1", None, "soac", {"type": "answer", "sdp": "v=0"}, 2.0) == [
        Notified(targets=[("p1", seq + 1)], event="progress",
                 data={"id": "t1", "status": "soac", "data": {"type": "answer", "sdp": "v=0"}}, at=2.0)]
    assert machine.decide_progress(state, "t1", None, "ready", None, 2.0) == [
        Notified(targets=[("p1", seq + 1)], event="progress", data={"id": "t1", "status": "ready"}, at=2.0)]
    assert machine.decide_progress(state, "t9", None, "soac", None, 2.0) == []
    refused(InvalidRequest, "unknown progress status 'weird'", machine.decide_progress, state, "t1", None, "weird",
            None, 2.0)


def test_an_agents_error_on_a_session_ends_it_and_its_subscriptions() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1")
    publish(state, "p1", "s2", "t1")
    subscribe(state, "p2", "u1", "t2", ("audio", "s1"))
    p1, p2 = last_seq(state, "p1"), last_seq(state, "p2")
    assert do(state, machine.decide_progress(state, "t1", "s1", "error", "boom", 5.0)) == [
        Notified(targets=[("p1", p1 + 1)], event="progress",
                 data={"id": "t1", "status": "error", "sessionId": "s1", "data": "boom"}, at=5.0),
        StreamRemoved(stream="s1", transport="t1", agent="agent-1"),
        Notified(targets=[("p1", p1 + 2), ("p2", p2 + 1)], event="stream", data={"id": "s1", "status": "remove"},
                 at=5.0),
        SubscriptionRemoved(subscription="u1", transport="t2", agent="agent-2"),
    ]
    assert list(state.streams) == ["s2"]
    assert do(state, machine.decide_progress(state, "t1", "s2", "error", None, 6.0))[0] == Notified(
        targets=[("p1", p1 + 3)], event="progress",
        data={"id": "t1", "status": "error", "sessionId": "s2", "data": "media session failed"}, at=6.0)


def test_an_agents_error_on_a_transport_ends_every_session_on_it_once() -> None:
    state = room("p1", "p2")
    publish(state, "p2", "s9", "t9")
    publish(state, "p1", "s1", "t1")
    subscribe(state, "p1", "a1", "t1", ("audio", "s1"))  # on the same transport, sorted before s1
    subscribe(state, "p1", "b1", "t1", ("audio", "s9"))
    p1, p2 = last_seq(state, "p1"), last_seq(state, "p2")
    assert do(state, machine.decide_progress(state, "t1", None, "error", None, 5.0)) == [
        Notified(targets=[("p1", p1 + 1)], event="progress",
                 data={"id": "t1", "status": "error", "data": "media session failed"}, at=5.0),
        StreamRemoved(stream="s1", transport="t1", agent="agent-1"),
        Notified(targets=[("p1", p1 + 2), ("p2", p2 + 1)], event="stream", data={"id": "s1", "status": "remove"},
                 at=5.0),
        SubscriptionRemoved(subscription="a1", transport="t1", agent="agent-1"),
        SubscriptionRemoved(subscription="b1", transport="t1", agent="agent-1"),
    ]
    assert list(state.transports) == ["t9"]


def test_a_lost_agent_ends_a_subscription_once_whichever_comes_first() -> None:
    state = room("p1", "p2")
    publish(state, "p1", "s1", "t1", agent="agent-1")
    subscribe(state, "p1", "a1", "t1", ("audio", "s1"))  # sorted before s1 on t1
    publish(state, "p2", "s2", "t2", agent="agent-1")
    publish(state, "p2", "s9", "t9", agent="agent-2")
    subscribe(state, "p2", "a2", "t3", ("audio", "s2"), agent="agent-1")  # ended with s2 before t3's turn
    subscribe(state, "p2", "b2", "t3", ("audio", "s9"), agent="agent-1")  # after it on t3
    events = machine.decide_agent_lost(state, "agent-1", 3.0)
    removed = [e.subscription for e in events if isinstance(e, SubscriptionRemoved)]
    assert sorted(removed) == ["a1", "a2", "b2"]
    assert [e.transport for e in events if isinstance(e, TransportLost)] == ["t1", "t2", "t3"]
    do(state, events)
    assert list(state.streams) == ["s9"] and state.subscriptions == {} and list(state.transports) == ["t9"]


def test_apply_records_a_session_on_a_transport_it_does_not_know() -> None:
    state = room("p1")
    stream = StreamState(id="s1", owner="p1", transport_id="t9", info=AUDIO)
    machine.apply(state, StreamAdded(stream=stream))
    assert state.streams == {"s1": stream} and state.transports == {}
    assert state.participants["p1"].streams == ["s1"]
    assert machine.decide_end_stream(state, "s1", 0.0, tell_agent=True) == [
        StreamRemoved(stream="s1", transport="t9", agent=None)]


def test_ending_a_subscription_tells_its_agent_when_asked() -> None:
    state = room("p1")
    publish(state, "p1", "s1", "t1")
    subscribe(state, "p1", "u1", "t2", ("audio", "s1"))
    assert machine.decide_end_subscription(state, "u1", tell_agent=True) == [
        SubscriptionRemoved(subscription="u1", transport="t2", agent="agent-2")]
