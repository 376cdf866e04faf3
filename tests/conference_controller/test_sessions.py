"""Held sessions, resume and replay, tickets, acks, outbox bounds, portal faults."""

from __future__ import annotations

from typing import Any

import pytest

from conference_controller.ids import WorkerId
from rpc import RpcRemoteError
from tests.support.transports import TransportFactory
from tests.support.waiting import wait_until

from .conftest import Env


async def _pair(env: Env) -> None:
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await wait_until(lambda: env.portal_a.events("p1"))


async def test_held_participant_gets_exactly_the_missed_notifications_on_resume(transports: TransportFactory,
                                                                                   make_env: Any) -> None:
    env: Env = await make_env(transports)
    await _pair(env)
    assert env.portal_a.events("p1") == [(1, "participant", {"action": "join", "data": {
        "id": "p2", "user": "user-p2", "role": "presenter"}})]
    assert await env.call("hold", participant="p1", portal=env.portal_a.name) == "ok"
    for n in range(3):
        await env.call("text", participant="p2", to="all", message=f"m{n}")
    await wait_until(lambda: len(env.portal_b.events("p2", "text")) == 3)
    assert env.portal_a.events("p1", "text") == []

    resumed = await env.resume("p1", env.portal_b, last_seq=1)
    assert [m["seq"] for m in resumed["messages"]] == [2, 3, 4]
    assert [m["data"]["message"] for m in resumed["messages"]] == ["m0", "m1", "m2"]
    assert resumed["last_seq"] == 4

    await env.call("text", participant="p2", to="all", message="after")
    await wait_until(lambda: env.portal_b.events("p1", "text"))
    assert env.portal_b.events("p1", "text") == [(5, "text", {"from": "p2", "to": "all", "message": "after"})]
    assert env.portal_a.events("p1", "text") == []
    assert all(data["action"] == "join" for data in env.portal_b.data("p2", "participant"))


async def test_resume_without_last_seq_returns_every_unacked_message_and_ack_trims(env: Env) -> None:
    await _pair(env)
    await env.call("hold", participant="p1", portal=env.portal_a.name)
    await env.call("text", participant="p2", to="p1", message="hello")
    await env.ack("p1", 1)
    await wait_until(lambda: env.controller.participant("p1").outbox.acked == 1)
    resumed = await env.resume("p1", env.portal_a, last_seq=None)
    assert resumed["messages"] == [{"seq": 2, "event": "text", "data": {"from": "p2", "to": "me", "message": "hello"}}]
    again = await env.resume("p1", env.portal_a, last_seq=2)
    assert again == {"messages": [], "last_seq": 2, "epoch": 2, "origin": {"isp": "isp", "region": "region"}}


async def test_tickets_only_the_latest_is_accepted(env: Env) -> None:
    await env.join("p1")
    old = env.tickets["p1"]
    assert await env.call("refresh_ticket", participant="p1", ticket_id=old, new_ticket_id="fresh") == "ok"
    with pytest.raises(RpcRemoteError) as info:
        await env.call("resume", participant="p1", ticket_id=old, new_ticket_id="other", portal=env.portal_a.name,
                       last_seq=None)
    assert info.value.code == "ticket_mismatch"
    with pytest.raises(RpcRemoteError) as info:
        await env.call("refresh_ticket", participant="p1", ticket_id=old, new_ticket_id="again")
    assert info.value.code == "ticket_mismatch"
    # A repeated refresh (the answer was lost) is accepted.
    assert await env.call("refresh_ticket", participant="p1", ticket_id=old, new_ticket_id="fresh") == "ok"
    env.tickets["p1"] = "fresh"
    assert (await env.resume("p1", env.portal_a, last_seq=None))["messages"] == []


async def test_hold_expiry_makes_the_participant_leave_and_tells_the_others(local: TransportFactory,
                                                                              make_env: Any) -> None:
    env: Env = await make_env(local, reconnection_timeout=0.2)
    await _pair(env)
    await env.call("hold", participant="p2", portal=env.portal_b.name)
    await wait_until(lambda: {"action": "leave", "data": "p2"} in env.portal_a.data("p1", "participant"), timeout=3)
    with pytest.raises(RpcRemoteError) as info:
        await env.resume("p2", env.portal_b, last_seq=None)
    assert info.value.code == "unknown_participant"


