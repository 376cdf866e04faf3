from __future__ import annotations

import asyncio

from tests.support.waiting import wait_until

from .harness import Client, Harness


async def _text_to(harness: Harness, participant: str, *messages: str) -> None:
    for message in messages:
        await harness.controller.send(participant, "text", {"from": "bob", "to": participant, "message": message})


async def test_relogin_on_the_same_portal_replays_missed_messages_in_order(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    pid = result["id"]
    await _text_to(harness, pid, "m1")
    await wait_until(lambda: client.texts() == ["m1"])
    await client.lose_network()
    await wait_until(lambda: harness.controller.called("hold"), what="hold")
    await _text_to(harness, pid, "m2", "m3")

    again = await harness.client(portal)
    status, ticket = await again.call("relogin", result["reconnectionTicket"])
    assert status == "ok" and isinstance(ticket, str)
    assert harness.ticket_id(ticket) != harness.ticket_id(result["reconnectionTicket"])
    await _text_to(harness, pid, "m4")
    await wait_until(lambda: again.texts() == ["m2", "m3", "m4"], what="missed then live, in order")
    await asyncio.sleep(0.1)
    assert again.texts() == ["m2", "m3", "m4"]
    assert [e for e, _ in again.received] == ["text"] * 3  # no seq for a plain client
    assert all("seq" not in data for _, data in again.received)
    assert await again.call("text", {"to": "all", "message": "back"}) == "ok"
    assert harness.controller.called("text")[-1]["participant"] == pid


async def test_relogin_on_a_second_portal(harness: Harness) -> None:
    first, second = await harness.portal(), await harness.portal()
    client, result = await harness.joined(first)
    await client.lose_network()
    await wait_until(lambda: harness.controller.called("hold"), what="hold")
    await _text_to(harness, result["id"], "while away")
    again = await harness.client(second)
    status, _ = await again.call("relogin", result["reconnectionTicket"])
    assert status == "ok"
    assert harness.controller.members[result["id"]].portal == second.worker_id
    await wait_until(lambda: again.texts() == ["while away"])
    assert await again.call("text", {"to": "all", "message": "hi"}) == "ok"


async def test_an_old_ticket_is_refused_after_a_refresh(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    status, fresh = await client.call("refreshReconnectionTicket")
    assert status == "ok" and harness.ticket_id(fresh) != harness.ticket_id(result["reconnectionTicket"])
    await client.lose_network()
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
    harness.controller.hold_time = 0.2
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    await client.lose_network()
    await wait_until(lambda: harness.controller.called("hold"), what="hold")
    await asyncio.sleep(0.3)
    again = await harness.client(portal)
    status, reason = await again.call("relogin", result["reconnectionTicket"])
    assert status == "error" and reason in ("Reconnection window expired", "Client does NOT exist")


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


async def test_relogin_while_the_old_socket_is_open_takes_over(harness: Harness) -> None:
    portal = await harness.portal()
    old, result = await harness.joined(portal)
    new = await harness.client(portal)
    status, _ = await new.call("relogin", result["reconnectionTicket"])
    assert status == "ok"
    await wait_until(old.disconnected.is_set, what="old socket closed")
    await _text_to(harness, result["id"], "to the new socket")
    await wait_until(lambda: new.texts() == ["to the new socket"])
    assert harness.controller.called("leave") == []


async def test_extension_client_gets_exactly_the_missed_messages_in_the_ack(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal, extension=True)
    pid = result["id"]
    await _text_to(harness, pid, "m1", "m2")
    await wait_until(lambda: client.texts() == ["m1", "m2"])
    assert [data["seq"] for _, data in client.received] == [1, 2]
    await client.sio.emit("ack", {"seq": 1})
    await wait_until(lambda: harness.controller.members[pid].acked == 1, what="ack forwarded")
    await client.lose_network()
    await wait_until(lambda: harness.controller.called("hold"), what="hold")
    await _text_to(harness, pid, "m3", "m4")

    again = await harness.client(portal)
    status, body = await again.call("relogin", {"ticket": result["reconnectionTicket"], "lastSeq": 2})
    assert status == "ok"
    assert body["lastSeq"] == 4
    assert [(m["seq"], m["event"], m["data"]["message"], m["data"]["seq"]) for m in body["messages"]] == [
        (3, "text", "m3", 3), (4, "text", "m4", 4),
    ]
    await _text_to(harness, pid, "m5")
    await wait_until(lambda: again.texts() == ["m5"])
    await asyncio.sleep(0.1)
    assert [(e, d["seq"]) for e, d in again.received] == [("text", 5)]
    assert harness.controller.members[pid].acked == 1  # an extension client acks for itself


async def test_extension_relogin_names_the_missing_range(harness: Harness) -> None:
    harness.controller.outbox_limit = 2
    portal = await harness.portal()
    client, result = await harness.joined(portal, extension=True)
    pid = result["id"]
    await client.lose_network()
    await wait_until(lambda: harness.controller.called("hold"), what="hold")
    await _text_to(harness, pid, "m1", "m2", "m3", "m4")
    again = await harness.client(portal)
    status, error = await again.call("relogin", {"ticket": result["reconnectionTicket"], "lastSeq": 0})
    assert status == "error"
    assert error["code"] == "resync-required" and (error["from"], error["to"]) == (1, 2)


async def test_extension_relogin_errors_are_objects(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    status, error = await client.call("relogin", {"ticket": "eyJmb28iOiAxfQ==", "lastSeq": 3})
    assert status == "error" and error["code"] == "invalid_ticket" and error["message"]
    client = await harness.client(portal)
    status, error = await client.call("relogin", {"lastSeq": 3})
    assert status == "error" and error["code"] == "invalid_request"


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
    texts = harness.controller.called("text")
    assert [(t["participant"], t["message"]) for t in texts] == [(result["id"], "queued")]
    assert other["id"] != result["id"]


async def test_early_requests_without_relogin_are_refused(harness: Harness) -> None:
    portal = await harness.portal(early_request_window=0.2)
    client = await harness.client(portal)
    answers: list[object] = []
    await client.sio.emit("text", {"to": "all", "message": "x"}, callback=lambda *a: answers.append(a))
    await wait_until(lambda: answers == [("error", "Illegal request")])
    assert harness.controller.called("text") == []


async def test_early_requests_are_refused_when_a_login_comes_instead(harness: Harness) -> None:
    portal = await harness.portal()
    client = await harness.client(portal)
    answers: list[object] = []
    await client.sio.emit("text", {"to": "all", "message": "x"}, callback=lambda *a: answers.append(a))
    assert (await client.login(harness.token()))[0] == "ok"
    await wait_until(lambda: answers == [("error", "Illegal request")])
    assert harness.controller.called("text") == []


async def test_notifications_overtaking_the_resume_reply_follow_the_missed_ones(harness: Harness) -> None:
    harness.controller.resume_delay = 0.3
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    pid = result["id"]
    await client.lose_network()
    await wait_until(lambda: harness.controller.called("hold"), what="hold")
    await _text_to(harness, pid, "missed")
    again = await harness.client(portal)
    relogin = asyncio.ensure_future(again.call("relogin", result["reconnectionTicket"]))
    await wait_until(lambda: harness.controller.called("resume"), what="resume started")
    await _text_to(harness, pid, "live during resume")
    status, _ = await relogin
    assert status == "ok"
    await wait_until(lambda: len(again.texts()) == 2)
    await asyncio.sleep(0.1)
    assert again.texts() == ["missed", "live during resume"]


async def test_socket_lost_during_relogin_holds_the_participant_again(harness: Harness) -> None:
    harness.controller.resume_delay = 0.3
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    await client.lose_network()
    await wait_until(lambda: len(harness.controller.called("hold")) == 1, what="first hold")
    again = await harness.client(portal)
    relogin = asyncio.ensure_future(again.call("relogin", result["reconnectionTicket"]))
    await wait_until(lambda: harness.controller.called("resume"), what="resume started")
    await again.lose_network()
    relogin.cancel()
    await wait_until(lambda: len(harness.controller.called("hold")) == 2, what="held again")
    assert harness.controller.members[result["id"]].held_since is not None
    assert harness.controller.called("leave") == []
    harness.controller.resume_delay = 0.0
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
    await asyncio.sleep(0.1)
    assert harness.controller.called("hold") == [] and harness.controller.called("leave") == []
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
    await _text_to(harness, result["id"], "still mine")
    await wait_until(lambda: owner.texts() == ["still mine"])
    assert await owner.call("text", {"to": "all", "message": "hi"}) == "ok"
    assert harness.controller.members[result["id"]].portal == portal.worker_id


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
    sent = harness.controller.called("resume")[-1]["retry_key"]
    assert isinstance(sent, str) and key not in sent and len(sent) == 64


async def test_a_relogin_overtaken_by_one_elsewhere_is_refused_and_closes_its_socket(harness: Harness) -> None:
    harness.controller.resume_delay = 0.3
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    await client.lose_network()
    await wait_until(lambda: harness.controller.called("hold"), what="hold")
    again = await harness.client(portal)
    relogin = asyncio.ensure_future(again.call("relogin", result["reconnectionTicket"]))
    await wait_until(lambda: harness.controller.called("resume"), what="resume started")
    # meanwhile a later resume through another portal was accepted: its displace reaches this portal first
    await harness.transport.call(portal.worker_id, "displace", {"participant": result["id"], "epoch": 9})
    assert await relogin == ("error", "Participant is connected elsewhere")
    await wait_until(again.disconnected.is_set, what="socket closed")
    assert portal.sessions.get(result["id"]) is None
    assert harness.controller.called("hold")[-1:] == [{"participant": result["id"], "portal": portal.worker_id}]
    assert len(harness.controller.called("hold")) == 1, "no hold for a socket that was displaced"
