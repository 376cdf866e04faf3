"""Text messages and request-id de-duplication."""

from __future__ import annotations

import asyncio

import pytest

from rpc import RpcRemoteError
from tests.support.waiting import wait_until

from .conftest import Env


async def test_text_to_all_includes_the_sender(env: Env) -> None:
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    assert await env.call("text", participant="p1", to="all", message="hi all") == "ok"
    expected = {"from": "p1", "to": "all", "message": "hi all"}
    await wait_until(lambda: env.portal_a.data("p1", "text") == [expected])
    await wait_until(lambda: env.portal_b.data("p2", "text") == [expected])


async def test_text_to_one_reaches_only_the_target_as_me(env: Env) -> None:
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    await env.join("p3")
    await env.call("text", participant="p1", to="p2", message={"any": "json"})
    await wait_until(lambda: env.portal_b.data("p2", "text"))
    assert env.portal_b.data("p2", "text") == [{"from": "p1", "to": "me", "message": {"any": "json"}}]
    assert env.portal_a.data("p1", "text") == [] and env.portal_a.data("p3", "text") == []


async def test_text_to_an_unknown_target_is_refused(env: Env) -> None:
    await env.join("p1")
    await env.join("q1", room="room-2")
    for target in ("nobody", "q1"):
        with pytest.raises(RpcRemoteError) as info:
            await env.call("text", participant="p1", to=target, message="x")
        assert info.value.code == "unknown_target"


async def test_a_repeated_request_id_gets_the_same_answer_and_is_applied_once(env: Env) -> None:
    await env.join("p1")
    await env.join("p2", portal=env.portal_b)
    answers = await asyncio.gather(*(env.call("text", participant="p1", to="all", message="once", request_id="r1")
                                     for _ in range(3)))
    assert answers == ["ok", "ok", "ok"]
    await env.call("text", participant="p1", to="all", message="twice", request_id="r2")
    await wait_until(lambda: len(env.portal_b.data("p2", "text")) == 2)
    assert [d["message"] for d in env.portal_b.data("p2", "text")] == ["once", "twice"]


async def test_a_repeated_request_id_gets_the_same_error(env: Env) -> None:
    await env.join("p1")
    codes = []
    for _ in range(2):
        with pytest.raises(RpcRemoteError) as info:
            await env.call("text", participant="p1", to="nobody", message="x", request_id="r1")
        codes.append((info.value.code, info.value.message))
    assert codes[0] == codes[1] and codes[0][0] == "unknown_target"