async def test_a_stale_hold_from_an_old_portal_is_ignored(env: Env) -> None:
    await _pair(env)
    await env.resume("p1", env.portal_b, last_seq=None)
    await env.call("hold", participant="p1", portal=env.portal_a.name)
    assert env.controller.participant("p1").connected


async def test_exit_quit_of_a_portal_holds_its_participants_and_they_resume_elsewhere(transports: TransportFactory,
                                                                                       make_env: Any) -> None:
    env: Env = await make_env(transports)
    await _pair(env)
    await env.caller.publish_event("exit.quit", {"purpose": "portal", "id": env.portal_a.name, "type": "worker"})
    await wait_until(lambda: not env.controller.participant("p1").connected)
    assert env.controller.participant("p2").connected
    await env.call("text", participant="p2", to="all", message="while away")
    assert env.portal_b.data("p2", "participant") == []  # nobody left, nobody re-joined
    resumed = await env.resume("p1", env.portal_b, last_seq=1)
    assert [m["data"]["message"] for m in resumed["messages"]] == ["while away"]
    await env.call("text", participant="p2", to="p1", message="direct")
    await wait_until(lambda: env.portal_b.events("p1", "text"))
    assert env.portal_b.data("p1", "text") == [{"from": "p2", "to": "me", "message": "direct"}]


async def _held_for_an_unreachable_portal(transports: TransportFactory, make_env: Any) -> Env:
    """p1 (portal A) and p2 (portal B) paired; portal A no longer served, a text to all sent: p1 held
    once the deliveries to A found nobody for ``portal_unreachable_grace`` (0.3 s here)."""
    env: Env = await make_env(transports, portal_unreachable_grace=0.3)
    await _pair(env)
    await env.portal_services[env.portal_a.name].stop()
    await env.call("text", participant="p2", to="all", message="while away")
    await wait_until(lambda: not env.controller.participant("p1").connected, what="p1 held")
    return env


async def test_a_portal_nobody_serves_any_more_has_its_participants_held_without_its_exit_event(
        transports: TransportFactory, make_env: Any) -> None:
    # Events are at most once: the portal's exit.quit may never come. Deliveries that find nobody
    # serving it (after their retries and portal_unreachable_grace) hold its participants as the event
    # would have.
    env = await _held_for_an_unreachable_portal(transports, make_env)
    assert env.controller.participant("p1").hold_deadline is not None
    assert env.controller.participant("p2").connected
    resumed = await env.resume("p1", env.portal_b, last_seq=1)
    assert [m["data"]["message"] for m in resumed["messages"]] == ["while away"]


async def test_a_portal_taken_for_gone_is_offered_its_held_participants_back_once_it_is_served_again(
        transports: TransportFactory, make_env: Any) -> None:
    # Nobody served it for the grace, so p1 was held, but the portal may have been alive all along (a
    # partition the cluster manager did not see): its socket is open and takes this controller for its
    # own. The controller keeps telling the portal to re-attach p1 until the portal answers.
    env = await _held_for_an_unreachable_portal(transports, make_env)
    assert env.portal_a.reattach_calls == []

    env.portal_services[env.portal_a.name] = await env.caller.serve(env.portal_a.name, env.portal_a)
    await wait_until(lambda: env.portal_a.reattach_calls, what="the portal told to re-attach p1")
    assert env.portal_a.reattach_calls == [(env.controller.worker_id, ["p1"])]
    await wait_until(lambda: env.controller.reattach_offers.portals == [], what="no more offers once it answered")
    assert len(env.portal_a.reattach_calls) == 1
    assert env.portal_b.data("p2", "participant") == []  # nobody left

    # what the portal then does for p1: resume with the ticket it has and the last seq it emitted
    ticket = env.tickets["p1"]
    resumed = await env.call("resume", participant="p1", ticket_id=ticket, new_ticket_id=ticket,
                             portal=env.portal_a.name, last_seq=1)
    assert [(m["seq"], m["data"]["message"]) for m in resumed["messages"]] == [(2, "while away")]
    await env.call("text", participant="p2", to="all", message="back")
    await wait_until(lambda: env.portal_a.data("p1", "text"), what="a text at portal A again")
    assert env.portal_a.events("p1", "text") == [(3, "text", {"from": "p2", "to": "all", "message": "back"})]


