"""A controller's notifications that no portal took after ``delivery_retries`` become a dead letter
at the cluster's alert service, which ``dead_letters_retry`` delivers once the portal answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from alerts import AlertService, AlertSettings, LocalDeadLetters
from credentials import AdminKeys
from tests.support.waiting import wait_until

from .conftest import ADMIN_KEY


@pytest_asyncio.fixture
async def alerts(env: Any) -> AsyncIterator[tuple[AlertService, LocalDeadLetters]]:
    """The cluster's alert service (its dead letters in memory) beside the env's controller."""
    store = LocalDeadLetters(10)
    service = AlertService(await env.transports.make("alerts"), AlertSettings(group_window=0.1),
                           cluster=env.worker_settings.cluster_name, store=store, admin_keys=AdminKeys([ADMIN_KEY]))
    await service.start()
    yield service, store
    await service.stop()


async def test_undelivered_notifications_are_a_dead_letter_that_a_retry_delivers(
        env: Any, alerts: tuple[AlertService, LocalDeadLetters]) -> None:
    service, store = alerts
    await env.join("alice")
    env.portal_a.failing = True
    await env.join("bob", portal=env.portal_b)  # alice hears of bob through the failing portal A
    [letter] = await wait_until(store.list, what="the dead letter")
    assert (letter.origin, letter.target, letter.method, letter.attempts, letter.reason) == (
        "message", env.portal_a.name, "deliver", 2, "unavailable")
    assert letter.group == env.portal_a.name
    assert service.tallies.stored["message"] == 1
    assert not any(event == "participant" for _, event, _ in env.portal_a.events("alice"))

    env.portal_a.failing = False
    result = await env.caller.call(service.name, "dead_letters_retry",
                                   {"letter_id": letter.id, "admin_key": ADMIN_KEY})
    assert result == {"id": letter.id, "delivered": True}
    assert [data["action"] for data in env.portal_a.data("alice", "participant")] == ["join"]
    assert await store.list() == []


async def test_a_delivery_refused_once_is_sent_again_and_is_no_dead_letter(
        env: Any, alerts: tuple[AlertService, LocalDeadLetters]) -> None:
    service, store = alerts
    await env.join("alice")
    env.portal_a.refuse_deliveries = 1  # delivery_retries = 1 in these tests: the second attempt goes through
    await env.join("bob", portal=env.portal_b)
    await wait_until(lambda: env.portal_a.data("alice", "participant"), what="alice hears of bob")
    assert [data["action"] for data in env.portal_a.data("alice", "participant")] == ["join"]
    assert env.portal_a.refuse_deliveries == 0
    assert await store.list() == []
    assert service.tallies.stored["message"] == 0
