"""The client relogs in elsewhere by itself: the order of the addresses it tries after its portal
died (its own, the portal's ``alternatives``, the token's URL), the waits between them, and the bound
on the attempts — on scripted portals, and the plan's arithmetic on a seeded clock-free rng."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from switchboard.client import Client, ClientSettings
from switchboard.client.failover import FailoverPlan
from tests.client.fake_portal import FakePortal, make_ticket
from tests.support.processes import free_port

_SETTINGS = ClientSettings(
    request_timeout=5.0, reconnection_delay=0.05, reconnection_delay_max=0.2, failover_delay=0.01,
    reconnection_jitter=0.5, ack_interval=0.02,
)


def _dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there: the connection is refused


def _answers_alternatives(portal: FakePortal, alternatives: list[str]) -> None:
    async def login(sid: str, payload: Any) -> Any:
        return "ok", {
            "id": "p1", "user": "u", "role": "presenter", "room": {"id": "fake", "participants": [], "streams": []},
            "reconnectionTicket": make_ticket("p1"), "switchboard": {"seq": True, "alternatives": alternatives},
        }

    portal.handlers["login"] = login


async def _relogin_naming(alternatives: list[str]) -> Any:
    async def relogin(sid: str, payload: Any) -> Any:
        return "ok", {"ticket": make_ticket("p1", serial=1), "lastSeq": 0, "messages": [], "alternatives": alternatives}

    return relogin


async def test_a_client_whose_portal_died_relogs_in_at_the_first_alternative_that_answers() -> None:
    first, sibling = FakePortal(), FakePortal()
    await first.start()
    await sibling.start()
    try:
        sibling_url = f"http://127.0.0.1:{sibling.port}"
        dead = _dead_url()
        _answers_alternatives(first, [dead, sibling_url])
        sibling.handlers["relogin"] = await _relogin_naming(["http://127.0.0.1:1", "ftp://x", "http://a", "http://b"])
        client = await Client.join(first.token, settings=_SETTINGS)
        assert client.alternatives == [dead, sibling_url]
        home = client.url
        reconnected: list[Any] = []
        client.on("reconnected", lambda e: reconnected.append(e.data))
        await first.stop()  # the portal dies: its port refuses connections
        await asyncio.wait_for(_until_reconnected(client), 10)
        assert [e for e in sibling.received if e[1] == "relogin"], "the sibling got the relogin"
        # its own address, then the dead alternative, then the sibling: the third attempt
        assert reconnected == [{"replayed": 0, "attempts": 3, "url": sibling_url}]
        assert client.url == sibling_url and client.home_url == home and client.reconnections == 1
        # the sibling's list replaces the old one: web URLs only, at most max_alternatives
        assert client.alternatives == ["http://127.0.0.1:1", "http://a", "http://b"]
        await client.close()
    finally:
        await sibling.stop()


async def test_a_client_whose_every_address_is_dead_gives_up_after_its_attempts() -> None:
    first = FakePortal()
    await first.start()
    _answers_alternatives(first, [_dead_url(), _dead_url()])
    settings = ClientSettings(request_timeout=5.0, reconnection_delay=0.01, reconnection_delay_max=0.02,
                              failover_delay=0.01, reconnection_attempts=7)
    client = await Client.join(first.token, settings=settings)
    await first.stop()
    assert await asyncio.wait_for(client.wait_closed(), 10) == "reconnection failed after 7 attempts"


async def test_a_plain_client_is_told_no_alternatives_and_keeps_its_address(portal: FakePortal) -> None:
    _answers_alternatives(portal, [_dead_url()])
    client = await Client.join(portal.token, settings=_SETTINGS, extension=False)
    assert client.alternatives == []  # the extension was not confirmed for it: nothing taken from the answer
    await client.close()


async def _until_reconnected(client: Client) -> None:
    while client.reconnections == 0:
        await client.next_event("reconnected", timeout=None)


# -- the plan -------------------------------------------------------------------------------------


def test_the_plan_tries_the_current_address_then_the_alternatives_then_home_once_each() -> None:
    plan = FailoverPlan(_SETTINGS, ["http://a", "http://b", "http://a", "http://c", "http://home"])
    seen = []
    for _ in range(5):
        seen.append(plan.url)
        plan.unreachable()
    assert seen == ["http://a", "http://b", "http://c", "http://home", "http://a"]


def test_moving_to_the_next_address_waits_the_failover_delay_and_a_failed_round_doubles_the_delay() -> None:
    settings = ClientSettings(reconnection_delay=0.2, reconnection_delay_max=1.0, failover_delay=0.05,
                              reconnection_jitter=0.0)
    plan = FailoverPlan(settings, ["http://a", "http://b", "http://c"])
    waits = [plan.wait()]
    for _ in range(9):
        plan.unreachable()
        waits.append(plan.wait())
    assert waits == pytest.approx([0.2, 0.05, 0.05, 0.4, 0.05, 0.05, 0.8, 0.05, 0.05, 1.0])


def test_one_address_backs_off_exponentially_up_to_the_maximum() -> None:
    settings = ClientSettings(reconnection_delay=0.2, reconnection_delay_max=1.0, reconnection_jitter=0.0)
    plan = FailoverPlan(settings, ["http://a"])
    waits = [plan.wait()]
    for _ in range(4):
        plan.unreachable()
        waits.append(plan.wait())
    assert waits == pytest.approx([0.2, 0.4, 0.8, 1.0, 1.0])


def test_a_busy_portal_is_asked_again_after_a_longer_delay() -> None:
    settings = ClientSettings(reconnection_delay=0.2, reconnection_delay_max=1.0, reconnection_jitter=0.0)
    plan = FailoverPlan(settings, ["http://a", "http://b"])
    plan.busy()
    assert plan.url == "http://a" and plan.wait() == pytest.approx(0.4)


def test_every_wait_is_jittered_within_its_bounds() -> None:
    settings = ClientSettings(reconnection_delay=0.2, reconnection_delay_max=1.0, failover_delay=0.05,
                              reconnection_jitter=0.5)
    plan = FailoverPlan(settings, ["http://a", "http://b"], rng=random.Random(7))
    waits = []
    for _ in range(200):
        waits.append(plan.wait())
        plan.unreachable()
    assert all(0.025 <= w <= 1.5 for w in waits)
    assert len({round(w, 6) for w in waits}) > 100  # spread, not one value
    assert max(waits) > 1.0 and min(waits) < 0.05


async def test_a_ticket_refresh_renews_the_alternatives(portal: FakePortal) -> None:
    _answers_alternatives(portal, ["http://old:1"])

    async def refresh(sid: str, payload: Any) -> Any:
        assert payload == {"alternatives": True}
        return "ok", {"ticket": make_ticket("p1", serial=2), "alternatives": ["http://new:1"]}

    portal.handlers["refreshReconnectionTicket"] = refresh
    client = await Client.join(portal.token, settings=_SETTINGS)
    await client.refresh_ticket()
    assert client.alternatives == ["http://new:1"]
    await client.close()
