from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from contracts.portal import PortalClient
from credentials import Keyring, Ticket, encode_ticket, new_id, now_ms
from tests.support.waiting import wait_until

from portal import Portal

from .harness import Client, Harness


def _text_to(harness: Harness, participant: str, *messages: str) -> None:
    harness.text_to(participant, *messages)


async def _lose(harness: Harness, client: Client, participant: str) -> None:
    """The socket's network is gone; the portal told the controller, which holds the participant."""
    await client.lose_network()
    await wait_until(lambda: harness.held(participant), what="held at the controller")


async def _relogin_answer_held(harness: Harness, portal: Portal, ticket: str) -> tuple[Client, Any, asyncio.Event]:
    """A relogin the controller has resumed but whose answer it holds back: the new socket, its
    pending ``relogin`` call, and the event that releases the answer."""
    resumes = harness.spy.hold_replies("resume")
    again = await harness.client(portal)
    relogin = asyncio.ensure_future(again.call("relogin", ticket))
    await wait_until(lambda: harness.spy.called("resume"), what="resumed at the controller")
    return again, relogin, resumes


def _buffered(portal: Portal, participant: str) -> int:
    """Notifications the portal holds back for a participant whose login or relogin is in flight."""
    session = portal.sessions.get(participant)
    return 0 if session is None or session.buffer is None else len(session.buffer)


