from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from contracts.portal import DeliverItem, DeliverResult, DeliverTarget, PortalClient
from rpc import RpcRemoteError
from rpc.version import software_version
from tests.support.waiting import wait_until

from .harness import CONTROLLER_ID, Client, Harness

TRACK = {"type": "video", "mid": "0", "source": "camera"}

MALFORMED: dict[str, list[Any]] = {
    "text": [None, "hi", {"message": "no target"}, {"to": "", "message": "x"}, {"to": "all", "message": "x", "requestId": 5}],
    "publish": [None, {}, {"media": None}, {"media": {"tracks": []}}, {"media": {"tracks": [{"type": "smell"}]}},
                {"media": {"tracks": [TRACK]}, "transport": {"type": "carrier-pigeon"}},
                {"media": {"tracks": [TRACK]}, "transport": {"type": "webrtc", "id": "bad id!"}}],
    "unpublish": [None, {}, {"id": "../etc"}, {"id": 7}],
    "subscribe": [None, {"media": {"tracks": [{"type": "audio"}]}}, {"media": {"tracks": [{"type": "audio", "from": "a b"}]}}],
    "unsubscribe": [{}, {"id": ""}],
    "stream-control": [{"id": "abc"}, {"id": "abc", "operation": "explode"}],
    "subscription-control": [{"id": "abc", "operation": "mix"}],
    "soac": [{"id": "abc"}, {"id": "abc", "signaling": {"type": "nonsense"}}, {"id": "a/b", "signaling": {"type": "offer", "sdp": "x"}}],
    "ack": [{"seq": -1}, {"seq": "x"}, None],
}


async def test_malformed_payloads_are_refused_and_change_nothing(harness: Harness) -> None:
    portal = await harness.portal(rate_limit_burst=1000)
    client, _ = await harness.joined(portal)
    before = list(harness.spy.calls)
    for event, payloads in MALFORMED.items():
        for payload in payloads:
            args = () if payload is None else (payload,)
            status, reason = await client.call(event, *args)
            assert status == "error" and reason.startswith("invalid request"), (event, payload, reason)
    assert harness.spy.calls == before
    assert client.sio.connected


async def _published(client: Client, track: dict[str, Any] = TRACK) -> dict[str, Any]:
    """Publish, send the offer: the (fake) media agent answers, the stream is ready."""
    status, pub = await client.call("publish", {"media": {"tracks": [track]}, "attributes": {"a": 1},
                                                "transport": {"type": "webrtc"}})
    assert status == "ok", pub
    offer = {"type": "offer", "sdp": "v=0 offer"}
    assert await client.call("soac", {"id": pub["transportId"], "signaling": offer}) == "ok"
    return dict(pub)


async def test_requests_are_relayed_with_portal_made_ids(harness: Harness) -> None:
    await harness.start_agent()
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    pid = result["id"]

    pub = await _published(client)
    assert len(pub["id"]) == 32 and pub["transportId"] == pub["id"]
    await wait_until(lambda: ("stream", "add") in [(e, d.get("status")) for e, d in client.received], what="stream add")
    status, sub = await client.call("subscribe", {"media": {"tracks": [{"type": "video", "mid": "1", "from": pub["id"]}]},
                                                  "transport": {"type": "webrtc"}})
    assert status == "ok", sub
    assert len(sub["id"]) == 32 and sub["id"] != pub["id"] and sub["transportId"] == sub["id"]
    signaling = {"type": "candidate", "candidate": {"candidate": "a=candidate:1", "sdpMid": "0", "sdpMLineIndex": 0}}
    assert await client.call("soac", {"id": sub["transportId"], "signaling": signaling}) == "ok"
    assert await client.call("stream-control", {"id": pub["id"], "operation": "pause", "data": "video"}) == "ok"
    assert await client.call("subscription-control", {"id": sub["id"], "operation": "update", "data": {}}) == "ok"
    assert await client.call("unsubscribe", {"id": sub["id"]}) == "ok"
    assert await client.call("unpublish", {"id": pub["id"]}) == "ok"
    assert await client.call("text", {"to": "all", "message": "hi", "requestId": "r-1"}) == "ok"

    calls = {name: args for name, args in harness.spy.calls}
    assert calls["publish"]["info"]["media"]["tracks"] == [TRACK]
    assert calls["publish"]["info"]["attributes"] == {"a": 1}
    assert calls["session_signaling"]["signaling"] == signaling
    assert {k: v for k, v in calls["stream_control"].items() if k != "request_id"} == {
        "participant": pid, "portal": portal.worker_id, "stream_id": pub["id"], "operation": "pause", "data": "video"}
    assert calls["text"]["request_id"] == "r-1"
    assert all(args["participant"] == pid and args["portal"] == portal.worker_id
               for name, args in harness.spy.calls if name not in ("join", "ack_many", "on_session_progress"))
    assert harness.agent is not None and harness.agent.signals[-1] == (sub["transportId"], signaling)


