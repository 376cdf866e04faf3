"""``MediaSessions`` through the controller's RPC: every refusal with its code and exact message, the
exact agent calls, progress notes and ``stream`` notifications, teardown and a lost agent.

The agent here records which session every teardown call ends (and of which kind), can refuse a
session or hold its answer back until the test lets it go.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conference_controller.ids import StreamId, SubscriptionId, TransportId, WorkerId
from rpc import RpcRemoteError, ServiceError, rpc_method
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

from .conftest import Env, controller_settings
from .fakes import FakeAgent, FakeCluster

AV = {"media": {"tracks": [{"type": "audio", "mid": "0", "source": "mic"},
                           {"type": "video", "mid": "1", "source": "camera"}]}}
AUDIO = {"media": {"tracks": [{"type": "audio", "mid": "0", "source": "mic"}]}}


class _Agent(FakeAgent):
    """A fake agent that records teardowns as ``(method, transport, session)``, refuses the session
    ids in ``refuse`` and holds back its answer to those in ``gates`` until their event is set."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.teardowns: list[tuple[str, str, str]] = []
        self.refuse: set[str] = set()
        self.gates: dict[str, asyncio.Event] = {}
        self.started: list[str] = []
        #: The transport named in every ``control`` call.
        self.control_transports: list[str] = []
        #: Teardowns wait for this event, when there is one.
        self.teardown_gate: asyncio.Event | None = None
        #: Every ``publish`` and ``subscribe`` call with all its arguments.
        self.setups: list[tuple[str, dict[str, Any]]] = []

    async def _start(self, session_id: str) -> None:
        self.started.append(session_id)
        if session_id in self.refuse:
            raise ServiceError("busy", "agent busy")
        gate = self.gates.get(session_id)
        if gate is not None:
            await gate.wait()

    @rpc_method
    async def publish(self, transport_id: str, stream_id: str, participant: str, controller: str,
                      info: dict[str, Any]) -> str:
        self.setups.append(("publish", {"transport_id": transport_id, "stream_id": stream_id,
                                        "participant": participant, "controller": controller, "info": info}))
        await self._start(stream_id)
        return await super().publish(transport_id, stream_id, participant, controller, info)

    @rpc_method
    async def subscribe(self, transport_id: str, subscription_id: str, participant: str, controller: str,
                        info: dict[str, Any]) -> str:
        self.setups.append(("subscribe", {"transport_id": transport_id, "subscription_id": subscription_id,
                                          "participant": participant, "controller": controller, "info": info}))
        await self._start(subscription_id)
        return await super().subscribe(transport_id, subscription_id, participant, controller, info)

    @rpc_method
    async def control(self, transport_id: str, session_id: str, operation: str, data: Any) -> str:
        self.control_transports.append(transport_id)
        return await super().control(transport_id, session_id, operation, data)

    @rpc_method
    async def unpublish(self, transport_id: str, stream_id: str) -> str:
        self.teardowns.append(("unpublish", transport_id, stream_id))
        if self.teardown_gate is not None:
            await self.teardown_gate.wait()
        return await super().unpublish(transport_id, stream_id)

    @rpc_method
    async def unsubscribe(self, transport_id: str, subscription_id: str) -> str:
        self.teardowns.append(("unsubscribe", transport_id, subscription_id))
        if self.teardown_gate is not None:
            await self.teardown_gate.wait()
        return await super().unsubscribe(transport_id, subscription_id)


async def _agent(env: Env) -> _Agent:
    agent = _Agent(await env.transports.make("agent"), f"webrtc-{uuid.uuid4().hex[:12]}@test", env.worker_settings)
    await agent.start()
    env.agent = agent
    await wait_until(lambda: agent.worker_id in env.cluster.workers, what="the agent joined")
    return agent


async def _refused(env: Env, code: str, message: str, method: str, **args: Any) -> None:
    with pytest.raises(RpcRemoteError) as info:
        await env.call(method, **args)
    assert (info.value.code, info.value.message) == (code, message)