@pytest.mark.parametrize("end", ["resumed_elsewhere", "hold_expired"])
async def test_the_offer_to_a_portal_that_stays_unreachable_ends_with_the_holds(local: TransportFactory,
                                                                                make_env: Any, end: str) -> None:
    env: Env = await make_env(local, portal_unreachable_grace=0.2, reconnection_timeout=1.0)
    await _pair(env)
    await env.portal_services[env.portal_a.name].stop()
    await env.call("text", participant="p2", to="all", message="while away")
    await wait_until(lambda: env.controller.reattach_offers.portals == [env.portal_a.name], what="the offer")
    if end == "resumed_elsewhere":
        await env.resume("p1", env.portal_b, last_seq=1)
    else:
        await wait_until(lambda: {"action": "leave", "data": "p1"} in env.portal_b.data("p2", "participant"),
                         what="p1 left when its hold ran out")
    await wait_until(lambda: env.controller.reattach_offers.portals == [], what="the offer ended")
    assert env.portal_a.reattach_calls == []


async def test_a_portal_nobody_serves_for_less_than_the_grace_keeps_its_participants_and_gets_everything(
        transports: TransportFactory, make_env: Any) -> None:
    # A portal whose broker node was lost has no queue until it reconnected and declared it again
    # (seconds): its participants are not held meanwhile, and what was sent to them arrives, in order.
    env: Env = await make_env(transports, portal_unreachable_grace=30.0)
    await _pair(env)
    await env.portal_services[env.portal_a.name].stop()
    for n in range(3):
        await env.call("text", participant="p2", to="all", message=f"m{n}")
    await wait_until(lambda: len(env.portal_b.events("p2", "text")) == 3)
    # well past the quick retries (delivery_retries=1, 0.05 s apart in these tests)
    await wait_until(lambda: env.controller.delivery._senders[WorkerId(env.portal_a.name)].unreachable_for() > 1.0,
                     what="the portal unreachable for a while")
    assert env.controller.participant("p1").connected
    env.portal_services[env.portal_a.name] = await env.caller.serve(env.portal_a.name, env.portal_a)
    await env.call("text", participant="p2", to="all", message="m3")
    await wait_until(lambda: len(env.portal_a.events("p1", "text")) == 4, what="every text at portal A")
    assert [(seq, data["message"]) for seq, _, data in env.portal_a.events("p1", "text")] == [
        (2, "m0"), (3, "m1"), (4, "m2"), (5, "m3")]
    assert env.controller.participant("p1").connected
    assert env.controller.participant("p1").hold_deadline is None


async def test_outbox_count_bound_leads_to_resync_required_and_the_participant_leaves(local: TransportFactory,
                                                                                        make_env: Any) -> None:
    env: Env = await make_env(local, outbox_max_messages=3)
    await _pair(env)
    await env.call("hold", participant="p1", portal=env.portal_a.name)
    for n in range(5):
        await env.call("text", participant="p2", to="all", message=f"m{n}")
    with pytest.raises(RpcRemoteError) as info:
        await env.resume("p1", env.portal_a, last_seq=1)
    assert info.value.code == "resync_required"
    assert "2..3" in info.value.message
    assert info.value.details == {"missing_from": 2, "missing_to": 3}  # contracts.controller.ResyncDetails
    assert "p1" not in env.controller.participants
    await wait_until(lambda: {"action": "leave", "data": "p1"} in env.portal_b.data("p2", "participant"))


async def test_outbox_age_bound_evicts_old_messages(local: TransportFactory, make_env: Any) -> None:
    env: Env = await make_env(local, outbox_max_age=10.0, reconnection_timeout=60.0)
    await _pair(env)
    await env.call("hold", participant="p1", portal=env.portal_a.name)
    await env.call("text", participant="p2", to="all", message="old")  # seq 2
    env.clock.advance(4.0)
    await env.call("text", participant="p2", to="all", message="newer")  # seq 3
    env.clock.advance(6.5)  # seqs 1 and 2 are older than 10 s now, seq 3 is not
    with pytest.raises(RpcRemoteError) as info:
        await env.resume("p1", env.portal_a, last_seq=1)
    assert (info.value.code, info.value.message) == ("resync_required", "missing 2..2")
    assert "p1" not in env.controller.participants


