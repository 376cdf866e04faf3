"""A portal declared lost while it still has its sockets (a partition) re-attaches them when it is
back in the cluster (docs/controller.md §Faults): ``resume`` with its own id, the current ticket and
the last seq of each socket.  The real cluster manager declares the portal lost (its ``quit``
announces ``exit.quit`` as a timeout would), the real controller holds the participants, and the
portal's own worker client rejoins on the ``whoareyou`` that follows."""

from __future__ import annotations

import pytest

from rpc import RpcRemoteError
from tests.support.waiting import wait_until

from .harness import CLUSTER, CONTROLLER_ID, Harness
from .spy import SpyTransport


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


@pytest.mark.parametrize("extension", [False, True])
async def test_a_portal_its_controller_took_for_gone_gets_its_held_socket_back_and_it_misses_nothing(
    harness: Harness, extension: bool
) -> None:
    # The controller finds nobody serving the portal for longer than portal_unreachable_grace (a
    # partition between the portal and the broker that the cluster manager does not see: no
    # departure, no exit.quit, so no re-attach of the portal's own after a recovery): it holds the
    # participant although its socket stays open. Once the portal is served again, the controller
    # has it re-attach the socket.
    controller = await harness.start_controller(portal_unreachable_grace=0.3)
    cut = controller.transport
    assert isinstance(cut, SpyTransport)
    portal = await harness.portal()
    client, result = await harness.joined(portal, extension=extension)
    pid = result["id"]
    bob, _ = await harness.joined(await harness.portal(), user="bob")
    assert await bob.call("text", {"to": "all", "message": "before"}) == "ok"
    await wait_until(lambda: client.texts() == ["before"])

    cut.unserved.add(portal.worker_id)
    for message in ("m1", "m2"):  # within the grace: kept by the controller's sender
        assert await bob.call("text", {"to": "all", "message": message}) == "ok"
    await wait_until(lambda: harness.held(pid), what="held at the controller")
    for message in ("m3", "m4"):  # while held: kept in the outbox
        assert await bob.call("text", {"to": "all", "message": message}) == "ok"
    cut.unserved.discard(portal.worker_id)

    assert await harness.settled(client, pid) == ["before", "m1", "m2", "m3", "m4"]
    member = harness.member(pid)
    assert member is not None and member.connected and member.portal == portal.worker_id
    assert harness.spy.called("resume") == [{
        "participant": pid, "ticket_id": harness.ticket_id(result["reconnectionTicket"]),
        "new_ticket_id": harness.ticket_id(result["reconnectionTicket"]), "portal": portal.worker_id,
        "last_seq": 2, "room": "room-1"}]  # bob's join and "before" were emitted on the socket
    if extension:
        assert client.seqs() == list(range(1, len(client.seqs()) + 1))  # no seq twice, none skipped
    assert not client.disconnected.is_set() and [e for e, _ in client.received if e == "drop"] == []
    assert [e for e in bob.participant_events() if e["action"] == "leave"] == []
    # the socket acts for the participant again
    assert await client.call("text", {"to": "all", "message": "back"}) == "ok"
    await wait_until(lambda: "back" in bob.texts(), what="its text at the others")


async def test_reattach_takes_only_the_live_sockets_here_of_the_calling_controller(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    pid = result["id"]
    others = await harness.transport.call(portal.worker_id, "reattach", {
        "controller": "conference-000000000002@test", "participants": [pid]})
    unknown = await harness.transport.call(portal.worker_id, "reattach", {
        "controller": CONTROLLER_ID, "participants": ["nobody"]})
    assert (others, unknown) == ({"reattaching": 0}, {"reattaching": 0})
    assert harness.spy.called("resume") == []

    assert await harness.transport.call(portal.worker_id, "reattach", {
        "controller": CONTROLLER_ID, "participants": ["nobody", pid]}) == {"reattaching": 1}
    await wait_until(lambda: harness.spy.called("resume"), what="the re-attach")
    assert [call["participant"] for call in harness.spy.called("resume")] == [pid]
    harness.text_to(pid, "after")
    await wait_until(lambda: client.texts() == ["after"], what="a text on the same socket")
    assert not client.disconnected.is_set()


@pytest.mark.parametrize("args", [
    {"controller": CONTROLLER_ID, "participants": "not a list"},
    {"controller": 7, "participants": []},
    {"participants": []},
])
async def test_reattach_with_bad_arguments_is_refused_and_changes_nothing(harness: Harness,
                                                                          args: dict[str, object]) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    with pytest.raises(RpcRemoteError) as info:
        await harness.transport.call(portal.worker_id, "reattach", args)
    assert info.value.code == "bad_arguments"
    assert harness.spy.called("resume") == []
    harness.text_to(result["id"], "still here")
    await wait_until(lambda: client.texts() == ["still here"], what="a text on the same socket")
    assert not client.disconnected.is_set()