async def _ready_stream(env: Env, pid: str = "p1", stream: str = "s1", transport: str = "t1",
                        info: dict[str, Any] = AV) -> None:
    assert await env.call("publish", participant=pid, stream_id=stream, transport_id=transport, info=info) == {
        "id": stream, "transportId": transport}
    await env.call("on_session_progress", transport_id=transport, session_id=stream, status="ready")


def _errors(env: Env) -> list[Any]:
    """The ``progress error`` notes p1 got."""
    return [note for note in env.portal_a.data("p1", "progress") if note["status"] == "error"]


def _sub(*tracks: tuple[str, str]) -> dict[str, Any]:
    return {"media": {"tracks": [{"type": kind, "from": source} for kind, source in tracks]}}


# -- publish -------------------------------------------------------------------------------------


async def test_publish_refusals_say_exactly_why(env: Env) -> None:
    await _agent(env)
    await env.join("p1")
    await env.join("v1", "viewer")
    await env.join("a1", "audio_only")
    await _refused(env, "bad_arguments", "publish needs media.tracks", "publish", participant="p1", stream_id="s1",
                   transport_id="t1", info={"media": {"tracks": []}})
    await _refused(env, "bad_arguments", "publish needs media.tracks", "publish", participant="p1", stream_id="s1",
                   transport_id="t1", info={})
    await _refused(env, "permission_denied", "role viewer may not publish audio", "publish", participant="v1",
                   stream_id="s1", transport_id="t1", info=AV)
    await _refused(env, "permission_denied", "role audio_only may not publish video", "publish", participant="a1",
                   stream_id="s1", transport_id="t1", info=AV)
    await _ready_stream(env)
    await _refused(env, "bad_arguments", "stream s1 exists already", "publish", participant="p1", stream_id="s1",
                   transport_id="t1", info=AV)
    assert env.cluster.scheduled == [("webrtc", "t1", {"isp": "isp", "region": "region"})]


