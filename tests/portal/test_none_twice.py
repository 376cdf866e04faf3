""""None twice" (docs/protocol.md §3.6–3.7): whatever the controller sends again, a socket gets each
notification once.  Each test makes the real controller (or, where it cannot on cue, the spy in front
of it) deliver a seq a second time, and each guards one of the portal's filters (portal/delivery.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conference_controller import machine
from portal import Portal
from tests.support.waiting import wait_until

from .harness import Harness


def _buffered(portal: Portal, participant: str) -> int:
    session = portal.sessions.get(participant)
    return 0 if session is None or session.buffer is None else len(session.buffer)


@pytest.mark.parametrize("extension", [False, True], ids=["plain", "extension"])
async def test_a_notification_redelivered_after_a_lost_reply_is_emitted_once(harness: Harness, extension: bool) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal, extension=extension)
    pid = result["id"]
    portal_spy = harness.portal_spies[portal.worker_id]
    portal_spy.lose_replies("deliver")  # emitted, but the controller does not know: it sends it again
    harness.text_to(pid, "once")
    await wait_until(lambda: len(portal_spy.called("deliver")) == 2, what="the controller's retry")
    assert await harness.settled(client, pid) == ["once"]
    if extension:
        assert client.seqs() == [1, 2]  # "once" and the marker


async def test_a_broadcast_redelivered_after_a_lost_reply_is_emitted_once_to_each(harness: Harness) -> None:
    portal = await harness.portal()
    alice, a = await harness.joined(portal, user="alice")
    bob, b = await harness.joined(portal, user="bob")
    await wait_until(lambda: len(alice.received) == 1, what="alice hears bob join")
    portal_spy = harness.portal_spies[portal.worker_id]
    portal_spy.lose_replies("deliver")
    room = harness.real.room("room-1")
    harness.real.commit(room, [machine.decide_text(room.state, a["id"], "all", "to all", 0.0)[0]])
    await wait_until(lambda: len(portal_spy.called("deliver")) == 3, what="the controller's retry")
    assert await harness.settled(alice, a["id"]) == ["to all"]
    assert await harness.settled(bob, b["id"]) == ["to all"]


async def test_a_live_notification_that_is_also_replayed_is_emitted_once(harness: Harness) -> None:
    """A relogin takes over a live socket while a notification for it is on its way: the controller
    replays it (it was never acknowledged) and delivers it live as well."""
    portal = await harness.portal()
    old, result = await harness.joined(portal)
    pid = result["id"]
    deliveries = harness.portal_spies[portal.worker_id].stall_calls("deliver")
    harness.text_to(pid, "in flight")
    await wait_until(lambda: harness.portal_spies[portal.worker_id].called("deliver"), what="delivery under way")
    resumes = harness.spy.hold_replies("resume")
    again = await harness.client(portal)
    relogin = asyncio.ensure_future(again.call("relogin", result["reconnectionTicket"]))
    await wait_until(lambda: harness.spy.called("resume"), what="resumed: the text is in the replay")
    deliveries.set()  # the live copy reaches the portal while the relogin's answer is on its way
    await wait_until(lambda: _buffered(portal, pid) == 1, what="the live copy is held back")
    resumes.set()
    status, _ = await relogin
    assert status == "ok"
    assert await harness.settled(again, pid) == ["in flight"]
    assert old.texts() == []


async def test_a_replay_repeating_a_message_emits_it_once(harness: Harness) -> None:
    """The real controller never repeats a message in a replay; the spy makes it (a faulty controller)."""
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    pid = result["id"]
    await client.lose_network()
    await wait_until(lambda: harness.held(pid), what="held")
    harness.text_to(pid, "m1", "m2")

    def repeated(reply: Any) -> Any:
        return {**reply, "messages": [reply["messages"][0], *reply["messages"]]}

    harness.spy.rewrite_reply("resume", repeated)
    again = await harness.client(portal)
    status, _ = await again.call("relogin", result["reconnectionTicket"])
    assert status == "ok"
    assert await harness.settled(again, pid) == ["m1", "m2"]
