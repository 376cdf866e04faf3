"""A takeover claims the room's media sessions at their agents (docs/controller.md §Faults, "Takeover
and media"): reports go to the new holder, and its answer settles what the dead holder missed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from journal.memory import MemoryJournal
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

from .conftest import Env
from .fakes import FakeAgent
from .test_media import AV


@pytest_asyncio.fixture
async def env(local: TransportFactory, make_env: Any) -> AsyncIterator[Env]:
    journal = MemoryJournal()
    await journal.open()
    made: Env = await make_env(local, journal=journal, reconnection_timeout=30.0)
    yield made
    await journal.close()


async def _publishing(env: Env, *streams: str) -> FakeAgent:
    """p1 (portal A) publishes each stream on a transport of its own (``t-<stream>``), none ready;
    p2 is in the room (portal B)."""
    agent = await env.start_agent()
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    for stream in streams:
        await env.call("publish", participant="p1", stream_id=stream, transport_id=f"t-{stream}", info=AV)
    return agent


async def _taken_over(env: Env) -> None:
    """The room's controller stops; another one takes the room over from the journal."""
    await env.controller.stop()
    env.controller = await env.start_controller("controller-2")
    await env.call("take_over", room="room-1")


async def _missed(env: Env, pid: str, portal_name: str) -> list[tuple[str, Any]]:
    """The media news the participant is given when its portal re-attaches it at the new holder."""
    portal = env.portal_a if portal_name == "a" else env.portal_b
    resumed = await env.resume(pid, portal, last_seq=None)
    return [(m["event"], m["data"]) for m in resumed["messages"] if m["event"] in ("progress", "stream")]


async def test_a_takeover_announces_what_the_agent_has_ready_and_ends_what_it_does_not_have(env: Env) -> None:
    agent = await _publishing(env, "missed", "unknown", "pending")
    agent.sessions["missed"]["status"] = "ready"  # its ready report went to the dead holder
    del agent.sessions["unknown"]  # the holder died before the agent heard of it
    await _taken_over(env)

    await wait_until(lambda: agent.moves, what="controller_moved")
    assert agent.moves == [(["t-missed", "t-pending", "t-unknown"], env.controller.worker_id)]
    assert {s["controller"] for s in agent.sessions.values()} == {env.controller.worker_id}
    state = env.controller.room("room-1").state
    await wait_until(lambda: "unknown" not in state.streams, what="the unknown publication ended")
    assert state.streams["missed"].ready and not state.streams["pending"].ready
    assert await _missed(env, "p1", "a") == [
        ("progress", {"id": "t-missed", "sessionId": "missed", "status": "ready"}),
        ("stream", {"id": "missed", "status": "add", "data": state.streams["missed"].to_info()}),
        ("progress", {"id": "t-unknown", "sessionId": "unknown", "status": "error", "data": "media session lost"}),
    ]
    assert await _missed(env, "p2", "b") == [
        ("stream", {"id": "missed", "status": "add", "data": state.streams["missed"].to_info()})]
    # The pending one goes on at the new holder: its offer is answered, it is announced.
    await env.call("session_signaling", participant="p1", transport_id="t-pending", signaling={"type": "offer"})
    await wait_until(lambda: [d["id"] for d in env.portal_b.data("p2", "stream")] == ["pending"],
                     what="the pending stream announced")


async def test_an_agent_that_does_not_answer_controller_moved_is_taken_as_lost(env: Env) -> None:
    agent = await _publishing(env, "s1")
    agent.refuse_moves = True
    await _taken_over(env)

    state = env.controller.room("room-1").state
    await wait_until(lambda: not state.streams and not state.transports, what="the sessions ended")
    assert await _missed(env, "p1", "a") == [
        ("progress", {"id": "t-s1", "sessionId": "s1", "status": "error", "data": "media agent lost"})]
    assert "p1" in state.participants and agent.moves == []
