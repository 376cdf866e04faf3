"""Publications and subscriptions through a (fake) media agent; permissions; no agent."""

from __future__ import annotations

from typing import Any

import pytest

from rpc import RpcRemoteError
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

from .conftest import Env
from .fakes import FakeAgent

AV = {"media": {"tracks": [{"type": "audio", "mid": "0", "source": "mic"},
                           {"type": "video", "mid": "1", "source": "camera"}]},
      "attributes": {"label": "cam"}, "transport": {"type": "webrtc"}}


async def _publish(env: Env, pid: str = "p1", stream: str = "s1", transport: str = "t1") -> Any:
    return await env.call("publish", participant=pid, stream_id=stream, transport_id=transport, info=AV)


async def _p1_publishes_to_p2(env: Env) -> FakeAgent:
    """A media agent; p1 (portal A) publishes ``s1`` over ``t1`` and sends the offer; p2 (portal B) has the stream."""
    agent = await env.start_agent()
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await _publish(env)
    await env.call("session_signaling", participant="p1", transport_id="t1", signaling={"type": "offer"})
    await wait_until(lambda: env.portal_b.data("p2", "stream"))
    return agent


async def test_publish_soac_ready_stream_add_then_unpublish_stream_remove(transports: TransportFactory,
                                                                            make_env: Any) -> None:
    env: Env = await make_env(transports)
    agent = await env.start_agent()
    await env.join("p1")
    await env.join("p2", "viewer", portal=env.portal_b)
    assert await _publish(env) == {"id": "s1", "transportId": "t1"}
    assert env.cluster.scheduled[-1] == ("webrtc", "t1", {"isp": "isp", "region": "region"})
    assert agent.sessions["s1"]["controller"] == env.controller.worker_id
    assert await env.call("session_signaling", participant="p1", transport_id="t1",
                          signaling={"type": "offer", "sdp": "v=0"}) == "ok"
    await wait_until(lambda: len(env.portal_a.data("p1", "progress")) == 2)
    assert env.portal_a.data("p1", "progress") == [
        {"id": "t1", "status": "soac", "data": {"type": "answer", "sdp": "v=0 fake"}},
        {"id": "t1", "sessionId": "s1", "status": "ready"},
    ]
    await wait_until(lambda: env.portal_b.data("p2", "stream"))
    added = env.portal_b.data("p2", "stream")[0]
    assert added["id"] == "s1" and added["status"] == "add"
    info = added["data"]
    assert info["type"] == "forward"
    assert info["info"]["owner"] == "p1" and info["info"]["type"] == "webrtc"
    assert info["info"]["attributes"] == {"label": "cam"}
    assert [(t["type"], t["source"], t["mid"]) for t in info["media"]["tracks"]] == [
        ("audio", "mic", "0"), ("video", "camera", "1")]
    late = await env.join("p3", "viewer")
    assert [s["id"] for s in late["room"]["streams"]] == ["s1"]

    assert await env.call("unpublish", participant="p1", stream_id="s1") == "ok"
    await wait_until(lambda: {"id": "s1", "status": "remove"} in env.portal_b.data("p2", "stream"))
    await wait_until(lambda: "s1" in agent.ended)


async def test_no_media_agent(env: Env) -> None:
    await env.join("p1")
    with pytest.raises(RpcRemoteError) as info:
        await _publish(env)
    assert (info.value.code, info.value.message) == ("no_media_agent", "no media agent available")


async def test_publish_and_subscribe_permissions_are_enforced(env: Env) -> None:
    await env.start_agent()
    await env.join("v1", "viewer")
    with pytest.raises(RpcRemoteError) as info:
        await _publish(env, "v1")
    assert info.value.code == "permission_denied"
    await env.join("a1", "audio_only")
    with pytest.raises(RpcRemoteError) as info:
        await _publish(env, "a1", "s-a", "t-a")
    assert info.value.code == "permission_denied"
    audio = {"media": {"tracks": [{"type": "audio", "mid": "0", "source": "mic"}]}}
    await env.call("publish", participant="a1", stream_id="s-a", transport_id="t-a", info=audio)
    await env.call("session_signaling", participant="a1", transport_id="t-a", signaling={"type": "offer"})
    await wait_until(lambda: env.controller.room("room-1").state.streams["s-a"].ready)
    await env.join("p1")
    await _publish(env, "p1", "s-v", "t-v")
    await env.call("session_signaling", participant="p1", transport_id="t-v", signaling={"type": "offer"})
    await wait_until(lambda: env.controller.room("room-1").state.streams["s-v"].ready)

    video_sub = {"media": {"tracks": [{"type": "video", "from": "s-v"}]}, "transport": {"type": "webrtc"}}
    with pytest.raises(RpcRemoteError) as info:
        await env.call("subscribe", participant="a1", subscription_id="sub1", transport_id="t-a2", info=video_sub)
    assert info.value.code == "permission_denied"
    assert await env.call("subscribe", participant="v1", subscription_id="sub2", transport_id="t-v2",
                          info=video_sub) == {"id": "sub2", "transportId": "t-v2"}
    missing = {"media": {"tracks": [{"type": "audio", "from": "nope"}]}}
    with pytest.raises(RpcRemoteError) as info:
        await env.call("subscribe", participant="v1", subscription_id="sub3", transport_id="t-v3", info=missing)
    assert info.value.code == "unknown_stream"