async def test_a_publication_reports_progress_to_its_owner_and_is_announced_to_everyone(harness: Harness) -> None:
    """publish → the agent's progress (soac, ready) → ``progress`` to the publisher, ``stream add`` to all."""
    await harness.start_agent()
    portal = await harness.portal()
    alice, joined = await harness.joined(portal, user="alice", extension=True)
    alice_id = joined["id"]
    bob, _ = await harness.joined(portal, user="bob")
    await wait_until(lambda: len(alice.received) == 1, what="alice hears bob join")
    pub = await _published(alice)
    transport, stream = pub["transportId"], pub["id"]
    await wait_until(lambda: len(alice.received) == 4, what="soac, ready, stream add")
    track = {"id": f"{stream}-0", "type": "video", "source": "camera", "status": "active", "mid": "0"}
    info = {"id": stream, "type": "forward", "media": {"tracks": [track]},
            "info": {"owner": alice_id, "type": "webrtc", "inViews": [], "attributes": {"a": 1}}}
    assert alice.received[1:] == [
        ("progress", {"id": transport, "status": "soac", "data": {"type": "answer", "sdp": "v=0 fake"}, "seq": 2}),
        ("progress", {"id": transport, "sessionId": stream, "status": "ready", "seq": 3}),
        ("stream", {"id": stream, "status": "add", "data": info, "seq": 4}),
    ]
    await wait_until(lambda: [e for e, _ in bob.received] == ["stream"], what="bob hears the stream")
    assert bob.received[0][1] == {"id": stream, "status": "add", "data": info}
    assert await alice.call("unpublish", {"id": stream}) == "ok"
    await wait_until(lambda: ("stream", {"id": stream, "status": "remove"}) in bob.received, what="stream remove")


async def test_controller_refusals_come_back_as_error_strings(harness: Harness) -> None:
    portal = await harness.portal()
    client, _ = await harness.joined(portal)
    assert await client.call("text", {"to": "nobody", "message": "x"}) == (
        "error", "target participant does not exist: nobody")


async def test_oversized_request_gets_a_clear_error(harness: Harness) -> None:
    portal = await harness.portal(max_request_bytes=1000)
    client, _ = await harness.joined(portal)
    assert await client.call("text", {"to": "all", "message": "x" * 2000}) == ("error", "message too large")
    assert harness.spy.called("text") == []
    assert await client.call("text", {"to": "all", "message": "small"}) == "ok"


async def test_message_beyond_the_engineio_limit_closes_the_connection(harness: Harness) -> None:
    portal = await harness.portal(max_message_bytes=10_000)
    client, _ = await harness.joined(portal)
    await client.sio.emit("text", {"to": "all", "message": "x" * 20_000})
    await wait_until(client.disconnected.is_set, what="connection closed")


async def test_request_flood_is_rate_limited(harness: Harness) -> None:
    # A refill too slow to matter within the test: exactly the burst gets through (the login took one).
    portal = await harness.portal(rate_limit_burst=5, rate_limit_per_second=0.0001)
    client, _ = await harness.joined(portal)
    answers = await asyncio.gather(*(client.call("text", {"to": "all", "message": str(i)}) for i in range(12)))
    assert answers == ["ok"] * 4 + [("error", "rate limit exceeded")] * 8