async def test_failed_deliveries_stay_in_the_outbox_for_resume(env: Env) -> None:
    await _pair(env)
    env.portal_a.failing = True
    await env.call("text", participant="p2", to="p1", message="lost on the way")
    await wait_until(lambda: not env.controller.delivery._senders[WorkerId(env.portal_a.name)].items)
    env.portal_a.failing = False
    resumed = await env.resume("p1", env.portal_a, last_seq=1)
    assert [m["data"]["message"] for m in resumed["messages"]] == ["lost on the way"]


async def test_resume_of_an_expired_hold_is_hold_expired(local: TransportFactory, make_env: Any) -> None:
    env: Env = await make_env(local, reconnection_timeout=5.0)
    await env.join("p1")
    participant = env.controller.participant("p1")
    await env.call("hold", participant="p1", portal=env.portal_a.name)
    env.controller.room("room-1").cancel_hold_timer("p1")  # the timer has not fired yet when the resume arrives
    env.clock.advance(5.0)  # the deadline itself is past it
    with pytest.raises(RpcRemoteError) as info:
        await env.resume("p1", env.portal_a, last_seq=None)
    assert info.value.code == "hold_expired"
    assert "p1" not in env.controller.participants


async def test_a_used_ticket_is_good_for_a_retry_only_until_the_client_acknowledges(env: Env) -> None:
    await env.join("p1")
    used = env.tickets["p1"]
    await env.resume("p1", env.portal_a, last_seq=None, retry_key="k" * 64)
    new = env.tickets["p1"]
    # the answer was lost: the same relogin again (same key) is accepted, here through portal B...
    again = await env.call("resume", participant="p1", ticket_id=used, new_ticket_id=new,
                           portal=env.portal_b.name, last_seq=None, retry_key="k" * 64)
    assert again["messages"] == []
    env.portals["p1"] = env.portal_b
    # ...until the client shows it has the new session; then the used ticket is dead.
    await env.call("ack", participant="p1", seq=0)
    with pytest.raises(RpcRemoteError) as info:
        await env.call("resume", participant="p1", ticket_id=used, new_ticket_id=new,
                       portal=env.portal_b.name, last_seq=None, retry_key="k" * 64)
    assert info.value.code == "ticket_mismatch"


async def test_a_keyed_relogin_can_be_retried_only_with_its_key(env: Env) -> None:
    await env.join("p1")
    used = env.tickets["p1"]
    await env.resume("p1", env.portal_a, last_seq=None, retry_key="right-key-0123456789")
    new = env.tickets["p1"]
    await env.call("hold", participant="p1", portal=env.portal_a.name)  # even with no live socket
    for key in (None, "wrong-key-0123456789"):
        with pytest.raises(RpcRemoteError) as info:
            await env.call("resume", participant="p1", ticket_id=used, new_ticket_id=new,
                           portal=env.portal_b.name, last_seq=None, retry_key=key)
        assert info.value.code == "ticket_mismatch"
    assert env.controller.participant("p1").portal == env.portal_a.name  # nothing changed
    again = await env.call("resume", participant="p1", ticket_id=used, new_ticket_id=new,
                           portal=env.portal_b.name, last_seq=None, retry_key="right-key-0123456789")
    assert again["epoch"] == 2
    assert env.controller.participant("p1").portal == env.portal_b.name
    await wait_until(lambda: env.portal_a.displaced == [("p1", 2)], what="portal A told to close its socket")


