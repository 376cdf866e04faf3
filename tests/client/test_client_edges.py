"""Client behaviour on cue, against a scripted portal: de-duplication, ordering, acks, refusals."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import switchboard.client.client as client_module
from switchboard.client import Client, ClientError, ClientSettings, TicketInfo
from switchboard.client.tokens import refresh_delay
from tests.client.conftest import FAKE_PORTAL_TIMINGS as _FAST
from tests.client.fake_portal import FakePortal, make_ticket
from tests.support.waiting import wait_until



def _text(seq: int) -> dict[str, Any]:
    return {"from": "p2", "to": "p1", "message": f"m{seq}", "seq": seq}


async def _messages(client: Client, count: int) -> list[tuple[str, int | None, bool]]:
    got = []
    for _ in range(count):
        event = await client.next_event("text", timeout=5)
        got.append((event.data["message"], event.seq, event.replayed))
    return got


async def test_an_overlapping_replay_and_a_racing_live_event_are_applied_once_in_order(portal: FakePortal) -> None:
    client = await Client.join(portal.token, settings=_FAST)
    sid = portal.received[-1][0]
    for seq in (1, 2, 3):
        await portal.emit(sid, "text", _text(seq))
    assert [m for m, _s, _r in await _messages(client, 3)] == ["m1", "m2", "m3"]

    async def relogin(sid: str, payload: Any) -> Any:
        await portal.emit(sid, "text", _text(6))  # live, before the ack
        messages = [{"seq": s, "event": "text", "data": _text(s)} for s in (2, 3, 4, 5)]
        return "ok", {"ticket": make_ticket("p1", serial=1), "lastSeq": 6, "messages": messages}

    portal.handlers["relogin"] = relogin
    await client.drop_transport()
    await client.next_event("reconnected", timeout=5)
    sid = portal.received[-1][0]
    await portal.emit(sid, "text", _text(5))  # a duplicate live one
    await portal.emit(sid, "text", _text(7))

    assert await _messages(client, 4) == [("m4", 4, True), ("m5", 5, True), ("m6", 6, False), ("m7", 7, False)]
    assert portal.events("relogin")[0]["lastSeq"] == 3
    await wait_until(lambda: client.duplicates == 3)
    assert client.drain_events("text") == []
    await wait_until(lambda: portal.events("ack") and portal.events("ack")[-1] == {"seq": 7})
    await client.close()


async def test_relogin_is_the_first_request_on_the_new_socket(portal: FakePortal) -> None:
    client = await Client.join(portal.token, settings=ClientSettings(reconnection_delay=0.3, reconnection_jitter=0))
    relogged = asyncio.Event()

    async def relogin(sid: str, payload: Any) -> Any:
        relogged.set()
        return "ok", {"ticket": make_ticket("p1", serial=1), "lastSeq": 0, "messages": []}

    portal.handlers["relogin"] = relogin
    await client.drop_transport()
    await client.send_text("all", "queued during the outage")
    assert relogged.is_set()
    after_drop = [event for _sid, event, _p in portal.received if event != "ack"][1:]
    assert after_drop[:2] == ["relogin", "text"]
    assert portal.events("text")[0]["requestId"]  # extension requests carry an id
    await client.close()


async def test_resync_required_ends_the_session_with_an_event(portal: FakePortal) -> None:
    client = await Client.join(portal.token, settings=_FAST)

    async def relogin(sid: str, payload: Any) -> Any:
        return "error", {"code": "resync-required", "message": "messages 3..17 are gone", "from": 3, "to": 17}

    portal.handlers["relogin"] = relogin
    await client.drop_transport()
    resync = await client.next_event("resync-required", timeout=5)
    assert (resync.data["from"], resync.data["to"]) == (3, 17)
    closed = await client.next_event("closed", timeout=5)
    assert "resync-required" in closed.data["reason"] and client.state == "closed"
    with pytest.raises(ClientError):
        await client.send_text("all", "too late")
    await client.close()


async def test_a_refused_login_raises_the_servers_reason(portal: FakePortal) -> None:
    async def login(sid: str, payload: Any) -> Any:
        return "error", "Token already used"

    portal.handlers["login"] = login
    with pytest.raises(ClientError) as info:
        await Client.join(portal.token, settings=_FAST)
    assert info.value.reason == "Token already used"
    assert portal.events("login")[0]["userAgent"] == {
        "sdk": {"type": "Python", "version": "1.0"}, "switchboard": {"seq": True}
    } and portal.events("login")[0]["protocol"] == "1.2"


async def test_a_short_ticket_is_refreshed_at_half_life(portal: FakePortal, monkeypatch: pytest.MonkeyPatch) -> None:
    async def login(sid: str, payload: Any) -> Any:
        return "ok", {"id": "p1", "room": {"id": "fake"}, "reconnectionTicket": make_ticket("p1", lifetime=2.0)}

    serials = iter(range(1, 100))

    async def refresh(sid: str, payload: Any) -> Any:
        return "ok", make_ticket("p1", lifetime=2.0, serial=next(serials))

    portal.handlers["login"] = login
    portal.handlers["refreshReconnectionTicket"] = refresh
    delays: list[float | None] = []

    def recorded_delay(info: TicketInfo, *, margin: float, min_delay: float) -> float | None:
        delay = refresh_delay(info, margin=margin, min_delay=min_delay)
        delays.append(delay)
        return delay

    monkeypatch.setattr(client_module, "refresh_delay", recorded_delay)
    client = await Client.join(portal.token, settings=_FAST)
    await wait_until(lambda: len(portal.events("refreshReconnectionTicket")) == 2, what="two refreshes")
    # a 2 s ticket is due at its half-life, 1 s: never sooner than the 1 s minimum, so never a storm;
    # each refresh waited for the delay computed before it
    assert _FAST.ticket_refresh_min_delay == 1.0
    assert delays[:2] == [1.0, 1.0]
    assert len(delays) == 3  # and the third refresh is scheduled, not yet sent
    assert client.ticket_info is not None and client.ticket_info.not_after > client.ticket_info.not_before
    await client.close()


async def test_a_request_without_an_answer_times_out(portal: FakePortal) -> None:
    async def never(sid: str, payload: Any) -> Any:
        await asyncio.Event().wait()  # never answers

    portal.handlers["text"] = never
    client = await Client.join(portal.token, settings=_FAST)
    with pytest.raises(TimeoutError):
        await client.request("text", {"to": "all", "message": "x"}, timeout=0.2)
    await client.close()


async def test_a_transient_relogin_refusal_is_retried(portal: FakePortal) -> None:
    client = await Client.join(portal.token, settings=_FAST)
    answers = iter([
        ("error", {"code": "unavailable", "message": "service unavailable"}),
        ("ok", {"ticket": make_ticket("p1", serial=1), "lastSeq": 0, "messages": []}),
    ])

    async def relogin(sid: str, payload: Any) -> Any:
        return next(answers)

    portal.handlers["relogin"] = relogin
    await client.drop_transport()
    back = await client.next_event("reconnected", timeout=5)
    assert back.data["attempts"] == 2 and client.connected
    assert len(portal.events("relogin")) == 2
    await client.close()


async def test_a_relogin_repeated_after_a_lost_answer_carries_the_same_retry_key_and_a_new_one_a_fresh_key(
    portal: FakePortal,
) -> None:
    client = await Client.join(portal.token, settings=_FAST)
    answers = iter([
        None,  # the answer is lost: the client sends the same relogin again
        ("ok", {"ticket": make_ticket("p1", serial=1), "lastSeq": 0, "messages": []}),
        ("ok", {"ticket": make_ticket("p1", serial=2), "lastSeq": 0, "messages": []}),
    ])

    async def relogin(sid: str, payload: Any) -> Any:
        answer = next(answers)
        if answer is None:
            await portal.sio.disconnect(sid)
            # A peer slow to answer a socket that is already gone: the answer is lost whenever it
            # comes. Nothing waits for this handler or measures it (the client's retry runs on a
            # new socket meanwhile), so its length cannot make the test flaky.
            await asyncio.sleep(1)
        return answer

    portal.handlers["relogin"] = relogin
    await client.drop_transport()
    await client.next_event("reconnected", timeout=5)
    await client.drop_transport()
    await client.next_event("reconnected", timeout=5)
    first, retry, next_relogin = portal.events("relogin")
    assert first["ticket"] == retry["ticket"] != next_relogin["ticket"]
    assert isinstance(first["retryKey"], str) and len(first["retryKey"]) >= 16
    assert retry["retryKey"] == first["retryKey"], "a retry of the same relogin proves it is the same client"
    assert next_relogin["retryKey"] != first["retryKey"], "a relogin with a new ticket gets a new key"
    await client.close()
