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
    status, result = await client.login(harness.token(user="alice"))
    assert status == "ok", result
    assert result["user"] == "alice" and result["role"] == "presenter"
    assert result["room"]["id"] == "room-1"
    assert [p["id"] for p in result["room"]["participants"]] == [result["id"]]
    assert harness.ticket_id(result["reconnectionTicket"])
    assert "switchboard" not in result


async def test_extension_is_confirmed_in_the_login_result(harness: Harness) -> None:
    portal = await harness.portal()
    _, result = await harness.joined(portal, extension=True)
    assert result["switchboard"] == {"seq": True}


async def test_bad_signature_is_refused_and_the_socket_closed(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    good = harness.keyring
    harness.keyring = Keyring(["another-key"])
    token = harness.token()
    harness.keyring = good
    assert await client.login(token) == ("error", "Invalid token signature")
    await wait_until(client.disconnected.is_set, what="socket closed after a failed login")
    assert harness.controller.called("join") == []


async def test_garbage_token_is_refused(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    assert await client.login("not base64 json!") == ("error", "Invalid token")


async def test_expired_token_is_refused(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    assert await client.login(harness.token(lifetime_ms=-1000)) == ("error", "Token expired")


async def test_a_token_works_once(harness: Harness) -> None:
    portal = await harness.portal()
    token = harness.token()
    first = await harness.client(portal)
    assert (await first.login(token))[0] == "ok"
    second = await harness.client(portal)
    assert await second.login(token) == ("error", "Token already used")


async def test_an_unreserved_token_is_refused(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    assert await client.login(harness.token(reserve=False)) == ("error", "Unknown token")


async def test_concurrent_logins_with_one_token_exactly_one_wins(harness: Harness) -> None:
    portals = [await harness.portal(), await harness.portal()]
    token = harness.token()
    clients = [await harness.client(portals[i % 2]) for i in range(6)]
    answers = await asyncio.gather(*(c.login(token) for c in clients))
    assert sorted(a[0] for a in answers) == ["error"] * 5 + ["ok"]
    assert len(harness.controller.called("join")) == 1


async def test_old_protocols_get_a_clear_error(harness: Harness) -> None:
    portal = await harness.portal()
    for version in ("1.0", "1.1"):
        client = await harness.client(portal)
        status, reason = await client.login(harness.token(), protocol=version)
        assert status == "error" and f"unsupported protocol {version}" in reason
    client = await harness.client(portal)
    assert await client.call("login", {"token": harness.token()}) == ("error", "Unknown client protocol")


async def test_second_login_on_a_socket_is_refused(harness: Harness) -> None:
    portal = await harness.portal()
    client, _ = await harness.joined(portal)
    assert await client.login(harness.token()) == ("error", "Connection is in service")
    assert await client.call("relogin", "whatever") == ("error", "Connection is in service")
    await asyncio.sleep(0.1)
    assert client.sio.connected
    assert await client.call("text", {"to": "all", "message": "still here"}) == "ok"


async def test_request_before_login_is_illegal(harness: Harness) -> None:
    portal = await harness.portal(early_request_window=0.2)
    client = await harness.client(portal)
    assert await client.call("text", {"to": "all", "message": "hi"}) == ("error", "Illegal request")
    assert await client.call("logout") == ("error", "Illegal request")
    assert await client.call("refreshReconnectionTicket") == ("error", "Illegal request")
    assert harness.controller.called("text") == []


async def test_idle_socket_is_closed(harness: Harness) -> None:
    portal = await harness.portal(idle_timeout=0.3)
    idle = await harness.client(portal)
    busy, _ = await harness.joined(portal)
    await wait_until(idle.disconnected.is_set, what="idle socket closed")
    assert busy.sio.connected


async def test_socket_lost_during_login_leaves_no_ghost(harness: Harness) -> None:
    harness.controller.join_delay = 0.5
    portal = await harness.portal()
    client = await harness.client(portal)
    login = asyncio.ensure_future(client.login(harness.token()))
    await wait_until(lambda: harness.controller.called("join"), what="join reached the controller")
    await client.lose_network()
    login.cancel()
    await wait_until(lambda: harness.controller.called("leave"), what="the portal made the participant leave")
    assert harness.controller.members == {}
    assert len(portal.sessions) == 0


async def test_notification_racing_the_login_ack_is_delivered_after_it(harness: Harness) -> None:
    harness.controller.welcome = "welcome"
    portal = await harness.portal()
    client = await harness.client(portal)
    status, _ = await client.login(harness.token())
    assert status == "ok"
    assert client.received == []  # nothing before the ack
    await wait_until(lambda: client.texts() == ["welcome"], what="welcome text after the ack")


async def test_logout_leaves_and_closes(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    assert await client.call("logout") == "ok"
    await wait_until(client.disconnected.is_set, what="socket closed after logout")
    assert harness.controller.called("leave") == [{"participant": result["id"]}]
    assert harness.controller.called("hold") == []


async def test_a_login_waits_a_bounded_time_for_a_controller_to_appear(harness: Harness) -> None:
    portal = await harness.portal(cluster_retry_interval=0.05, cluster_retry_budget=2.0)
    harness.cluster.no_controller_for = 3  # the cluster is still starting: no controller yet
    client = await harness.client(portal)
    status, _ = await client.login(harness.token())
    assert status == "ok" and harness.cluster.no_controller_for == 0


async def test_a_login_gives_up_when_no_controller_appears_within_the_budget(harness: Harness) -> None:
    portal = await harness.portal(cluster_retry_interval=0.05, cluster_retry_budget=0.3)
    harness.cluster.no_controller_for = 1000
    client = await harness.client(portal)
    assert await client.login(harness.token()) == ("error", "service unavailable")
    assert harness.cluster.no_controller_for > 990  # a few tries, not a busy loop


def test_a_retry_interval_that_would_spin_is_refused_by_the_settings() -> None:
    with pytest.raises(ValueError, match="cluster_retry_interval"):
        PortalSettings(cluster_retry_interval=0)
