"""Webhooks of an embedded server, through its entry points (clients joining over Socket.IO, a local
application verifying every signature, the real ``switchboard admin dead-letters`` CLI): each event
once, in seq order, signed; a 500 retried; an application that stays down leaves dead letters that
``retry`` delivers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest_asyncio
from prometheus_client import generate_latest

from conference_controller.observe import controller_registry

from switchboard.client import Client
from tests.alerts.test_embedded_alerts import cli
from tests.conftest import MakeEmbedded
from tests.support.app_webhooks import AppReceiver
from tests.support.waiting import wait_until


@pytest_asyncio.fixture
async def app() -> AsyncIterator[AppReceiver]:
    receiver = AppReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


def _types(app: AppReceiver, room: str) -> list[tuple[str, str]]:
    return [(e["type"], e["data"].get("user", "")) for e in app.distinct(room)]


async def test_a_rooms_life_reaches_the_app_once_in_order_and_signed(make_embedded: MakeEmbedded,
                                                                    app: AppReceiver) -> None:
    server = await make_embedded(webhooks=app.config(), controller={"room_grace_period": 0.3})
    alice = await Client.join(server.api_url, api_headers=server.service_headers, room="life", user="alice",
                              role="presenter", extension=False)
    bob = await Client.join(server.api_url, api_headers=server.service_headers, room="life", user="bob",
                            role="presenter")
    reconnected = asyncio.Event()
    alice.on("reconnected", lambda _e: reconnected.set())
    real_url, alice.url = alice.url, "http://127.0.0.1:9"  # her reconnection goes nowhere: she is held
    await alice.drop_transport()
    await wait_until(lambda: ("participant.held", "alice") in _types(app, "life"), what="alice held")
    alice.url = real_url
    await asyncio.wait_for(reconnected.wait(), 15)
    await wait_until(lambda: ("participant.resumed", "alice") in _types(app, "life"), what="alice resumed")
    await bob.leave()
    await alice.leave()
    await wait_until(lambda: ("room.finished", "") in _types(app, "life"), what="the room finished")

    assert _types(app, "life") == [
        ("room.started", ""), ("participant.joined", "alice"), ("participant.joined", "bob"),
        ("participant.held", "alice"), ("participant.resumed", "alice"), ("participant.left", "bob"),
        ("participant.left", "alice"), ("room.finished", ""),
    ]
    assert app.of_room("life") == app.distinct("life")  # each once
    assert [e["seq"] for e in app.of_room("life")] == list(range(1, 9))
    assert len({e["id"].rsplit("-", 1)[0] for e in app.of_room("life")}) == 1  # one run of the room
    assert app.rejected == [] and set(app.answers) == {200}
    left = app.distinct("life")[5]
    assert left["data"] == {"participant": bob.id, "user": "bob", "reason": left["data"]["reason"]}
    # Delivered and done: the room's outbox kept nothing (the room is gone, so a new run starts afresh).
    alice2 = await Client.join(server.api_url, api_headers=server.service_headers, room="life", user="alice",
                               role="presenter")
    await wait_until(lambda: len(app.of_room("life")) == 10, what="the second run's first events")
    second = app.of_room("life")[8:]
    assert [(e["type"], e["seq"]) for e in second] == [("room.started", 1), ("participant.joined", 2)]
    assert second[0]["id"] != app.of_room("life")[0]["id"]
    await alice2.leave()


async def test_an_event_answered_500_is_sent_again_and_order_holds(make_embedded: MakeEmbedded,
                                                                   app: AppReceiver) -> None:
    app.script.extend([500, 503])  # room.started: two failed attempts, then taken
    server = await make_embedded(webhooks=app.config())
    alice = await Client.join(server.api_url, api_headers=server.service_headers, room="flaky", user="alice",
                              role="presenter")
    bob = await Client.join(server.api_url, api_headers=server.service_headers, room="flaky", user="bob",
                            role="presenter")
    await wait_until(lambda: len(app.distinct("flaky")) == 3, what="three events")
    room = server.components["controller"].rooms["flaky"]
    # Done events leave the room's journaled outbox (a next holder would not send them again).
    await wait_until(lambda: room.state.hooks.pending == [], what="the outbox emptied")
    assert room.state.hooks.last_seq == 3
    assert app.answers == [500, 503, 200, 200, 200]
    assert [e["type"] for e in app.accepted] == ["room.started", "participant.joined", "participant.joined"]
    app.check_order("flaky")
    metrics = generate_latest(controller_registry(server.components["controller"])).decode()
    for line in ("switchboard_controller_webhooks_failed_total 2.0", "switchboard_controller_webhooks_sent_total 3.0",
                 "switchboard_controller_webhooks_dead_lettered_total 0.0", "switchboard_controller_webhooks_pending 0.0"):
        assert line in metrics, metrics
    for client in (alice, bob):
        await client.leave()


async def test_an_app_that_stays_down_gets_dead_letters_and_retry_delivers_them(make_embedded: MakeEmbedded,
                                                                                app: AppReceiver) -> None:
    app.status = 503
    server = await make_embedded(webhooks=app.config(attempts=2))
    url, key = server.api_url, server.admin_key
    alice = await Client.join(server.api_url, api_headers=server.service_headers, room="down", user="alice",
                              role="presenter")

    async def hooks() -> list[dict[str, object]]:
        code, out = await cli("list", "--json", url=url, key=key)
        assert code == 0, out
        return [d for d in json.loads(out) if str(d["description"]).startswith("webhook")]

    async def stored() -> int:
        return sum(1 for d in await server.alerts.store.list() if d.description.startswith("webhook"))

    await wait_until(lambda: _is(stored(), 2), what="two webhook dead letters")
    letters = await hooks()
    assert app.answers == [503] * 4 and app.accepted == []
    assert [d["description"] for d in letters] == ["webhook room.started of room down (seq 1) to app",
                                                   "webhook participant.joined of room down (seq 2) to app"]
    assert {(d["to"], d["attempts"], d["reason"]) for d in letters} == {("cluster.webhooks.redeliver", 2, "HTTP 503")}
    assert app.url not in json.dumps(letters)

    code, out = await cli("retry", str(letters[0]["id"]), url=url, key=key)
    assert code == 1 and "retry_failed" in out  # still down: kept
    app.status = 200
    for letter in letters:
        code, out = await cli("retry", str(letter["id"]), url=url, key=key)
        assert code == 0, out
    assert [(e["type"], e["seq"]) for e in app.accepted] == [("room.started", 1), ("participant.joined", 2)]
    assert app.rejected == []
    assert await hooks() == []
    # Given up counts as done: the room's next event follows at once, with the next seq.
    await alice.leave()
    await wait_until(lambda: len(app.accepted) == 3, what="participant.left")
    assert (app.accepted[2]["type"], app.accepted[2]["seq"]) == ("participant.left", 3)


async def _is(count: Awaitable[int], expected: int) -> bool:
    return await count == expected


async def test_an_endpoint_gets_only_the_types_it_asked_for_signed_with_its_own_secret(
    make_embedded: MakeEmbedded, app: AppReceiver,
) -> None:
    rooms_only = AppReceiver(secret="another-application-secret-7f3a9c2e1b")
    await rooms_only.start()
    try:
        config = app.config()
        config["endpoints"].append({"name": "rooms", "url": rooms_only.url, "secret": rooms_only.secret,
                                    "events": ["room.started", "room.finished"]})
        server = await make_embedded(webhooks=config, controller={"room_grace_period": 0.2})
        alice = await Client.join(server.api_url, api_headers=server.service_headers, room="filtered",
                                  user="alice", role="presenter")
        await alice.leave()
        await wait_until(lambda: len(rooms_only.accepted) == 2, what="started and finished")
        await wait_until(lambda: len(app.accepted) == 4, what="every event")
        assert [(e["type"], e["seq"]) for e in rooms_only.accepted] == [("room.started", 1), ("room.finished", 4)]
        assert [e["type"] for e in app.accepted] == ["room.started", "participant.joined", "participant.left",
                                                     "room.finished"]
        assert rooms_only.rejected == [] and app.rejected == []
    finally:
        await rooms_only.stop()


async def test_an_event_in_flight_at_a_restart_is_sent_by_the_restarted_server(
    make_embedded: MakeEmbedded, app: AppReceiver, tmp_path: Path,
) -> None:
    same = {"keys": {"state_file": str(tmp_path / "state.json")},
            "journal": {"kind": "sqlite", "sqlite": {"path": str(tmp_path / "journal.sqlite3")}}}
    first = await make_embedded(webhooks=app.config(), **same)
    clients = [await Client.join(first.api_url, api_headers=first.service_headers, room="again", user="alice",
                                 role="presenter")]
    await wait_until(lambda: len(app.accepted) == 2, what="started, alice joined")
    app.hold()
    clients.append(await Client.join(first.api_url, api_headers=first.service_headers, room="again", user="bob",
                                     role="presenter"))
    await wait_until(lambda: app.parked == 1, what="bob's join in flight")
    await first.stop()  # the attempt is cancelled: seq 3 stays in the room's journaled outbox
    app.release()
    await make_embedded(webhooks=app.config(), **same)  # adopts the room from the journal
    await wait_until(lambda: len(app.distinct("again")) >= 3, what="bob's join, from the restarted server")
    app.check_order("again")
    assert [(e["type"], e["seq"], e["data"].get("user")) for e in app.distinct("again")[:3]] == [
        ("room.started", 1, None), ("participant.joined", 2, "alice"), ("participant.joined", 3, "bob")]
    for client in clients:
        await client.close()
