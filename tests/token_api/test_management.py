"""The management API of live rooms through HTTP on a real embedded server: participants (list,
get, JSON-patch of permissions, delete), streams, server texts and ``PATCH /v1/rooms/{room}``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from switchboard.client import Client, ClientSettings
from switchboard.wiring import EmbeddedCluster
from tests.conftest import MakeEmbedded

FAST = ClientSettings(request_timeout=8.0, reconnection_delay=0.05, reconnection_delay_max=0.5)


@pytest_asyncio.fixture
async def server(make_embedded: MakeEmbedded) -> EmbeddedCluster:
    return await make_embedded()


class Api:
    def __init__(self, server: EmbeddedCluster, session: aiohttp.ClientSession) -> None:
        self.server = server
        self.session = session

    async def __call__(self, method: str, path: str, body: Any = None, *, auth: bool = True,
                       raw: bytes | None = None) -> tuple[int, Any]:
        headers = dict(self.server.service_headers) if auth else {}
        if raw is not None:
            headers["Content-Type"] = "application/json"
        async with self.session.request(method, self.server.api_url + path, json=body, data=raw,
                                        headers=headers) as resp:
            text = await resp.text()
            try:
                return resp.status, await resp.json(content_type=None)
            except ValueError:
                return resp.status, text


@pytest_asyncio.fixture
async def api(server: EmbeddedCluster) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(server, session)


@pytest_asyncio.fixture
async def clients(server: EmbeddedCluster) -> AsyncIterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        await client.close()


async def _join(server: EmbeddedCluster, clients: list[Client], user: str, role: str = "presenter",
                room: str = "mgmt") -> Client:
    client = await Client.join(server.api_url, api_headers=server.service_headers, room=room, user=user, role=role,
                               settings=FAST)
    clients.append(client)
    return client


async def test_participants_are_listed_and_got_as_owt_shows_them(server: EmbeddedCluster, api: Api,
                                                                 clients: list[Client]) -> None:
    alice = await _join(server, clients, "alice")
    bob = await _join(server, clients, "bob", "viewer")
    status, listed = await api("GET", "/v1/rooms/mgmt/participants")
    assert status == 200
    assert {p["id"]: (p["user"], p["role"], p["state"]) for p in listed} == {
        alice.id: ("alice", "presenter", "connected"), bob.id: ("bob", "viewer", "connected")}
    assert all(set(p) == {"id", "user", "role", "permission", "state"} for p in listed)  # no internals
    status, one = await api("GET", f"/v1/rooms/mgmt/participants/{bob.id}")
    assert status == 200 and one == next(p for p in listed if p["id"] == bob.id)
    assert one["permission"] == {"publish": {"audio": False, "video": False},
                                 "subscribe": {"audio": True, "video": True}}
    assert (await api("GET", "/v1/rooms/mgmt/participants/nobody"))[0] == 404
    assert (await api("GET", "/v1/rooms/mgmt/participants/bad%20id"))[0] == 400
    assert (await api("GET", "/v1/rooms/nowhere/participants"))[0] == 404
    assert (await api("GET", "/v1/rooms/mgmt/participants", auth=False))[0] == 401
    status, _ = await api("POST", "/v1/rooms", {"name": "quiet"})
    assert status == 200
    quiet = (await api("GET", "/v1/rooms"))[1]
    quiet_id = next(r["id"] for r in quiet if r["name"] == "quiet")
    assert await api("GET", f"/v1/rooms/{quiet_id}/participants") == (200, [])  # exists, nobody in it
    assert await api("GET", f"/v1/rooms/{quiet_id}/streams") == (200, [])


async def test_a_json_patch_changes_a_participants_permissions_and_a_bad_one_changes_nothing(
    server: EmbeddedCluster, api: Api, clients: list[Client],
) -> None:
    await _join(server, clients, "alice")
    bob = await _join(server, clients, "bob", "viewer")
    path = f"/v1/rooms/mgmt/participants/{bob.id}"
    status, updated = await api("PATCH", path, [{"op": "replace", "path": "/permission/publish/audio", "value": True}])
    assert status == 200, updated
    assert updated["permission"]["publish"] == {"audio": True, "video": False}
    for bad in ([{"op": "remove", "path": "/permission/publish"}],
                [{"op": "replace", "path": "/role", "value": "presenter"}],
                [{"op": "replace", "path": "/permission/subscribe/video", "value": "yes"}],
                {"op": "replace"}, [{"op": "replace", "path": "/permission/publish", "value": True, "extra": 1}]):
        status, body = await api("PATCH", path, bad)
        assert status == 400, (bad, body)
    assert (await api("GET", path))[1] == updated
    assert (await api("PATCH", "/v1/rooms/mgmt/participants/nobody", []))[0] == 404


async def test_deleting_a_participant_drops_it_and_tells_the_others(server: EmbeddedCluster, api: Api,
                                                                    clients: list[Client]) -> None:
    alice = await _join(server, clients, "alice")
    bob = await _join(server, clients, "bob")
    assert (await alice.next_event("participant", timeout=10)).data["action"] == "join"
    status, text = await api("DELETE", f"/v1/rooms/mgmt/participants/{bob.id}")
    assert (status, text) == (200, "Participant deleted")
    await bob.next_event("drop", timeout=10)
    left = (await alice.next_event("participant", timeout=10)).data
    assert left == {"action": "leave", "data": bob.id}
    assert [p["id"] for p in (await api("GET", "/v1/rooms/mgmt/participants"))[1]] == [alice.id]
    assert (await api("DELETE", f"/v1/rooms/mgmt/participants/{bob.id}"))[0] == 404


async def test_a_server_text_reaches_everyone_or_one_participant(server: EmbeddedCluster, api: Api,
                                                                 clients: list[Client]) -> None:
    alice = await _join(server, clients, "alice")
    bob = await _join(server, clients, "bob")
    assert await api("POST", "/v1/rooms/mgmt/messages", {"message": "hello all"}) == (
        200, {"to": "all", "delivered_to": 2})
    assert await api("POST", "/v1/rooms/mgmt/messages", {"to": bob.id, "message": "psst"}) == (
        200, {"to": bob.id, "delivered_to": 1})
    assert (await alice.next_event("text", timeout=10)).data == {"from": "server", "to": "all", "message": "hello all"}
    assert [(await bob.next_event("text", timeout=10)).data for _ in range(2)] == [
        {"from": "server", "to": "all", "message": "hello all"}, {"from": "server", "to": "me", "message": "psst"}]
    for body, code in (({"to": "nobody", "message": "x"}, 404), ({"message": 5}, 400), ({}, 400),
                       ({"message": "x", "from": "alice"}, 400), ({"message": "x" * 20000}, 400)):
        status, answer = await api("POST", "/v1/rooms/mgmt/messages", body)
        assert status == code, (body, answer)
    assert alice.drain_events("text") == [] and bob.drain_events("text") == []
    assert (await api("POST", "/v1/rooms/mgmt/messages", {"message": "x"}, auth=False))[0] == 401


async def test_streams_without_a_media_agent_are_none_and_an_unknown_one_is_404(
    server: EmbeddedCluster, api: Api, clients: list[Client],
) -> None:
    await _join(server, clients, "alice")
    assert await api("GET", "/v1/rooms/mgmt/streams") == (200, [])
    assert (await api("GET", "/v1/rooms/mgmt/streams/s1"))[0] == 404
    assert (await api("DELETE", "/v1/rooms/mgmt/streams/s1"))[0] == 404
    assert (await api("DELETE", "/v1/rooms/mgmt/streams/a%2Fb"))[0] in (400, 404)


async def test_patch_of_a_room_changes_only_what_it_names(api: Api) -> None:
    status, room = await api("POST", "/v1/rooms", {"name": "patchable", "participantLimit": 5})
    assert status == 200, room
    status, patched = await api("PATCH", f"/v1/rooms/{room['_id']}", {"participantLimit": 7})
    assert status == 200, patched
    assert patched["participantLimit"] == 7 and patched["name"] == "patchable"
    assert patched["roles"] == room["roles"] and patched["views"] == room["views"]
    assert (await api("PATCH", f"/v1/rooms/{room['_id']}", {"participantLimit": "many"}))[0] == 400
    assert (await api("GET", f"/v1/rooms/{room['_id']}"))[1]["participantLimit"] == 7
    assert (await api("PATCH", "/v1/rooms/nowhere", {"participantLimit": 7}))[0] == 404


@pytest.mark.parametrize("method,path", [("GET", "/v1/rooms/mgmt/participants/x"),
                                         ("PATCH", "/v1/rooms/mgmt/participants/x"),
                                         ("DELETE", "/v1/rooms/mgmt/participants/x"),
                                         ("GET", "/v1/rooms/mgmt/streams"),
                                         ("DELETE", "/v1/rooms/mgmt/streams/x"),
                                         ("POST", "/v1/rooms/mgmt/messages"),
                                         ("PATCH", "/v1/rooms/mgmt")])
async def test_every_management_route_refuses_an_anonymous_caller(api: Api, method: str, path: str) -> None:
    status, _ = await api(method, path, [] if method == "PATCH" else None, auth=False)
    assert status == 401


async def test_the_owt_routes_answer_a_request_signed_as_owts_management_client_signs_it(
    server: EmbeddedCluster, clients: list[Client],
) -> None:
    """MAuth, as OWT's server SDK (nuve) signs each request: a new cnonce and timestamp each time."""
    from tests.token_api.conftest import mauth_header

    local = server.keys.local
    assert local is not None
    service_id, service_key = local.service_id, local.service_key
    alice = await _join(server, clients, "alice")
    bob = await _join(server, clients, "bob", "viewer")

    async def signed(method: str, path: str, body: Any = None, *, key: str = service_key) -> tuple[int, Any]:
        headers = {"Authorization": mauth_header(service_id, key)}
        async with aiohttp.ClientSession() as session:
            async with session.request(method, server.api_url + path, json=body, headers=headers) as resp:
                return resp.status, await resp.json(content_type=None) if resp.content_type == "application/json" \
                    else await resp.text()

    status, listed = await signed("GET", "/v1/rooms/mgmt/participants")
    assert status == 200 and {p["id"] for p in listed} == {alice.id, bob.id}
    status, updated = await signed("PATCH", f"/v1/rooms/mgmt/participants/{bob.id}",
                                   [{"op": "replace", "path": "/permission/publish/video", "value": True}])
    assert status == 200 and updated["permission"]["publish"]["video"] is True
    assert await signed("GET", "/v1/rooms/mgmt/streams") == (200, [])
    assert await signed("POST", "/v1/rooms/mgmt/messages", {"message": "signed"}) == (
        200, {"to": "all", "delivered_to": 2})
    assert (await signed("DELETE", f"/v1/rooms/mgmt/participants/{bob.id}")) == (200, "Participant deleted")
    assert (await signed("GET", "/v1/rooms/mgmt/participants", key="not-the-key"))[0] == 401
    assert [p["id"] for p in (await signed("GET", "/v1/rooms/mgmt/participants"))[1]] == [alice.id]