async def test_subscribe_ready_and_leave_ends_everything(env: Env) -> None:
    agent = await _p1_publishes_to_p2(env)
    track_id = env.portal_b.data("p2", "stream")[0]["data"]["media"]["tracks"][1]["id"]
    sub = {"media": {"tracks": [{"type": "video", "from": track_id}]}, "transport": {"type": "webrtc"}}
    await env.call("subscribe", participant="p2", subscription_id="sub1", transport_id="t2", info=sub)
    await env.call("session_signaling", participant="p2", transport_id="t2", signaling={"type": "offer"})
    await wait_until(lambda: {"id": "t2", "sessionId": "sub1", "status": "ready"} in env.portal_b.data("p2", "progress"))
    assert await env.call("subscription_control", participant="p2", subscription_id="sub1", operation="pause",
                          data="video") == "ok"
    assert agent.controls == [("sub1", "pause", "video")]

    await env.call("leave", participant="p1")
    await wait_until(lambda: env.portal_b.data("p2", "participant")[-1:] == [{"action": "leave", "data": "p1"}])
    kinds = [(e, d.get("status") or d.get("action")) for _, e, d in env.portal_b.events("p2")
             if e in ("stream", "participant")]
    assert kinds[-2:] == [("stream", "remove"), ("participant", "leave")]
    await wait_until(lambda: set(agent.ended) == {"s1", "sub1"})
    assert env.controller.room("room-1").state.subscriptions == {}


async def test_stream_control_updates_the_others(env: Env) -> None:
    agent = await _p1_publishes_to_p2(env)
    assert await env.call("stream_control", participant="p1", stream_id="s1", operation="pause", data="audio") == "ok"
    await wait_until(lambda: len(env.portal_b.data("p2", "stream")) == 2)
    assert env.portal_b.data("p2", "stream")[1] == {"id": "s1", "status": "update",
                                                    "data": {"field": "audio.status", "value": "inactive"}}
    assert agent.controls == [("s1", "pause", "audio")]
    with pytest.raises(RpcRemoteError) as info:
        await env.call("stream_control", participant="p1", stream_id="s1", operation="mix", data="common")
    assert info.value.code == "unsupported_operation"


async def test_agent_error_and_agent_loss_end_sessions(env: Env) -> None:
    agent = await _p1_publishes_to_p2(env)
    await env.caller.publish_event("exit.quit", {"purpose": "webrtc", "id": agent.worker_id, "type": "worker"})
    await wait_until(lambda: {"id": "s1", "status": "remove"} in env.portal_b.data("p2", "stream"))
    assert {"id": "t1", "sessionId": "s1", "status": "error", "data": "media agent lost"} in \
        env.portal_a.data("p1", "progress")
    assert "p1" in env.controller.participants

    await _publish(env, stream="s2", transport="t3")
    await env.call("on_session_progress", transport_id="t3", session_id="s2", status="error", data="ice failed")
    await wait_until(lambda: {"id": "t3", "sessionId": "s2", "status": "error", "data": "ice failed"}
                     in env.portal_a.data("p1", "progress"))
    assert "s2" not in env.controller.room("room-1").state.streams


async def test_publish_with_a_request_id_is_applied_once(env: Env) -> None:
    agent = await env.start_agent()
    await env.join("p1")
    first = await env.call("publish", participant="p1", stream_id="s1", transport_id="t1", info=AV, request_id="q")
    again = await env.call("publish", participant="p1", stream_id="s1", transport_id="t1", info=AV, request_id="q")
    assert first == again
    assert list(agent.sessions) == ["s1"]
    with pytest.raises(RpcRemoteError) as info:
        await env.call("publish", participant="p1", stream_id="s1", transport_id="t1", info=AV, request_id="other")
    assert info.value.code == "bad_arguments"


async def test_invalid_publish_info_is_bad_arguments(env: Env) -> None:
    await env.join("p1")
    bad = {"media": {"tracks": [{"type": "video", "source": "webcam"}]}}
    with pytest.raises(RpcRemoteError) as info:
        await env.call("publish", participant="p1", stream_id="s1", transport_id="t1", info=bad)
    assert info.value.code == "bad_arguments"
