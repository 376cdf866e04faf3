from __future__ import annotations

from tests.support.waiting import wait_until

from .harness import Harness


async def test_login_returns_room_participant_and_ticket(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    status, result = await client.login(harness.token(user="alice"))
    assert status == "ok", result
    assert result["user"] == "alice" and result["role"] == "presenter"
    assert result["room"]["id"] == "room-1"
    assert [p["id"] for p in result["room"]["participants"]] == [result["id"]]
    assert harness.ticket_id(result["reconnectionTicket"])
    assert "switchboard" not in result