async def test_relogin_on_the_same_portal_replays_missed_messages_in_order(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    pid = result["id"]
    _text_to(harness, pid, "m1")
    await wait_until(lambda: client.texts() == ["m1"])
    await _lose(harness, client, pid)
    _text_to(harness, pid, "m2", "m3")

    again = await harness.client(portal)
    status, ticket = await again.call("relogin", result["reconnectionTicket"])
    assert status == "ok" and isinstance(ticket, str)
    assert harness.ticket_id(ticket) != harness.ticket_id(result["reconnectionTicket"])
    _text_to(harness, pid, "m4")
    assert await harness.settled(again, pid) == ["m2", "m3", "m4"]  # missed then live, in order, once
    assert [e for e, _ in again.received] == ["text"] * 4  # no seq for a plain client
    assert all("seq" not in data for _, data in again.received)
    assert await again.call("text", {"to": "all", "message": "back"}) == "ok"
    assert harness.spy.called("text")[-1]["participant"] == pid


async def test_relogin_on_a_second_portal(harness: Harness) -> None:
    first, second = await harness.portal(), await harness.portal()
    client, result = await harness.joined(first)
    await _lose(harness, client, result["id"])
    _text_to(harness, result["id"], "while away")
    again = await harness.client(second)
    status, _ = await again.call("relogin", result["reconnectionTicket"])
    assert status == "ok"
    member = harness.member(result["id"])
    assert member is not None and member.portal == second.worker_id
    await wait_until(lambda: again.texts() == ["while away"])
    assert await again.call("text", {"to": "all", "message": "hi"}) == "ok"


async def test_an_old_ticket_is_refused_after_a_refresh(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    status, fresh = await client.call("refreshReconnectionTicket")
    assert status == "ok" and harness.ticket_id(fresh) != harness.ticket_id(result["reconnectionTicket"])
    await _lose(harness, client, result["id"])
    stale = await harness.client(portal)
    assert await stale.call("relogin", result["reconnectionTicket"]) == ("error", "Ticket was revoked")
    await wait_until(stale.disconnected.is_set, what="refused socket closed")
    good = await harness.client(portal)
    status, newest = await good.call("relogin", fresh)
    assert status == "ok"
    assert (await good.call("refreshReconnectionTicket"))[0] == "ok"
    for used in (fresh, newest):
        reused = await harness.client(portal)
        assert await reused.call("relogin", used) == ("error", "Ticket was revoked")


async def test_relogin_after_the_hold_window_is_refused(harness: Harness) -> None:
    await harness.start_controller(reconnection_timeout=0.2)
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    await _lose(harness, client, result["id"])
    await wait_until(lambda: harness.member(result["id"]) is None, what="the hold ran out: the participant left")
    again = await harness.client(portal)
    assert await again.call("relogin", result["reconnectionTicket"]) == ("error", "Client does NOT exist")


async def test_relogin_at_the_end_of_the_hold_window_before_the_participant_left_is_refused(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    await _lose(harness, client, result["id"])
    member = harness.member(result["id"])
    assert member is not None
    # The window is over but the controller's timer has not run yet (a busy loop): set the deadline
    # to now, as waiting for a real one would be a race with the timer.
    member.hold_deadline = time.monotonic()
    again = await harness.client(portal)
    assert await again.call("relogin", result["reconnectionTicket"]) == ("error", "Reconnection window expired")
    assert harness.member(result["id"]) is None  # and it has left


async def test_relogin_after_logout_is_refused(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    assert await client.call("logout") == "ok"
    again = await harness.client(portal)
    assert await again.call("relogin", result["reconnectionTicket"]) == ("error", "Client does NOT exist")


async def test_relogin_with_a_forged_ticket_is_refused(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    status, reason = await client.call("relogin", "eyJmb28iOiAxfQ==")
    assert (status, reason) == ("error", "Invalid reconnection ticket")


def _ticket(harness: Harness, participant: str, *, keyring: Keyring | None = None, lifetime_ms: int = 600_000) -> str:
    now = now_ms()
    return encode_ticket(Ticket(participant_id=participant, ticket_id=new_id(), room="room-1", not_before=now - 1000,
                                not_after=now + lifetime_ms), keyring or harness.keyring)


@pytest.mark.parametrize(("fault", "message", "code"), [
    ({"keyring": Keyring(["not-the-cluster-key"])}, "Invalid reconnection ticket signature", "bad_signature"),
    ({"lifetime_ms": -1}, "Ticket is expired", "ticket_expired"),
])
async def test_relogin_with_a_forged_or_expired_ticket_is_refused(
    harness: Harness, fault: dict[str, Any], message: str, code: str
) -> None:
    portal = await harness.portal()
    _, result = await harness.joined(portal)
    ticket = _ticket(harness, result["id"], **fault)
    client = await harness.client(portal)
    assert await client.call("relogin", ticket) == ("error", message)
    await wait_until(client.disconnected.is_set, what="refused socket closed")
    client = await harness.client(portal)
    assert await client.call("relogin", {"ticket": ticket, "lastSeq": None}) == (
        "error", {"code": code, "message": message})
    assert harness.spy.called("resume") == []


async def test_relogin_while_the_old_socket_is_open_takes_over(harness: Harness) -> None:
    portal = await harness.portal()
    old, result = await harness.joined(portal)
    new = await harness.client(portal)
    status, _ = await new.call("relogin", result["reconnectionTicket"])
    assert status == "ok"
    await wait_until(old.disconnected.is_set, what="old socket closed")
    _text_to(harness, result["id"], "to the new socket")
    await wait_until(lambda: new.texts() == ["to the new socket"])
    assert harness.spy.called("leave") == []


async def test_extension_client_gets_exactly_the_missed_messages_in_the_ack(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal, extension=True)
    pid = result["id"]
    _text_to(harness, pid, "m1", "m2")
    await wait_until(lambda: client.texts() == ["m1", "m2"])
    assert [data["seq"] for _, data in client.received] == [1, 2]
    member = harness.member(pid)
    assert member is not None
    await client.sio.emit("ack", {"seq": 1})
    await wait_until(lambda: member.outbox.acked == 1, what="ack forwarded")
    await _lose(harness, client, pid)
    _text_to(harness, pid, "m3", "m4")

    again = await harness.client(portal)
    status, body = await again.call("relogin", {"ticket": result["reconnectionTicket"], "lastSeq": 2})
    assert status == "ok"
    assert body["lastSeq"] == 4
    assert [(m["seq"], m["event"], m["data"]["message"], m["data"]["seq"]) for m in body["messages"]] == [
        (3, "text", "m3", 3), (4, "text", "m4", 4),
    ]
    assert member.outbox.acked == 2  # the relogin's lastSeq
    _text_to(harness, pid, "m5")
    assert await harness.settled(again, pid) == ["m5"]
    assert again.seqs() == [5, 6]  # m5 and the marker
    await portal.acks.flush()
    assert member.outbox.acked == 2  # an extension client acks for itself: the portal did not


async def test_extension_relogin_names_the_missing_range(harness: Harness) -> None:
    await harness.start_controller(outbox_max_messages=2)
    portal = await harness.portal()
    client, result = await harness.joined(portal, extension=True)
    pid = result["id"]
    await _lose(harness, client, pid)
    _text_to(harness, pid, "m1", "m2", "m3", "m4")
    again = await harness.client(portal)
    status, error = await again.call("relogin", {"ticket": result["reconnectionTicket"], "lastSeq": 0})
    assert (status, error) == ("error", {"code": "resync-required", "message": "resync required: missing 1..2",
                                         "from": 1, "to": 2})
    assert harness.member(pid) is None  # it has left the room: a new login is needed


async def test_extension_relogin_errors_are_objects(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    status, error = await client.call("relogin", {"ticket": "eyJmb28iOiAxfQ==", "lastSeq": 3})
    assert (status, error) == ("error", {"code": "invalid_ticket", "message": "Invalid reconnection ticket"})
    client = await harness.client(portal)
    status, error = await client.call("relogin", {"lastSeq": 3})
    assert status == "error" and error["code"] == "invalid_request" and error["message"].startswith("invalid request")


async def test_requests_before_relogin_are_applied_to_the_right_participant(harness: Harness) -> None:
    portal = await harness.portal()
    _, other = await harness.joined(portal, user="bob")
    client, result = await harness.joined(portal, user="alice")
    await client.lose_network()

    again = Client(portal.port)
    harness.clients.append(again)
    await again.connect()
    answers: list[object] = []
    # socket.io-client 4.x order: the queued request first, then relogin on the new socket.
    await again.sio.emit("text", {"to": "all", "message": "queued"}, callback=lambda *a: answers.append(a))
    status, _ = await again.call("relogin", result["reconnectionTicket"])
    assert status == "ok"
    await wait_until(lambda: answers == [("ok",)], what="the early request's ack")
    texts = harness.spy.called("text")
    assert [(t["participant"], t["message"]) for t in texts] == [(result["id"], "queued")]
    assert other["id"] != result["id"]


async def test_early_requests_without_relogin_are_refused(harness: Harness) -> None:
    portal = await harness.portal(early_request_window=0.2)
    client = await harness.client(portal)
    answers: list[object] = []
    await client.sio.emit("text", {"to": "all", "message": "x"}, callback=lambda *a: answers.append(a))
    await wait_until(lambda: answers == [("error", "Illegal request")])
    assert harness.spy.called("text") == []


async def test_early_requests_are_refused_when_a_login_comes_instead(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    answers: list[object] = []
    await client.sio.emit("text", {"to": "all", "message": "x"}, callback=lambda *a: answers.append(a))
    assert (await client.login(await harness.token()))[0] == "ok"
    await wait_until(lambda: answers == [("error", "Illegal request")])
    assert harness.spy.called("text") == []


async def test_notifications_overtaking_the_resume_reply_follow_the_missed_ones(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    pid = result["id"]
    await _lose(harness, client, pid)
    _text_to(harness, pid, "missed")
    again, relogin, resumes = await _relogin_answer_held(harness, portal, result["reconnectionTicket"])
    _text_to(harness, pid, "live during resume")  # goes to the portal at once, before the answer
    await wait_until(lambda: _buffered(portal, pid) == 1 and not again.received,
                     what="the live text reached the portal before the relogin's answer")
    resumes.set()
    status, _ = await relogin
    assert status == "ok"
    assert await harness.settled(again, pid) == ["missed", "live during resume"]


async def test_socket_lost_during_relogin_holds_the_participant_again(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    await _lose(harness, client, result["id"])
    again, relogin, resumes = await _relogin_answer_held(harness, portal, result["reconnectionTicket"])
    assert not harness.held(result["id"])
    await again.lose_network()
    relogin.cancel()
    resumes.set()  # the answer comes back to a portal whose socket is gone
    await wait_until(lambda: len(harness.spy.called("hold")) == 2, what="held again")
    assert harness.held(result["id"])
    assert harness.spy.called("leave") == []
    retry = await harness.client(portal)
    status, ticket = await retry.call("relogin", result["reconnectionTicket"])
    assert status == "ok", "a relogin whose ack was lost can be retried with the same ticket"
    newest = await harness.client(portal)
    assert (await newest.call("relogin", ticket))[0] == "ok"
    stale = await harness.client(portal)
    assert await stale.call("relogin", result["reconnectionTicket"]) == ("error", "Ticket was revoked")


async def test_relogin_at_another_portal_closes_the_socket_at_the_first_without_a_hold(harness: Harness) -> None:
    first, second = await harness.portal(), await harness.portal()
    old, result = await harness.joined(first)
    new = await harness.client(second)
    status, _ = await new.call("relogin", result["reconnectionTicket"])
    assert status == "ok"
    await wait_until(old.disconnected.is_set, what="the socket at the first portal closed (displace)")
    assert first.sessions.get(result["id"]) is None
    await first.stop()  # returns once its holds (if it sent any) reached the controller
    assert harness.spy.called("hold") == [] and harness.spy.called("leave") == []
    assert not harness.held(result["id"])
    assert await new.call("text", {"to": "all", "message": "only me"}) == "ok"


async def test_a_keyless_retry_of_a_used_ticket_while_its_socket_is_live_is_refused(harness: Harness) -> None:
    portal = await harness.portal()
    old, result = await harness.joined(portal)
    owner = await harness.client(portal)
    status, _ = await owner.call("relogin", result["reconnectionTicket"])
    assert status == "ok"
    await wait_until(old.disconnected.is_set, what="taken over")
    thief = await harness.client(portal)
    assert await thief.call("relogin", result["reconnectionTicket"]) == ("error", "Ticket was revoked")
    thief = await harness.client(portal)
    assert await thief.call("relogin", {"ticket": result["reconnectionTicket"], "lastSeq": None}) == (
        "error", {"code": "ticket_revoked", "message": "Ticket was revoked"})
    await wait_until(thief.disconnected.is_set, what="the refused socket closed")
    assert not owner.disconnected.is_set()
    _text_to(harness, result["id"], "still mine")
    await wait_until(lambda: owner.texts() == ["still mine"])
    assert await owner.call("text", {"to": "all", "message": "hi"}) == "ok"
    member = harness.member(result["id"])
    assert member is not None and member.portal == portal.worker_id and not harness.held(result["id"])


async def test_a_plain_client_whose_relogin_answer_was_lost_can_retry_after_its_replay_was_delivered(
    harness: Harness,
) -> None:
    # The portal acknowledges a plain client's replayed messages itself on emitting them: that proves
    # nothing about what the client read, so it must not close the retry window of the used ticket.
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    pid = result["id"]
    await _lose(harness, client, pid)
    _text_to(harness, pid, "missed")
    lost = await harness.client(portal)
    status, _ = await lost.call("relogin", result["reconnectionTicket"])
    assert status == "ok"
    await wait_until(lambda: lost.texts() == ["missed"], what="the replay")
    member = harness.member(pid)
    assert member is not None
    await wait_until(lambda: member.outbox.acked == member.outbox.last_seq, what="the portal's ack")
    await _lose(harness, lost, pid)  # ...and the client never read the answer
    retry = await harness.client(portal)
    status, ticket = await retry.call("relogin", result["reconnectionTicket"])
    assert status == "ok" and isinstance(ticket, str)
    _text_to(harness, pid, "live")
    await wait_until(lambda: retry.texts()[-1:] == ["live"], what="live delivery on the retried session")
    assert await retry.call("text", {"to": "all", "message": "back"}) == "ok"
    assert harness.spy.called("text")[-1]["participant"] == pid


async def test_a_retry_key_is_checked_by_the_schema_and_passed_hashed(harness: Harness) -> None:
    portal = await harness.portal()
    _, result = await harness.joined(portal)
    ticket = result["reconnectionTicket"]
    for bad in ("short", "x" * 129, "has space in it 0123", 42):
        client = await harness.client(portal)
        status, error = await client.call("relogin", {"ticket": ticket, "lastSeq": None, "retryKey": bad})
        assert status == "error" and error["code"] == "invalid_request", bad
    key = "k" * 32
    client = await harness.client(portal)
    status, _ = await client.call("relogin", {"ticket": ticket, "lastSeq": None, "retryKey": key})
    assert status == "ok"
    sent = harness.spy.called("resume")[-1]["retry_key"]
    assert isinstance(sent, str) and key not in sent and len(sent) == 64


async def test_a_relogin_overtaken_by_one_elsewhere_is_refused_and_closes_its_socket(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    await _lose(harness, client, result["id"])
    again, relogin, resumes = await _relogin_answer_held(harness, portal, result["reconnectionTicket"])
    # meanwhile a later resume through another portal was accepted: its displace reaches this portal first
    await PortalClient(harness.transport, portal.worker_id).displace(participant=result["id"], epoch=9)
    resumes.set()
    assert await relogin == ("error", "Participant is connected elsewhere")
    await wait_until(again.disconnected.is_set, what="socket closed")
    assert portal.sessions.get(result["id"]) is None
    await portal.stop()  # returns once its holds (if it sent any) reached the controller
    assert harness.spy.called("hold") == [{"participant": result["id"], "portal": portal.worker_id}], \
        "no hold for a socket that was displaced"


async def test_a_relogin_taken_over_by_a_retry_of_itself_is_refused_and_its_socket_closed(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    pid = result["id"]
    await _lose(harness, client, pid)
    request = {"ticket": result["reconnectionTicket"], "lastSeq": None, "retryKey": "r" * 32}
    resumes = harness.spy.hold_replies("resume")
    first = await harness.client(portal)
    answer = asyncio.ensure_future(first.call("relogin", request))
    await wait_until(lambda: harness.spy.called("resume"), what="resumed at the controller")
    harness.spy.stop_holding("resume")
    retry = await harness.client(portal)  # the client gave up waiting: the same relogin on a new socket
    status, _ = await retry.call("relogin", request)
    assert status == "ok"
    resumes.set()  # the first relogin's answer comes back after the retry took the participant
    assert await answer == ("error", {"code": "displaced", "message": "Participant is connected elsewhere"})
    await wait_until(first.disconnected.is_set, what="the first socket closed")
    session = portal.sessions.get(pid)
    assert session is not None and session.live
    _text_to(harness, pid, "to the retry")
    await wait_until(lambda: retry.texts() == ["to the retry"], what="delivery on the retry's socket")
    assert await retry.call("text", {"to": "all", "message": "mine"}) == "ok"
    assert harness.spy.called("hold") == [{"participant": pid, "portal": portal.worker_id}], "held once, at the loss"