async def test_a_publication_is_recorded_for_its_owner_and_announced_when_ready(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    assert await env.call("publish", participant="p1", stream_id="s1", transport_id="t1", info=AV) == {
        "id": "s1", "transportId": "t1"}
    room = env.controller.room("room-1")
    assert list(room.state.streams) == ["s1"] and set(env.controller.participant("p1").streams) == {"s1"}
    assert agent.sessions["s1"] == {"transport": "t1", "controller": env.controller.worker_id, "kind": "publish"}
    media = env.controller.room("room-1").state.transports["t1"]
    assert media.sessions == ["s1"] and media.owner == "p1"
    assert env.portal_b.data("p2", "stream") == []
    await env.call("on_session_progress", transport_id="t1", session_id="s1", status="ready")
    await wait_until(lambda: env.portal_b.data("p2", "stream"), what="stream add")
    assert [d["status"] for d in env.portal_b.data("p2", "stream")] == ["add"]
    assert room.state.streams["s1"].ready
    # a second ready announces nothing more
    await env.call("on_session_progress", transport_id="t1", session_id="s1", status="ready")
    await env.call("text", participant="p1", to="all", message="marker")
    await wait_until(lambda: env.portal_b.data("p2", "text"), what="the marker")
    assert [d["status"] for d in env.portal_b.data("p2", "stream")] == ["add"]


async def test_a_publication_the_agent_refuses_is_forgotten(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    agent.refuse.add("s1")
    await _refused(env, "media_error", "media agent publish failed: busy: agent busy", "publish", participant="p1",
                   stream_id="s1", transport_id="t1", info=AV)
    assert env.controller.room("room-1").state.streams == {} and env.controller.participant("p1").streams == []
    assert "t1" not in env.controller.room("room-1").state.transports
    agent.refuse.clear()
    await _ready_stream(env)


async def test_a_participant_that_leaves_during_its_publish_ends_it(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    gate = agent.gates["s1"] = asyncio.Event()
    publish = asyncio.ensure_future(env.call("publish", participant="p1", stream_id="s1", transport_id="t1",
                                             info=AV))
    await wait_until(lambda: agent.started == ["s1"], what="the agent's publish")
    await env.call("leave", participant="p1")
    gate.set()
    with pytest.raises(RpcRemoteError) as info:
        await publish
    assert (info.value.code, info.value.message) == ("media_error", "participant p1 left during publish")
    await wait_until(lambda: agent.teardowns == [("unpublish", "t1", "s1")], what="the teardown")
    assert env.controller.room("room-1").state.streams == {}


# -- unpublish, stream control --------------------------------------------------------------------


async def test_unpublish_only_ones_own_stream(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await _ready_stream(env)
    await _refused(env, "unknown_stream", "participant p1 has no stream s9", "unpublish", participant="p1",
                   stream_id="s9")
    await _refused(env, "unknown_stream", "participant p2 has no stream s1", "unpublish", participant="p2",
                   stream_id="s1")
    assert await env.call("unpublish", participant="p1", stream_id="s1") == "ok"
    await wait_until(lambda: agent.teardowns == [("unpublish", "t1", "s1")], what="the teardown")
    await wait_until(lambda: {"id": "s1", "status": "remove"} in env.portal_b.data("p2", "stream"))
    assert env.controller.participant("p1").streams == []


async def test_stream_control_refusals_and_updates(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await _ready_stream(env)
    await _ready_stream(env, stream="s-a", transport="t-a", info=AUDIO)
    await _refused(env, "unknown_stream", "no stream s9 in room room-1", "stream_control", participant="p1",
                   stream_id="s9", operation="pause", data="audio")
    await _refused(env, "permission_denied", "stream s1 belongs to another participant", "stream_control",
                   participant="p2", stream_id="s1", operation="pause", data="audio")
    await _refused(env, "unsupported_operation", "stream operation 'mix' is not supported", "stream_control",
                   participant="p1", stream_id="s1", operation="mix", data="audio")
    await _refused(env, "bad_arguments", "stream s1 has no 'screen' track", "stream_control", participant="p1",
                   stream_id="s1", operation="pause", data="screen")
    await _refused(env, "bad_arguments", "stream s-a has no 'video' track", "stream_control", participant="p1",
                   stream_id="s-a", operation="pause", data="video")
    assert agent.controls == []
    assert await env.call("stream_control", participant="p1", stream_id="s1", operation="pause", data="video") == "ok"
    assert await env.call("stream_control", participant="p1", stream_id="s1", operation="play", data="video") == "ok"
    assert agent.controls == [("s1", "pause", "video"), ("s1", "play", "video")]
    assert agent.control_transports == ["t1", "t1"]
    await wait_until(lambda: len(env.portal_b.data("p2", "stream")) == 4, what="the updates")
    assert env.portal_b.data("p2", "stream")[2:] == [
        {"id": "s1", "status": "update", "data": {"field": "video.status", "value": "inactive"}},
        {"id": "s1", "status": "update", "data": {"field": "video.status", "value": "active"}}]


async def test_stream_control_of_a_stream_not_yet_ready_tells_only_the_agent(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await env.call("publish", participant="p1", stream_id="s1", transport_id="t1", info=AV)
    assert await env.call("stream_control", participant="p1", stream_id="s1", operation="pause", data="audio") == "ok"
    assert agent.controls == [("s1", "pause", "audio")]
    await env.call("text", participant="p1", to="all", message="marker")
    await wait_until(lambda: env.portal_b.data("p2", "text"), what="the marker")
    assert env.portal_b.data("p2", "stream") == []
    record = env.controller.room("room-1").state.streams["s1"]
    assert [t.status for t in record.tracks] == ["inactive", "active"]


# -- subscribe -----------------------------------------------------------------------------------


async def test_subscribe_refusals_say_exactly_why(env: Env) -> None:
    await _agent(env)
    await env.join("p1")
    await env.join("a1", "audio_only", portal=env.portal_b)
    await _ready_stream(env)
    await _ready_stream(env, stream="s-a", transport="t-a", info=AUDIO)
    args = {"participant": "p1", "subscription_id": "sub1", "transport_id": "t2"}
    await _refused(env, "bad_arguments", "subscribe needs media.tracks", "subscribe", **args,
                   info={"media": {"tracks": []}})
    await _refused(env, "bad_arguments", "subscribe needs media.tracks", "subscribe", **args, info={})
    await _refused(env, "permission_denied", "role audio_only may not subscribe to video", "subscribe",
                   participant="a1", subscription_id="sub1", transport_id="t2",
                   info=_sub(("audio", "s1"), ("video", "s1")))
    await _refused(env, "unknown_stream", "no stream nope in room room-1", "subscribe", **args,
                   info=_sub(("audio", "s1"), ("audio", "nope")))
    await _refused(env, "unknown_stream", "stream s-a has no video track", "subscribe", **args,
                   info=_sub(("audio", "s-a"), ("video", "s-a")))
    assert await env.call("subscribe", **args, info=_sub(("audio", "s1"))) == {"id": "sub1", "transportId": "t2"}
    await _refused(env, "bad_arguments", "subscription sub1 exists already", "subscribe", **args,
                   info=_sub(("audio", "s1")))


async def test_a_subscription_records_every_stream_it_takes_tracks_from(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await _ready_stream(env)
    await _ready_stream(env, stream="s-a", transport="t-a", info=AUDIO)
    assert await env.call("subscribe", participant="p2", subscription_id="sub1", transport_id="t2",
                          info=_sub(("audio", "s-a"), ("video", "s1-1"), ("audio", "s1"))) == {
        "id": "sub1", "transportId": "t2"}
    record = env.controller.room("room-1").state.subscriptions["sub1"]
    assert set(record.streams) == {"s1", "s-a"} and record.owner == "p2" and record.ready is False
    assert set(env.controller.participant("p2").subscriptions) == {"sub1"}
    assert agent.sessions["sub1"] == {"transport": "t2", "controller": env.controller.worker_id,
                                      "kind": "subscribe"}
    await env.call("on_session_progress", transport_id="t2", session_id="sub1", status="ready")
    assert record.ready is True
    # a stream it takes tracks from ends: so does the subscription, and the agent hears of both
    assert await env.call("unpublish", participant="p1", stream_id="s-a") == "ok"
    assert env.controller.room("room-1").state.subscriptions == {}
    assert env.controller.participant("p2").subscriptions == []
    await wait_until(lambda: len(agent.teardowns) == 2, what="the teardowns")
    assert sorted(agent.teardowns) == [("unpublish", "t-a", "s-a"), ("unsubscribe", "t2", "sub1")]


async def test_a_subscription_the_agent_refuses_is_forgotten(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    await _ready_stream(env)
    agent.refuse.add("sub1")
    await _refused(env, "media_error", "media agent subscribe failed: busy: agent busy", "subscribe",
                   participant="p1", subscription_id="sub1", transport_id="t2", info=_sub(("audio", "s1")))
    assert env.controller.room("room-1").state.subscriptions == {}
    assert env.controller.participant("p1").subscriptions == []
    assert "t2" not in env.controller.room("room-1").state.transports


@pytest.mark.parametrize("ending", ["leave", "unpublish"])
async def test_a_subscription_whose_owner_or_stream_ends_during_setup_is_ended(env: Env, ending: str) -> None:
    agent = await _agent(env)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await _ready_stream(env)
    gate = agent.gates["sub1"] = asyncio.Event()
    subscribing = asyncio.ensure_future(env.call("subscribe", participant="p2", subscription_id="sub1",
                                                 transport_id="t2", info=_sub(("audio", "s1"))))
    await wait_until(lambda: agent.started == ["s1", "sub1"], what="the agent's subscribe")
    if ending == "leave":
        await env.call("leave", participant="p2")
    else:
        await env.call("unpublish", participant="p1", stream_id="s1")
    gate.set()
    with pytest.raises(RpcRemoteError) as info:
        await subscribing
    assert (info.value.code, info.value.message) == ("media_error", "subscription sub1 ended during setup")
    await wait_until(lambda: ("unsubscribe", "t2", "sub1") in agent.teardowns, what="the teardown")
    assert env.controller.room("room-1").state.subscriptions == {}


# -- unsubscribe, subscription control -------------------------------------------------------------


async def test_unsubscribe_and_subscription_control_only_for_ones_own(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await _ready_stream(env)
    await env.call("subscribe", participant="p2", subscription_id="sub1", transport_id="t2",
                   info=_sub(("video", "s1")))
    for method, extra in (("unsubscribe", {}), ("subscription_control", {"operation": "pause", "data": "video"})):
        await _refused(env, "unknown_subscription", "participant p2 has no subscription nope", method,
                       participant="p2", subscription_id="nope", **extra)
        await _refused(env, "unknown_subscription", "participant p1 has no subscription sub1", method,
                       participant="p1", subscription_id="sub1", **extra)
    await _refused(env, "unsupported_operation", "subscription operation 'mix' is not supported",
                   "subscription_control", participant="p2", subscription_id="sub1", operation="mix", data=None)
    for operation, data in (("pause", "video"), ("play", "audio"), ("update", {"parameters": {"framerate": 15}})):
        assert await env.call("subscription_control", participant="p2", subscription_id="sub1", operation=operation,
                              data=data) == "ok"
    assert agent.controls == [("sub1", "pause", "video"), ("sub1", "play", "audio"),
                              ("sub1", "update", {"parameters": {"framerate": 15}})]
    assert agent.control_transports == ["t2", "t2", "t2"]
    env.controller.room("room-1").state.transports.pop("t2")  # its agent forgot the transport
    await _refused(env, "unknown_transport", "transport t2 is gone", "subscription_control", participant="p2",
                   subscription_id="sub1", operation="pause", data="video")
    assert await env.call("unsubscribe", participant="p2", subscription_id="sub1") == "ok"
    assert env.controller.room("room-1").state.subscriptions == {}
    assert env.controller.participant("p2").subscriptions == []


async def test_unsubscribe_tells_the_agent(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    await _ready_stream(env)
    await env.call("subscribe", participant="p1", subscription_id="sub1", transport_id="t2",
                   info=_sub(("video", "s1")))
    assert await env.call("unsubscribe", participant="p1", subscription_id="sub1") == "ok"
    await wait_until(lambda: agent.teardowns == [("unsubscribe", "t2", "sub1")], what="the teardown")
    assert "t2" not in env.controller.room("room-1").state.transports


# -- signaling and progress ------------------------------------------------------------------------


async def test_signaling_only_on_ones_own_transport(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await env.call("publish", participant="p1", stream_id="s1", transport_id="t1", info=AV)
    await _refused(env, "unknown_transport", "participant p1 has no transport t9", "session_signaling",
                   participant="p1", transport_id="t9", signaling={"type": "candidate"})
    await _refused(env, "unknown_transport", "participant p2 has no transport t1", "session_signaling",
                   participant="p2", transport_id="t1", signaling={"type": "candidate"})
    assert await env.call("session_signaling", participant="p1", transport_id="t1",
                          signaling={"type": "candidate", "candidate": "c"}) == "ok"
    assert agent.signals == [("t1", {"type": "candidate", "candidate": "c"})]


async def test_progress_notes_are_exact_and_unknown_ones_ignored_or_refused(env: Env) -> None:
    await _agent(env)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await env.call("publish", participant="p1", stream_id="s1", transport_id="t1", info=AV)
    await env.call("on_session_progress", transport_id="t9", session_id="s1", status="ready")  # unknown: ignored
    await env.call("on_session_progress", transport_id="t1", status="soac", data={"type": "answer"})
    await env.call("on_session_progress", transport_id="t1", session_id="s1", status="soac", data="x")
    await env.call("on_session_progress", transport_id="t1", status="ready")  # no session: only the note
    await _refused(env, "bad_arguments", "unknown progress status 'weird'", "on_session_progress",
                   transport_id="t1", session_id="s1", status="weird")
    await wait_until(lambda: len(env.portal_a.data("p1", "progress")) == 3, what="the notes")
    assert env.portal_a.data("p1", "progress") == [
        {"id": "t1", "status": "soac", "data": {"type": "answer"}},
        {"id": "t1", "sessionId": "s1", "status": "soac", "data": "x"},
        {"id": "t1", "status": "ready"}]
    assert not env.controller.room("room-1").state.streams["s1"].ready
    assert env.portal_b.data("p2", "progress") == []


async def test_an_error_ends_the_session_or_every_session_of_the_transport(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await _ready_stream(env)
    await _ready_stream(env, "p2", "s5", "t5")
    # sub1 over t1 takes p2's s5: it does not end with a stream of t1
    await env.call("subscribe", participant="p1", subscription_id="sub1", transport_id="t1",
                   info=_sub(("audio", "s5")))
    await env.call("publish", participant="p1", stream_id="s2", transport_id="t1", info=AUDIO)
    await env.call("on_session_progress", transport_id="t1", session_id="s2", status="error")
    room = env.controller.room("room-1")
    assert sorted(room.state.streams) == ["s1", "s5"] and sorted(room.state.subscriptions) == ["sub1"]
    await env.call("on_session_progress", transport_id="t1", status="error", data="ice failed")
    assert list(room.state.streams) == ["s5"] and room.state.subscriptions == {}
    assert env.controller.participant("p1").subscriptions == []
    await wait_until(lambda: len(_errors(env)) == 2, what="the error notes")
    assert _errors(env) == [
        {"id": "t1", "sessionId": "s2", "status": "error", "data": "media session failed"},
        {"id": "t1", "status": "error", "data": "ice failed"}]
    await wait_until(lambda: len(agent.teardowns) == 3, what="the teardowns")
    assert sorted(agent.teardowns) == [("unpublish", "t1", "s1"), ("unpublish", "t1", "s2"),
                                       ("unsubscribe", "t1", "sub1")]


# -- teardown --------------------------------------------------------------------------------------


async def test_a_participant_that_leaves_ends_its_subscriptions_and_streams(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await _ready_stream(env, "p2", "s2", "t2")
    await _ready_stream(env)
    await _ready_stream(env, stream="s3", transport="t3")
    await env.call("subscribe", participant="p1", subscription_id="sub1", transport_id="t1",
                   info=_sub(("video", "s2")))
    await env.call("subscribe", participant="p1", subscription_id="sub2", transport_id="t1",
                   info=_sub(("audio", "s2")))
    await env.call("leave", participant="p1")
    room = env.controller.room("room-1")
    assert list(room.state.streams) == ["s2"] and room.state.subscriptions == {}
    await wait_until(lambda: len(agent.teardowns) == 4, what="the teardowns")
    assert sorted(agent.teardowns) == [("unpublish", "t1", "s1"), ("unpublish", "t3", "s3"),
                                       ("unsubscribe", "t1", "sub1"), ("unsubscribe", "t1", "sub2")]


async def test_a_lost_agent_ends_its_sessions_with_an_error_note_and_the_participants_stay(env: Env) -> None:
    agent = await _agent(env)
    other = _Agent(await env.transports.make("agent-2"), f"webrtc-other-{uuid.uuid4().hex[:8]}@test",
                   env.worker_settings)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await _ready_stream(env)
    await _ready_stream(env, stream="s0", transport="t1", info=AUDIO)
    await env.call("subscribe", participant="p1", subscription_id="sub1", transport_id="t1",
                   info=_sub(("audio", "s1")))
    # p2's subscription to s1 is on another agent: it ends with s1, and that agent hears of it
    await other.start()
    await agent.worker.stop()
    await wait_until(lambda: agent.worker_id not in env.cluster.workers, what="the agent gone")
    await wait_until(lambda: other.worker_id in env.cluster.workers, what="the other agent")
    await env.call("subscribe", participant="p2", subscription_id="sub2", transport_id="t2",
                   info=_sub(("video", "s1")))
    assert env.controller.room("room-1").state.transports["t2"].agent == other.worker_id
    await env.caller.publish_event("exit.quit", {"purpose": "webrtc", "id": agent.worker_id, "type": "worker"})
    await wait_until(lambda: len(_errors(env)) == 2, what="the error notes")
    # sub1 ended with s1 (taken first, in session order): no note of its own
    assert _errors(env) == [
        {"id": "t1", "sessionId": session, "status": "error", "data": "media agent lost"} for session in ("s0", "s1")]
    room = env.controller.room("room-1")
    assert room.state.streams == {} and room.state.subscriptions == {}
    assert env.controller.participant("p1").streams == []
    assert env.controller.participant("p1").subscriptions == []
    assert env.controller.participant("p2").subscriptions == []
    await wait_until(lambda: other.teardowns == [("unsubscribe", "t2", "sub2")], what="the other's teardown")
    assert agent.teardowns == [] and env.portal_b.data("p2", "progress") == []
    assert "p1" in env.controller.participants and "p2" in env.controller.participants
    await other.stop()


async def test_a_lost_agent_skips_transports_of_participants_gone_and_sessions_already_ended(env: Env) -> None:
    lost = await _agent(env)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await env.join("p3")
    await _ready_stream(env, "p3", "s0", "t0")  # p3's transport comes first on the lost agent
    await _ready_stream(env)  # s1 over t1, on the lost agent
    await env.call("subscribe", participant="p1", subscription_id="sub1", transport_id="t1",
                   info=_sub(("audio", "s1")))
    await lost.worker.stop()
    await wait_until(lambda: lost.worker_id not in env.cluster.workers, what="the agent out of the cluster")
    other = await _agent(env)
    await _ready_stream(env, "p2", "s2", "t2")  # on the other agent
    # sub9 over t1 (the lost agent) takes s2 (the other agent): it ends with t1, not with a stream
    await env.call("subscribe", participant="p1", subscription_id="sub9", transport_id="t1",
                   info=_sub(("video", "s2")))
    assert env.controller.room("room-1").state.transports["t2"].agent == other.worker_id
    before = len(_errors(env))
    # p3 leaves, and the agent is lost before its transport is let go (same turn of the loop)
    await env.controller.leave(env.controller.room("room-1"), "p3", reason="leave")
    await env.controller.sessions.agent_lost(WorkerId(lost.worker_id))
    room = env.controller.room("room-1")
    assert list(room.state.streams) == ["s2"] and room.state.subscriptions == {}
    assert env.controller.participant("p1").subscriptions == []
    assert env.controller.participant("p1").streams == []
    await wait_until(lambda: len(_errors(env)) == before + 2, what="the error notes")
    assert _errors(env)[before:] == [
        {"id": "t1", "sessionId": session, "status": "error", "data": "media agent lost"} for session in ("s1", "sub9")]


# -- the agent's arguments, placement races, what is logged --------------------------------------------


async def test_the_agent_gets_every_argument_of_a_publication_and_a_subscription(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    info = {**AV, "attributes": {"label": "cam"}}
    await _ready_stream(env, info=info)
    await env.call("subscribe", participant="p1", subscription_id="sub1", transport_id="t2",
                   info=_sub(("video", "s1")))
    controller = env.controller.worker_id
    assert agent.setups == [
        ("publish", {"transport_id": "t1", "stream_id": "s1", "participant": "p1", "controller": controller,
                     "info": {**info, "data": False, "transport": None}}),
        ("subscribe", {"transport_id": "t2", "subscription_id": "sub1", "participant": "p1",
                       "controller": controller, "info": {"media": {"tracks": [
                           {"type": "video", "from": "s1", "mid": None, "parameters": None, "format": None}]},
                           "transport": None, "data": None}})]


class _GatedCluster(FakeCluster):
    """Placements of the tasks in ``gates`` wait for their event."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: dict[str, asyncio.Event] = {}
        #: Tasks whose placement is waiting for its gate.
        self.waiting: list[str] = []

    @rpc_method
    async def schedule(self, purpose: str, task: str, preference: Any = None, reserve_time: float | None = None) -> Any:
        gate = self.gates.get(task)
        if gate is not None:
            self.waiting.append(task)
            await gate.wait()
        return await super().schedule(purpose, task, preference, reserve_time)


@pytest.fixture
async def gated(local: TransportFactory) -> AsyncIterator[tuple[Env, _GatedCluster]]:
    env = Env(local, controller_settings())
    cluster = env.cluster = _GatedCluster()
    await env.start()
    yield env, cluster
    await env.stop()


@pytest.mark.parametrize("method", ["publish", "subscribe"])
async def test_a_participant_that_leaves_while_its_transport_is_placed_gets_none(
        gated: tuple[Env, _GatedCluster], method: str) -> None:
    env, cluster = gated
    agent = await _agent(env)
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await _ready_stream(env, "p2", "s2", "t2")
    gate = cluster.gates["t1"] = asyncio.Event()
    if method == "publish":
        call = env.call("publish", participant="p1", stream_id="s1", transport_id="t1", info=AV)
    else:
        call = env.call("subscribe", participant="p1", subscription_id="sub1", transport_id="t1",
                        info=_sub(("audio", "s2")))
    pending = asyncio.ensure_future(call)
    await wait_until(lambda: cluster.waiting == ["t1"], what="the placement")
    await env.call("leave", participant="p1")
    gate.set()
    with pytest.raises(RpcRemoteError) as info:
        await pending
    assert (info.value.code, info.value.message) == ("unknown_participant", "participant p1 left")
    assert "t1" not in env.controller.room("room-1").state.transports
    assert [name for name, _ in agent.setups] == ["publish"]  # s2's only


def _controller_logged(caplog: pytest.LogCaptureFixture, event: str) -> list[tuple[int, dict[str, Any]]]:
    return [(record.levelno, getattr(record, "fields")) for record in caplog.records
            if record.name == "switchboard.controller" and getattr(record, "event", None) == event]


def _with(fields: dict[str, Any], *names: str) -> dict[str, Any]:
    return {name: fields.get(name) for name in names}


async def test_setups_ignored_progress_and_a_lost_agent_are_logged(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="switchboard.controller")
    agent = await _agent(env)
    await env.join("p1")
    await _ready_stream(env)
    await env.call("subscribe", participant="p1", subscription_id="sub1", transport_id="t2",
                   info=_sub(("video", "s1")))
    assert [(level, fields["participant"], _with(fields, "stream", "transport", "agent"))
            for level, fields in _controller_logged(caplog, "publication_started")] == [
        (logging.INFO, "p1", {"stream": "s1", "transport": "t1", "agent": agent.worker_id})]
    assert [(level, fields["participant"], _with(fields, "subscription", "transport", "agent"))
            for level, fields in _controller_logged(caplog, "subscription_started")] == [
        (logging.INFO, "p1", {"subscription": "sub1", "transport": "t2", "agent": agent.worker_id})]
    await env.call("on_session_progress", transport_id="t9", session_id="x", status="ready")
    assert [(level, _with(fields, "transport", "session", "status"))
            for level, fields in _controller_logged(caplog, "progress_ignored")] == [
        (logging.DEBUG, {"transport": "t9", "session": "x", "status": "ready"})]
    await env.controller.sessions.agent_lost(WorkerId(agent.worker_id))
    assert sorted((level, fields["transport"], _with(fields, "agent", "participant"))
                  for level, fields in _controller_logged(caplog, "media_agent_lost")) == [
        (logging.WARNING, transport, {"agent": agent.worker_id, "participant": "p1"}) for transport in ("t1", "t2")]


async def test_the_teardown_tasks_are_named_by_kind_and_session(env: Env) -> None:
    agent = await _agent(env)
    await env.join("p1")
    await _ready_stream(env)
    for sub in ("sub1", "sub2"):
        await env.call("subscribe", participant="p1", subscription_id=sub, transport_id="t2",
                       info=_sub(("video", "s1")))
    gate = agent.teardown_gate = asyncio.Event()
    await env.call("unsubscribe", participant="p1", subscription_id="sub2")
    await env.call("unpublish", participant="p1", stream_id="s1")  # sub1 ends with it
    await wait_until(lambda: len(agent.teardowns) == 3, what="the teardowns")
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert {"subscribe-end:sub2", "publish-end:s1", "subscribe-end:sub1"} <= names
    gate.set()
