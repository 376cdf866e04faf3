from __future__ import annotations

import asyncio

import pytest

from credentials import Keyring
from portal.settings import PortalSettings
from tests.support.waiting import wait_until

from .harness import Harness


async def test_login_returns_room_participant_and_ticket(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    status, result = await client.login(await harness.token(user="alice"))
    assert status == "ok", result
    assert result["user"] == "alice" and result["role"] == "presenter"
    assert result["room"]["id"] == "room-1"
    assert [p["id"] for p in result["room"]["participants"]] == [result["id"]]
    assert harness.ticket_id(result["reconnectionTicket"])
    assert "switchboard" not in result


async def test_extension_is_confirmed_in_the_login_result(harness: Harness) -> None:
    portal = await harness.portal()
    _, result = await harness.joined(portal, extension=True)
    assert result["switchboard"] == {"seq": True, "alternatives": []}  # the only portal


async def test_bad_signature_is_refused_and_the_socket_closed(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    token = await harness.token(keyring=Keyring(["another-key"]))
    assert await client.login(token) == ("error", "Invalid token signature")
    await wait_until(client.disconnected.is_set, what="socket closed after a failed login")
    assert harness.spy.called("join") == [] and harness.cluster_spy.called("claim") == []


async def test_garbage_token_is_refused(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    assert await client.login("not base64 json!") == ("error", "Invalid token")


async def test_expired_token_is_refused(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    assert await client.login(await harness.token(lifetime_ms=-1000)) == ("error", "Token expired")


async def test_a_token_works_once(harness: Harness) -> None:
    portal = await harness.portal()
    token = await harness.token()
    first = await harness.client(portal)
    assert (await first.login(token))[0] == "ok"
    second = await harness.client(portal)
    assert await second.login(token) == ("error", "Token already used")


async def test_an_unreserved_token_is_refused(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    assert await client.login(await harness.token(reserve=False)) == ("error", "Unknown token")
    assert harness.spy.called("join") == []


async def test_a_token_is_claimed_only_at_the_portal_it_was_issued_for(harness: Harness) -> None:
    issued, other = await harness.portal(), await harness.portal()
    token = await harness.token(issued)
    elsewhere = await harness.client(other)
    assert await elsewhere.login(token) == ("error", "Token issued for another portal")
    await wait_until(elsewhere.disconnected.is_set, what="refused socket closed")
    assert harness.spy.called("join") == []
    here = await harness.client(issued)
    assert (await here.login(token))[0] == "ok"


async def test_concurrent_logins_with_one_token_exactly_one_wins(harness: Harness) -> None:
    portals = [await harness.portal(), await harness.portal()]
    token = await harness.token(portals[0])
    clients = [await harness.client(portals[i % 2]) for i in range(6)]
    answers = await asyncio.gather(*(c.login(token) for c in clients))
    at_issuer, elsewhere = answers[0::2], answers[1::2]
    assert sorted(a[0] for a in at_issuer) == ["error", "error", "ok"]
    assert [a for a in at_issuer if a[0] == "error"] == [("error", "Token already used")] * 2
    assert elsewhere == [("error", "Token issued for another portal")] * 3
    assert len(harness.spy.called("join")) == 1
    assert len(harness.real.participants) == 1


async def test_old_protocols_get_a_clear_error(harness: Harness) -> None:
    portal = await harness.portal()
    for version in ("1.0", "1.1"):
        client = await harness.client(portal)
        assert await client.login(await harness.token(), protocol=version) == (
            "error", f"unsupported protocol {version}: this portal speaks OWT protocol 1.2")
    client = await harness.client(portal)
    assert await client.call("login", {"token": await harness.token()}) == ("error", "Unknown client protocol")


async def test_second_login_on_a_socket_is_refused(harness: Harness) -> None:
    portal = await harness.portal()
    client, _ = await harness.joined(portal)
    assert await client.login(await harness.token()) == ("error", "Connection is in service")
    assert await client.call("relogin", "whatever") == ("error", "Connection is in service")
    assert client.sio.connected
    assert await client.call("text", {"to": "all", "message": "still here"}) == "ok"


async def test_request_before_login_is_illegal(harness: Harness) -> None:
    portal = await harness.portal(early_request_window=0.2)
    client = await harness.client(portal)
    assert await client.call("text", {"to": "all", "message": "hi"}) == ("error", "Illegal request")
    assert await client.call("logout") == ("error", "Illegal request")
    assert await client.call("refreshReconnectionTicket") == ("error", "Illegal request")
    assert harness.spy.called("text") == []


async def test_idle_socket_is_closed(harness: Harness) -> None:
    portal = await harness.portal(idle_timeout=0.3)
    idle = await harness.client(portal)
    busy, _ = await harness.joined(portal)
    await wait_until(idle.disconnected.is_set, what="idle socket closed")
    assert busy.sio.connected


async def test_socket_lost_during_login_leaves_no_ghost(harness: Harness) -> None:
    portal = await harness.portal()
    joins = harness.spy.hold_replies("join")  # the controller admits the participant; its answer is late
    client = await harness.client(portal)
    login = asyncio.ensure_future(client.login(await harness.token()))
    await wait_until(lambda: harness.real.participants, what="the controller admitted the participant")
    await client.lose_network()
    login.cancel()
    joins.set()
    await wait_until(lambda: harness.spy.called("leave"), what="the portal made the participant leave")
    await wait_until(lambda: not harness.real.participants, what="no participant left at the controller")
    assert len(portal.sessions) == 0


async def test_notification_racing_the_login_ack_is_delivered_after_it(harness: Harness) -> None:
    portal = await harness.portal()
    bob, _ = await harness.joined(portal, user="bob")
    joins = harness.spy.hold_replies("join")  # alice's join is done at the controller, its answer late
    client = await harness.client(portal)
    payload = {"token": await harness.token(user="alice"), "protocol": "1.2",
               "userAgent": {"sdk": {"type": "JavaScript", "version": "5.1"}}}
    # The ack is recorded in the same list as the events: their order is the order on the wire.
    await client.sio.emit("login", payload, callback=lambda *ack: client.received.append(("login-ack", ack[0])))
    await wait_until(lambda: len(harness.real.participants) == 2, what="alice admitted")
    assert await bob.call("text", {"to": "all", "message": "welcome"}) == "ok"
    await wait_until(lambda: bob.texts() == ["welcome"], what="the text was delivered (to bob, and to alice's portal)")
    joins.set()
    await wait_until(lambda: len(client.received) == 2, what="the ack and the text")
    assert [event for event, _ in client.received] == ["login-ack", "text"]
    assert client.texts() == ["welcome"]


async def test_logout_leaves_and_closes(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    assert await client.call("logout") == "ok"
    await wait_until(client.disconnected.is_set, what="socket closed after logout")
    assert [c["participant"] for c in harness.spy.called("leave")] == [result["id"]]
    assert harness.spy.called("hold") == []
    assert harness.member(result["id"]) is None


def _room_schedules(harness: Harness) -> int:
    return sum(1 for call in harness.cluster_spy.called("schedule") if call["purpose"] == "conference")


async def test_a_login_waits_a_bounded_time_for_a_controller_to_appear(harness: Harness) -> None:
    portal = await harness.portal(controller=False, cluster_retry_interval=0.05, cluster_retry_budget=5.0)
    client = await harness.client(portal)
    login = asyncio.ensure_future(client.login(await harness.token()))
    await wait_until(lambda: _room_schedules(harness) >= 2, what="the portal retried: no controller yet")
    assert not login.done()
    await harness.start_controller()  # the cluster finishes starting
    status, _ = await login
    assert status == "ok"


async def test_a_login_gives_up_when_no_controller_appears_within_the_budget(harness: Harness) -> None:
    portal = await harness.portal(controller=False, cluster_retry_interval=0.05, cluster_retry_budget=0.3)
    client = await harness.client(portal)
    assert await client.login(await harness.token()) == ("error", "service unavailable")
    assert 2 <= _room_schedules(harness) <= 8  # a few tries, not a busy loop


def test_a_retry_interval_that_would_spin_is_refused_by_the_settings() -> None:
    with pytest.raises(ValueError, match="cluster_retry_interval"):
        PortalSettings(cluster_retry_interval=0)
