"""A portal declared lost while it still has its sockets (a partition) re-attaches them when it is
back in the cluster (docs/controller.md §Faults): ``resume`` with its own id, the current ticket and
the last seq of each socket.  The real cluster manager declares the portal lost (its ``quit``
announces ``exit.quit`` as a timeout would), the real controller holds the participants, and the
portal's own worker client rejoins on the ``whoareyou`` that follows."""

from __future__ import annotations

import pytest

from tests.support.waiting import wait_until

from .harness import CLUSTER, Harness


async def _declare_lost(harness: Harness, portal_id: str, participant: str) -> None:
    await harness.transport.call(CLUSTER, "quit", {"worker_id": portal_id})
    await wait_until(lambda: harness.held(participant), what="held at the controller")


@pytest.mark.parametrize("extension", [False, True])
async def test_a_portal_back_from_a_partition_reattaches_its_sockets_and_emits_what_they_missed(
    harness: Harness, extension: bool
) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal, extension=extension)
    pid, ticket = result["id"], result["reconnectionTicket"]
    harness.text_to(pid, "before")
    await wait_until(lambda: client.texts() == ["before"])
    resumes = harness.spy.stall_calls("resume")  # the re-attach waits until the missed ones are queued

    await _declare_lost(harness, portal.worker_id, pid)
    harness.text_to(pid, "m1", "m2")
    await wait_until(lambda: harness.spy.called("resume"), what="the portal's re-attach")
    resumes.set()

    assert await harness.settled(client, pid) == ["before", "m1", "m2"]
    assert harness.spy.called("resume") == [{
        "participant": pid, "ticket_id": harness.ticket_id(ticket), "new_ticket_id": harness.ticket_id(ticket),
        "portal": portal.worker_id, "last_seq": 1, "room": "room-1"}]
    member = harness.member(pid)
    assert member is not None and member.connected and member.portal == portal.worker_id
    assert member.ticket.current == harness.ticket_id(ticket), "the client's ticket stays valid"
    if extension:
        assert client.seqs() == [1, 2, 3, 4]  # no seq twice, none skipped (the marker is 4)
    assert not client.disconnected.is_set() and [e for e, _ in client.received if e == "drop"] == []
    # the socket acts for the participant again
    assert await client.call("text", {"to": "all", "message": "back"}) == "ok"
    await wait_until(lambda: "back" in client.texts(), what="its own text to all")


async def test_a_socket_whose_participant_left_during_the_partition_is_dropped(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    pid = result["id"]
    resumes = harness.spy.stall_calls("resume")

    await _declare_lost(harness, portal.worker_id, pid)
    await wait_until(lambda: harness.spy.called("resume"), what="the portal's re-attach")
    member = harness.member(pid)
    assert member is not None
    await harness.real.leave(harness.real.room("room-1"), pid, reason="hold_expired")  # the hold ran out before the portal came back
    resumes.set()

    await wait_until(lambda: client.disconnected.is_set(), what="the socket closed")
    assert [event for event, _ in client.received] == ["drop"]
    assert portal.sessions.get(pid) is None