async def test_a_keyless_relogin_can_be_retried_only_while_the_participant_has_no_socket(env: Env) -> None:
    await env.join("p1")
    used = env.tickets["p1"]
    await env.resume("p1", env.portal_a, last_seq=None)
    new = env.tickets["p1"]
    # the socket that got the new ticket is live: a retry (someone else with the used ticket) is refused
    with pytest.raises(RpcRemoteError) as info:
        await env.call("resume", participant="p1", ticket_id=used, new_ticket_id=new,
                       portal=env.portal_b.name, last_seq=None)
    assert info.value.code == "ticket_mismatch"
    participant = env.controller.participant("p1")
    assert (participant.portal, participant.connected, participant.epoch) == (env.portal_a.name, True, 1)
    # that socket is gone (the answer never reached the client): now the retry is accepted
    await env.call("hold", participant="p1", portal=env.portal_a.name)
    again = await env.call("resume", participant="p1", ticket_id=used, new_ticket_id=new,
                           portal=env.portal_b.name, last_seq=None)
    assert again["epoch"] == 2 and participant.connected and participant.portal == env.portal_b.name


async def test_requests_and_acks_from_a_stale_portal_are_refused(env: Env) -> None:
    await _pair(env)
    await env.resume("p1", env.portal_b, last_seq=None)  # p1 moved to portal B; A still thinks it has it
    await wait_until(lambda: env.portal_a.displaced == [("p1", 1)], what="displace sent to portal A")
    for method, args in (("text", {"to": "all", "message": "stale"}), ("unpublish", {"stream_id": "s1"}),
                         ("refresh_ticket", {"ticket_id": env.tickets["p1"], "new_ticket_id": "x"}),
                         ("leave", {})):
        with pytest.raises(RpcRemoteError) as info:
            await env.call(method, participant="p1", portal=env.portal_a.name, **args)
        assert info.value.code == "not_current_portal", method
    await env.call("text", participant="p2", to="p1", message="kept")
    await wait_until(lambda: env.portal_b.events("p1", "text"))
    outbox = env.controller.participant("p1").outbox
    assert outbox.last_seq == 2 and outbox.acked == 0
    await env.ack("p1", 2, portal=env.portal_a)
    await env.call("ack_many", acks={"p1": 2}, portal=env.portal_a.name)
    # Marker: the current portal acks seq 1 after the stale acks were sent (a sender's casts and
    # calls reach the controller in order): once it is applied, the stale ones were handled.
    await env.ack("p1", 1)
    await wait_until(lambda: outbox.acked >= 1, what="the current portal's ack of seq 1")
    assert outbox.acked == 1, "a stale portal's acks do not move the outbox"
    assert await env.call("text", participant="p1", to="all", message="current") == "ok"
    await env.ack("p1", outbox.last_seq)
    await wait_until(lambda: outbox.acked == outbox.last_seq, what="the current portal's ack")


@pytest.mark.parametrize("env_settings", [{"ticket_retry_window": 10.0}])
async def test_a_used_ticket_is_dead_after_the_retry_window(env: Env) -> None:
    await env.join("p1")
    used = env.tickets["p1"]
    await env.resume("p1", env.portal_a, last_seq=None)
    await env.call("hold", participant="p1", portal=env.portal_a.name)  # a keyless retry would be accepted now...
    env.clock.advance(10.0)  # ...but not once the window is over
    with pytest.raises(RpcRemoteError) as info:
        await env.call("resume", participant="p1", ticket_id=used, new_ticket_id=env.tickets["p1"],
                       portal=env.portal_b.name, last_seq=None)
    assert info.value.code == "ticket_mismatch"


async def test_ack_many_trims_several_outboxes_and_refuses_bad_input(env: Env) -> None:
    await env.join("p1")
    await env.join("p2")
    await env.call("text", participant="p1", to="all", message="hi")
    await env.call("ack_many", acks={"p1": 2, "p2": 1, "ghost": 9}, portal=env.portal_a.name)
    participants = {p["id"]: p for p in await env.call("get_participants", room="room-1")}
    assert (participants["p1"]["acked"], participants["p2"]["acked"]) == (2, 1)
    for bad in (None, {"p1": "x"}, ["p1", 1]):
        with pytest.raises(RpcRemoteError) as info:
            await env.call("ack_many", acks=bad, portal=env.portal_a.name)
        assert info.value.code == "bad_arguments"
    participants = {p["id"]: p for p in await env.call("get_participants", room="room-1")}
    assert (participants["p1"]["acked"], participants["p2"]["acked"]) == (2, 1)
