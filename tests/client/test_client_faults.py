"""The client's documented answers to faults, on cue from a scripted portal: requests lost with the
connection (sent again, or ``ConnectionLost``), answers the protocol does not allow (``ProtocolError``),
and the counts of duplicate and out-of-order events that tests assert to be 0 against a real server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from switchboard.client import Client, ClientSettings, ConnectionLost, ProtocolError
from tests.client.conftest import FAKE_PORTAL_TIMINGS as _FAST
from tests.client.fake_portal import FakePortal, make_ticket
from tests.support.waiting import wait_until



async def _relogin(sid: str, payload: Any) -> Any:
    return "ok", {"ticket": make_ticket("p1", serial=1), "lastSeq": 0, "messages": []}


def _unanswered_first(portal: FakePortal, event: str, released: asyncio.Event) -> None:
    """The first ``event`` request gets no answer (until ``released``); later ones get ``'ok'``."""

    async def handler(sid: str, payload: Any) -> Any:
        if len(portal.events(event)) == 1:
            await released.wait()
        return "ok", None

    portal.handlers[event] = handler


async def test_a_relayed_request_lost_with_the_connection_is_sent_again_after_the_relogin(portal: FakePortal) -> None:
    client = await Client.join(portal.token, settings=_FAST)
    portal.handlers["relogin"] = _relogin
    released = asyncio.Event()
    _unanswered_first(portal, "text", released)
    sending = asyncio.ensure_future(client.send_text("all", "hello"))
    await wait_until(lambda: len(portal.events("text")) == 1, what="the text reached the portal")
    await client.drop_transport()  # its answer is lost with the connection
    await sending  # answered after the relogin, no error
    released.set()
    first, again = portal.events("text")
    assert again == first and isinstance(first["requestId"], str)  # the same request id: applied once
    after_drop = [event for _sid, event, _p in portal.received if event != "ack"][2:]
    assert after_drop == ["relogin", "text"]
    assert client.reconnections == 1
    await client.close()


@pytest.mark.parametrize("extension", [False, True], ids=["plain text", "extension ticket refresh"])
async def test_a_request_that_cannot_be_sent_again_raises_connection_lost(portal: FakePortal, extension: bool) -> None:
    """Plain mode (no request ids), or a request that is not relayed (no request id either)."""
    client = await Client.join(portal.token, settings=_FAST, extension=extension)
    portal.handlers["relogin"] = _relogin
    released = asyncio.Event()
    event = "refreshReconnectionTicket" if extension else "text"
    _unanswered_first(portal, event, released)
    request = client.refresh_ticket() if extension else client.send_text("all", "hello")
    sending = asyncio.ensure_future(request)
    await wait_until(lambda: len(portal.events(event)) == 1, what="the request reached the portal")
    await client.drop_transport()
    with pytest.raises(ConnectionLost):
        await sending
    released.set()
    await wait_until(lambda: client.reconnections == 1, what="the session itself goes on")
    await client.send_text("all", "barrier")  # a request sent again would have gone out before this one
    if extension:
        assert len(portal.events(event)) == 1  # not sent again
    assert [p["message"] for p in portal.events("text")] == ([] if extension else ["hello"]) + ["barrier"]
    await client.close()


async def test_an_unreachable_portal_raises_connection_lost(portal: FakePortal) -> None:
    await portal.stop()
    with pytest.raises(ConnectionLost, match="cannot connect"):
        await Client.join(portal.token, settings=_FAST)


async def test_an_ack_with_an_unknown_status_raises_protocol_error(portal: FakePortal) -> None:
    client = await Client.join(portal.token, settings=_FAST)

    async def text(sid: str, payload: Any) -> Any:
        return "maybe", None

    portal.handlers["text"] = text
    with pytest.raises(ProtocolError, match="unknown ack status 'maybe' for 'text'"):
        await client.send_text("all", "hello")
    assert client.connected  # one bad answer does not end the session
    await client.close()


async def test_a_login_result_without_an_id_raises_protocol_error(portal: FakePortal) -> None:
    async def login(sid: str, payload: Any) -> Any:
        return "ok", {"user": "u"}

    portal.handlers["login"] = login
    with pytest.raises(ProtocolError, match="login result without an id"):
        await Client.join(portal.token, settings=_FAST)


async def test_a_malformed_relogin_answer_ends_the_session(portal: FakePortal) -> None:
    client = await Client.join(portal.token, settings=_FAST)

    async def relogin(sid: str, payload: Any) -> Any:
        return "ok", {"lastSeq": 3}  # no ticket

    portal.handlers["relogin"] = relogin
    await client.drop_transport()
    assert await asyncio.wait_for(client.wait_closed(), 10) == "relogin refused: relogin answered {'lastSeq': 3}"


def _text(seq: int) -> dict[str, Any]:
    return {"from": "p2", "to": "p1", "message": f"m{seq}", "seq": seq}


async def test_duplicates_and_out_of_order_events_are_counted_and_skipped(portal: FakePortal) -> None:
    client = await Client.join(portal.token, settings=_FAST)
    sid = portal.received[-1][0]
    for seq in (1, 2, 3):
        await portal.emit(sid, "text", _text(seq))
    await wait_until(lambda: client.last_seq == 3)
    assert (client.duplicates, client.out_of_order) == (0, 0)
    for seq in (5, 4, 4, 3, 6):  # 5 after a gap, 4 late, 4 again, 3 again, then in order
        await portal.emit(sid, "text", _text(seq))
    await wait_until(lambda: client.last_seq == 6)
    assert [event.data["message"] for event in client.drain_events("text")] == ["m1", "m2", "m3", "m5", "m6"]
    assert (client.duplicates, client.out_of_order) == (2, 2)
    await client.close()