async def test_pending_requests_are_bounded(harness: Harness) -> None:
    portal = await harness.portal(max_pending_requests=2, early_request_window=0.3)
    client = await harness.client(portal)
    answers = await asyncio.gather(*(client.call("text", {"to": "all", "message": str(i)}) for i in range(4)))
    assert answers.count(("error", "too many pending requests")) == 2


async def test_drop_emits_drop_and_closes(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    await harness.admin(CONTROLLER_ID, "drop_participant", room="room-1", participant=result["id"])
    await wait_until(client.disconnected.is_set, what="dropped socket closed")
    assert client.received == [("drop", None)]
    assert harness.spy.called("hold") == [] and harness.spy.called("leave") == []
    assert harness.member(result["id"]) is None
    again = await harness.client(portal)
    assert await again.call("relogin", result["reconnectionTicket"]) == ("error", "Client does NOT exist")


async def test_losing_the_controller_drops_its_participants(harness: Harness) -> None:
    portal = await harness.portal()
    client, _ = await harness.joined(portal)
    await harness.real.stop()  # it quits the cluster: the manager announces exit.quit
    await wait_until(client.disconnected.is_set, what="client dropped")
    assert client.received == [("drop", None)]


async def test_a_lost_controllers_sockets_are_moved_room_by_room_with_one_schedule_per_room(harness: Harness) -> None:
    portal = await harness.portal(failover_attempts=2, failover_interval=0.01)
    clients = [(await harness.joined(portal, room="room-1", user=f"user-{n}"))[0] for n in range(3)]
    clients.append((await harness.joined(portal, room="room-2", user="alone"))[0])
    scheduled_before = len(harness.cluster_spy.called("schedule"))
    await harness.real.stop()  # no controller is left: every move fails, then the clients are dropped
    await wait_until(lambda: all(c.disconnected.is_set() for c in clients), what="every client dropped")
    moves = [call["task"] for call in harness.cluster_spy.called("schedule")[scheduled_before:]
             if call["purpose"] == "conference"]
    assert sorted(moves) == ["room-1", "room-1", "room-2", "room-2"]  # per room and attempt, not per socket


async def test_a_room_wide_item_reaches_plain_and_extension_clients(harness: Harness) -> None:
    portal = await harness.portal()
    plain, p = await harness.joined(portal, user="p")
    ext, e = await harness.joined(portal, extension=True, user="e")
    data = {"id": "s1", "status": "remove"}
    targets = [DeliverTarget(p["id"], 7), DeliverTarget(e["id"], 3), DeliverTarget("gone", 1)]
    answer = await PortalClient(harness.transport, portal.worker_id).deliver(
        controller=CONTROLLER_ID, items=[DeliverItem(targets, "stream", data)])
    assert answer == DeliverResult(undelivered=["gone"])
    await wait_until(lambda: ("stream", data) in plain.received)
    await wait_until(lambda: ("stream", {**data, "seq": 3}) in ext.received)
    # the portal acks for the plain client (it never acks itself), marked as not the client's own
    plain_ack = {"acks": {p["id"]: 7}, "portal": portal.worker_id, "unconfirmed": [p["id"]]}
    await wait_until(lambda: plain_ack in harness.spy.called("ack_many"), what="plain ack")


async def test_deliver_carries_several_notifications_in_order(harness: Harness) -> None:
    portal = await harness.portal()
    plain, p = await harness.joined(portal, user="p")
    ext, e = await harness.joined(portal, extension=True, user="e")
    items = [
        [[[p["id"], 4]], "text", {"from": "x", "to": "me", "message": "one"}],
        [[[p["id"], 5], [e["id"], 2]], "text", {"from": "x", "to": "all", "message": "two"}],
        [[["gone", 1]], "text", {"message": "lost"}],
    ]
    answer = await harness.transport.call(portal.worker_id, "deliver", {"controller": CONTROLLER_ID, "items": items})
    assert answer == {"undelivered": ["gone"]}
    await wait_until(lambda: [d["message"] for ev, d in plain.received if ev == "text"] == ["one", "two"])
    await wait_until(lambda: ("text", {"from": "x", "to": "all", "message": "two", "seq": 2}) in ext.received)
    # a notification from a controller that does not own the participant is not delivered
    stray = await harness.transport.call(portal.worker_id, "deliver", {
        "controller": "someone-else", "items": [[[[p["id"], 6]], "text", {"message": "stray"}]]})
    assert stray == {"undelivered": [p["id"]]}


@pytest.mark.parametrize("items", [None, "x", [["not", "enough"]], [[[["p", 1]], 7, {}]], [[["p"], "text", {}]],
                                   [[[["p"]], "text", {}]], [[[["p", "1"]], "text", {}]]])
async def test_deliver_refuses_malformed_items_and_delivers_nothing(harness: Harness, items: object) -> None:
    portal = await harness.portal()
    plain, p = await harness.joined(portal, user="p")
    before = list(plain.received)
    with pytest.raises(RpcRemoteError) as info:
        await harness.transport.call(portal.worker_id, "deliver", {"controller": CONTROLLER_ID, "items": items})
    assert info.value.code == "bad_arguments"
    # Whatever a malformed item could have emitted would come before a notification sent after it.
    harness.text_to(p["id"], "marker")
    await wait_until(lambda: len(plain.received) > len(before), what="the marker")
    assert plain.received == [*before, ("text", {"from": "bob", "to": "me", "message": "marker"})]


async def test_worker_joins_the_cluster_and_quits(harness: Harness) -> None:
    portal = await harness.portal(hostname="portal.example", regions=["eu"])
    worker = await harness.admin("cluster", "get_worker", worker_id=portal.worker_id)
    assert worker["info"] == {"hostname": "portal.example", "port": portal.port, "via_host": "", "secure": False,
                              "max_load": 0.85, "capacity": {"isps": ["isp-0"], "regions": ["eu"]},
                              "version": software_version()}
    assert portal.worker_id.startswith("portal-")
    await harness.joined(portal)

    async def load() -> float:
        return float((await harness.admin("cluster", "get_worker", worker_id=portal.worker_id))["load"])

    await wait_until(lambda: _positive(load), what="load report")
    await portal.stop()
    await portal.stop()
    assert harness.cluster_spy.called("quit") == [{"worker_id": portal.worker_id}]
    assert [w["id"] for w in await harness.admin("cluster", "get_workers", purpose="portal")] == []


async def test_stopping_the_portal_holds_its_participants(harness: Harness) -> None:
    portal = await harness.portal()
    client, result = await harness.joined(portal)
    await portal.stop()
    await wait_until(client.disconnected.is_set, timeout=3, what="the client sees its transport close at once")
    assert harness.spy.called("hold") == [{"participant": result["id"], "portal": portal.worker_id}]
    assert harness.held(result["id"])


async def test_metrics_and_health(harness: Harness) -> None:
    portal = await harness.portal()
    await harness.joined(portal)
    bad = await harness.client(portal)
    await bad.login("nope")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{portal.port}/healthz") as response:
            assert response.status == 200
        async with http.get(f"http://127.0.0.1:{portal.port}/metrics") as response:
            text = await response.text()
    assert 'switchboard_portal_logins_total{reason="",result="ok"} 1.0' in text
    assert 'switchboard_portal_logins_total{reason="invalid_token",result="error"} 1.0' in text
    assert "switchboard_portal_connected_sockets" in text


@pytest.mark.parametrize("origin", ["http://app.example"])
async def test_cors_origin_is_allowed_by_default(harness: Harness, origin: str) -> None:
    portal = await harness.portal()
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{portal.port}/socket.io/?EIO=4&transport=polling"
        async with http.get(url, headers={"Origin": origin}) as response:
            assert response.status == 200
            assert response.headers.get("Access-Control-Allow-Origin") == origin


async def _positive(value: Callable[[], Awaitable[float]]) -> bool:
    return await value() > 0


@pytest.mark.parametrize(("args", "wrong"), [({"room": 7, "controller": CONTROLLER_ID}, "$.room"),
                                             ({"room": "room-1", "controller": None}, "$.controller"),
                                             ({"room": "room-1", "controller": CONTROLLER_ID, "to": 3}, "$.to")])
async def test_room_moved_refuses_malformed_arguments_and_moves_nothing(
        harness: Harness, args: dict[str, object], wrong: str) -> None:
    portal = await harness.portal()
    client, p = await harness.joined(portal, user="p")
    with pytest.raises(RpcRemoteError) as info:
        await harness.transport.call(portal.worker_id, "room_moved", args)
    assert info.value.code == "bad_arguments" and info.value.message.endswith(f"at `{wrong}`"), info.value.message
    session = portal.sessions.get(p["id"])
    assert harness.spy.called("resume") == [] and session is not None and session.controller == CONTROLLER_ID
    # and a well-formed one for another controller's room moves nothing either
    assert await harness.transport.call(portal.worker_id, "room_moved",
                                        {"room": "room-1", "controller": "someone-else"}) == {"moving": 0}


async def test_an_unknown_event_is_answered_at_once_before_and_after_login(harness: Harness) -> None:
    portal = await harness.portal(rate_limit_burst=1000)
    client, _ = await harness.joined(portal)
    fresh = await harness.client(portal)
    before = list(harness.spy.calls)
    for socket in (client, fresh):
        for event, args in (("no-such-request", ({"x": 1},)), ("getUsers", ()), ("LOGIN", ("token",))):
            assert await socket.call(event, *args, timeout=2.0) == ("error", "unknown request"), event
    assert harness.spy.calls == before  # nothing reached the cluster
    assert client.sio.connected and fresh.sio.connected
    assert await client.call("text", {"to": "all", "message": "still served"}) == "ok"
    counted = portal.metrics.registry.get_sample_value(
        "switchboard_portal_requests_total", {"event": "(unknown)", "result": "unknown_request"})
    assert counted == 6


async def test_unknown_events_count_against_the_sockets_rate_limit(harness: Harness) -> None:
    portal = await harness.portal(rate_limit_burst=2, rate_limit_per_second=0.001)
    client, _ = await harness.joined(portal)
    answers = [await client.call("no-such-request", timeout=2.0) for _ in range(4)]
    assert answers[0] == ("error", "unknown request")
    assert any(answer != ("error", "unknown request") for answer in answers), answers


async def test_a_request_whose_answer_the_broker_lost_is_made_again_only_with_a_request_id(harness: Harness) -> None:
    """The broker connection drops with a relayed call in flight: the controller may have applied
    it.  With a request id the portal makes it again (the controller answers a request id once);
    without one it answers the error, and never applies it twice."""
    from rpc import RpcConnectionLost

    portal = await harness.portal(rate_limit_burst=1000)
    sender, _ = await harness.joined(portal, user="sender")
    receiver, _ = await harness.joined(portal, user="receiver")
    real_call = portal.transport.call
    lose_next = True

    async def lossy(target: str, method: str, args: Any = None, **kwargs: Any) -> Any:
        nonlocal lose_next
        answer = await real_call(target, method, args, **kwargs)
        if method == "text" and lose_next:
            lose_next = False
            raise RpcConnectionLost("broker connection lost: test")  # delivered, its answer lost
        return answer

    portal.transport.call = lossy  # type: ignore[method-assign,assignment]
    # Only a broker's transport loses its connection: relayed as over one (``call``, not the
    # in-process ``call_then``, which has no broker to lose).
    portal.server.sio.continued.clear()
    assert await sender.call("text", {"to": "all", "message": "with id", "requestId": "r-1"}) == "ok"
    lose_next = True
    status, reason = await sender.call("text", {"to": "all", "message": "without id"})
    assert (status, reason) == ("error", "service unavailable")
    assert await sender.call("text", {"to": "all", "message": "end"}) == "ok"
    await wait_until(lambda: "end" in receiver.texts(), what="the end at the receiver")
    assert receiver.texts() == ["with id", "without id", "end"]  # each once
