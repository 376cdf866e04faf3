"""Ids and names with control, bidi or invisible characters are refused on both sides (token API and
portal) by the one definition in :mod:`credentials.names`, and nothing changes."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from credentials import UnsafeText, check_safe, escape_unsafe, first_unsafe
from switchboard.client import Client, ClientError
from tests.conftest import MakeEmbedded

from .conftest import Stack

HOSTILE = {
    "nul": "\x00", "lf": "\n", "cr": "\r", "esc": "\x1b", "del": "\x7f", "c1-nel": "\x85", "csi": "\x9b",
    "rlo": "\u202e", "lre": "\u202a", "lri": "\u2066", "pdi": "\u2069", "lrm": "\u200e", "rlm": "\u200f",
    "alm": "\u061c", "line-sep": "\u2028", "para-sep": "\u2029", "zwsp": "\u200b", "bom": "\ufeff",
    "surrogate": "\ud800",
}
FINE = ["alice", "Zoë Ångström", "山田太郎", "مریم\u200cزاده", "👩\u200d💻 dev", "a b-c_d.e@f", "O'Brien"]


# -- the definition -------------------------------------------------------------------------------


@pytest.mark.parametrize("char", list(HOSTILE.values()), ids=list(HOSTILE))
def test_every_unsafe_character_is_refused_wherever_it_is(char: str) -> None:
    for text in (char, f"a{char}", f"{char}b", f"a{char}b"):
        assert first_unsafe(text) == f"U+{ord(char):04X}"
        with pytest.raises(UnsafeText, match=f"U\\+{ord(char):04X}"):
            check_safe(text, "user")
        assert char not in escape_unsafe(text)


@pytest.mark.parametrize("name", FINE)
def test_ordinary_names_in_any_script_are_safe(name: str) -> None:
    check_safe(name, "user")
    assert escape_unsafe(name) == name


def test_escaping_writes_the_code_point() -> None:
    assert escape_unsafe("a\nb\x1b\u202ec") == "a\\x0ab\\x1b\\u202ec"


# -- token API ------------------------------------------------------------------------------------


async def _post(stack: Stack, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        async with session.post(stack.api_url + path, json=body, headers=stack.service_headers) as resp:
            return resp.status, await resp.json()


@pytest.mark.parametrize("kind", ["nul", "lf", "esc", "rlo", "lri", "line-sep"])
async def test_a_token_for_a_hostile_user_room_or_role_is_refused(stack: Stack, kind: str) -> None:
    char = HOSTILE[kind]
    before = await stack.room_ids()
    for body, reason in [
        ({"room": "names", "user": f"eve{char}", "role": "presenter"}, "invalid_user"),
        ({"room": f"room{char}", "user": "eve", "role": "presenter"}, "invalid_body"),
        ({"room": "names-role", "user": "eve", "role": f"presenter{char}"}, "invalid_role"),
    ]:
        status, answer = await _post(stack, "/token", body)
        assert (status, answer["error"]["reason"]) == (400, reason), (body, answer)
    status, answer = await _post(stack, "/v1/rooms/names2/tokens", {"user": f"eve{char}", "role": "presenter"})
    assert (status, answer["error"]["reason"]) == (400, "invalid_user")
    assert await stack.room_ids() == before


@pytest.mark.parametrize("kind", ["nul", "lf", "esc", "rlo", "c1-nel", "zwsp"])
async def test_a_room_with_a_hostile_id_name_role_or_view_is_refused(stack: Stack, kind: str) -> None:
    char = HOSTILE[kind]
    before = await stack.room_ids()
    for body, reason in [
        ({"name": f"team{char}"}, "invalid_body"),
        ({"name": "team", "id": f"id{char}"}, "invalid_body"),
        ({"name": "team", "options": {"roles": [{"role": f"host{char}"}]}}, "invalid_body"),
        ({"name": "team", "options": {"views": [{"label": f"common{char}"}]}}, "invalid_room"),
    ]:
        status, answer = await _post(stack, "/v1/rooms", body)
        assert (status, answer["error"]["reason"]) == (400, reason), (body, answer)
        assert "control or invisible" in answer["error"]["message"]
    assert await stack.room_ids() == before
    async with aiohttp.ClientSession() as session:
        path = "/v1/rooms/" + quote(f"x{char}y", safe="")
        async with session.get(stack.api_url + path, headers=stack.service_headers) as resp:
            assert resp.status == 400 and (await resp.json())["error"]["reason"] == "invalid_room_id"


async def test_a_room_cannot_be_renamed_to_a_hostile_name(make_embedded: MakeEmbedded) -> None:
    server = await make_embedded()
    async with aiohttp.ClientSession(headers=server.service_headers) as session:
        async with session.post(f"{server.api_url}/v1/rooms", json={"name": "calm", "id": "calm"}) as resp:
            assert resp.status == 200
        async with session.put(f"{server.api_url}/v1/rooms/calm", json={"name": "calm\u202eevil"}) as resp:
            assert resp.status == 400
        async with session.get(f"{server.api_url}/v1/rooms/calm") as resp:
            assert (await resp.json())["name"] == "calm"


# -- portal ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nul", "lf", "esc", "rlo", "pdi"])
async def test_the_portal_refuses_hostile_ids_and_delivers_nothing(make_embedded: MakeEmbedded, kind: str) -> None:
    char = HOSTILE[kind]
    server = await make_embedded()
    alice = await Client.join(server.api_url, room="ids", user="alice", role="presenter",
                              api_headers=server.service_headers)
    bob = await Client.join(server.api_url, room="ids", user="bob", role="presenter",
                            api_headers=server.service_headers)
    try:
        assert bob.id is not None
        for event, payload in [
            ("text", {"to": f"all{char}", "message": "hi"}),
            ("text", {"to": "all", "message": "hi", "requestId": f"r{char}1"}),
            ("unpublish", {"id": f"stream{char}"}),
            ("unsubscribe", {"id": f"sub{char}"}),
            ("soac", {"id": f"t{char}", "signaling": {"type": "candidate", "candidate": "x"}}),
            ("stream-control", {"id": f"s{char}", "operation": "pause"}),
        ]:
            with pytest.raises(ClientError) as refused:
                await alice.request(event, payload)
            assert str(refused.value.reason).startswith("invalid request"), (event, refused.value.reason)
        await alice.send_text(bob.id, "after")
        assert (await bob.next_event("text", timeout=10)).data["message"] == "after"
        assert bob.drain_events("text") == []
    finally:
        await alice.leave()
        await bob.leave()
