"""Hostile callers of the management surfaces, through the real entry points: anonymous token
mints and room changes, admin calls without (or with a wrong) admin key over HTTP and over the
broker, browsers on other origins, tokens forged with the key that used to ship in the code, and
admin answers that would leak join-token codes.  Each refusal is checked to have changed nothing.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from credentials import JoinToken, Keyring, encode_token
from rpc import RpcRemoteError, RpcSettings
from rpc.amqp import AmqpTransport
from switchboard.client import Client, ClientError
from switchboard.client.tokens import mint_token
from switchboard.wiring import EmbeddedCluster
from tests.conftest import MakeEmbedded
from tests.support.processes import ProcessCluster

#: The signing key that shipped in the code before: anyone could sign tokens with it.
OLD_SHIPPED_KEY = "switchboard-development-key-change-me"

Stack = EmbeddedCluster | ProcessCluster


def _token_fields(token: str) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads(base64.b64decode(token))
    return fields


async def _admin(http: aiohttp.ClientSession, stack: Stack, method: str, headers: dict[str, str] | None = None,
                 **args: Any) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{stack.api_url}/admin/rpc", json={"method": method, "args": args},
                         headers=stack.admin_headers if headers is None else headers) as response:
        return response.status, await response.json()


async def _state(http: aiohttp.ClientSession, stack: Stack) -> Any:
    """What an attack must not change: rooms, workers (drained, tasks) and the manager's counts."""
    async with http.get(f"{stack.api_url}/v1/rooms", headers=stack.service_headers) as response:
        rooms = sorted(room["id"] for room in await response.json())
    _, workers = await _admin(http, stack, "get_workers")
    _, status = await _admin(http, stack, "status")
    return rooms, [(w["id"], w["drained"], w["reserved"], w["executing"]) for w in workers["result"]], \
        status["result"]["tasks"]


async def _anonymous_and_cross_origin_callers_are_refused(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        before = await _state(http, stack)
        body = {"room": "made-up-by-an-attacker", "user": "mallory", "role": "presenter"}
        async with http.post(f"{stack.api_url}/token", json=body) as response:
            assert response.status == 401
            assert (await response.json())["error"]["reason"] == "missing_credentials"
        async with http.post(f"{stack.api_url}/token", json=body, headers={"X-Service-Key": "guess"}) as response:
            assert response.status == 401
        async with http.post(f"{stack.api_url}/v1/rooms", json={"name": "evil", "id": "evil"}) as response:
            assert response.status == 401
        async with http.get(f"{stack.api_url}/v1/rooms") as response:
            assert response.status == 401
        async with http.delete(f"{stack.api_url}/v1/rooms/evil") as response:
            assert response.status == 401

        workers = [w for w in before[1] if w[0]]
        target = workers[0][0]
        for headers in ({}, {"Authorization": "Bearer wrong-admin-key"}, {"Authorization": "Basic Zm9vOmJhcg=="}):
            status, answer = await _admin(http, stack, "drain", headers=headers, worker_id=target)
            assert status == 401 and answer["error"]["code"] == "unauthorized"
        # an admin key in the body instead of the header is refused too
        status, _ = await _admin(http, stack, "drain", headers={}, worker_id=target, admin_key="x")
        assert status == 401

        # A web page the operator visits cannot reach the admin route: no CORS header, no
        # preflight answer, and a "simple" text/plain POST (no preflight) is refused even with the key.
        evil = {"Origin": "https://evil.example"}
        async with http.options(f"{stack.api_url}/admin/rpc",
                                headers={**evil, "Access-Control-Request-Method": "POST"}) as response:
            assert "Access-Control-Allow-Origin" not in response.headers
        async with http.post(f"{stack.api_url}/admin/rpc", data=json.dumps({"method": "drain",
                             "args": {"worker_id": target}}), headers={**evil, **stack.admin_headers,
                             "Content-Type": "text/plain"}) as response:
            assert response.status == 415
            assert "Access-Control-Allow-Origin" not in response.headers
        status, answer = await _admin(http, stack, "drain", headers={**evil, **stack.admin_headers}, worker_id="ghost")
        assert status == 404 and answer["error"]["code"] == "unknown_worker"

        # bad arguments are answered in our words, never with Python's exception text
        status, answer = await _admin(http, stack, "drain", worker_id=target, frobnicate=1)
        assert status == 400 and answer["error"]["code"] == "bad_arguments"
        assert "keyword" not in answer["error"]["message"] and "drain()" not in answer["error"]["message"]

        assert await _state(http, stack) == before


async def _forged_tokens_do_not_log_in(stack: Stack) -> None:
    """A holder re-signs its token as someone else with the key that used to ship: refused."""
    viewer = await mint_token(stack.api_url, "forgery", "victor", "viewer", headers=stack.service_headers)
    fields = _token_fields(viewer)
    fields.pop("signature")
    forged = JoinToken(**{**{k: fields[k] for k in ("host", "secure", "code", "origin")},
                          "token_id": fields["tokenId"], "not_after": fields["notAfter"],
                          "room": "another-room", "user": "the-boss", "role": "presenter"})
    with pytest.raises(ClientError, match="signature"):
        await Client.join(encode_token(forged, Keyring([OLD_SHIPPED_KEY])))
    # the real token still works: the forgery claimed nothing
    client = await Client.join(viewer)
    assert client.login_result is not None and client.login_result["role"] == "viewer"
    await client.leave()


async def _admin_answers_hold_no_token_codes(stack: Stack) -> None:
    token = await mint_token(stack.api_url, "codes", "carol", "presenter", headers=stack.service_headers)
    code = _token_fields(token)["code"]
    portal = _token_fields(token)["host"]
    async with aiohttp.ClientSession() as http:
        _, workers = await _admin(http, stack, "get_workers", purpose="portal")
        answers = []
        for worker in workers["result"]:
            status, tasks = await _admin(http, stack, "get_tasks", worker_id=worker["id"])
            assert status == 200
            answers.append(tasks["result"])
    assert any(t["task"].startswith("token:") for tasks in answers for t in tasks), (portal, answers)
    assert code not in json.dumps(answers)


CHECKS: list[Callable[[Stack], Any]] = [
    _anonymous_and_cross_origin_callers_are_refused,
    _forged_tokens_do_not_log_in,
    _admin_answers_hold_no_token_codes,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.strip("_"))
async def test_embedded(make_embedded: MakeEmbedded, check: Callable[[Stack], Any]) -> None:
    server = await make_embedded()
    await check(server)


@pytest.mark.amqp
@pytest.mark.slow
async def test_cluster_on_rabbitmq(process_cluster: Callable[..., ProcessCluster], broker_url: str) -> None:
    cluster = process_cluster(portals=1, controllers=1)
    await cluster.start()
    for check in CHECKS:
        await check(cluster)
    await _the_broker_is_no_way_around_the_admin_key(cluster, broker_url)


async def _the_broker_is_no_way_around_the_admin_key(cluster: ProcessCluster, broker_url: str) -> None:
    """A process that can reach RabbitMQ but has no admin key cannot drain, list or drop."""
    manager = cluster.env["SWITCHBOARD_CLUSTER_MANAGER__NAME"]
    intruder = AmqpTransport("intruder", RpcSettings(broker_url=broker_url))
    await intruder.start()
    try:
        workers = await cluster.admin("get_workers")
        controller = next(w["id"] for w in workers if w["purpose"] == "conference")
        for method, args in (("drain", {"worker_id": controller}), ("get_workers", {}), ("status", {}),
                             ("drain", {"worker_id": controller, "admin_key": "guessed"})):
            with pytest.raises(RpcRemoteError) as refused:
                await intruder.call(manager, method, args)
            assert refused.value.code == "unauthorized"
        for method, args in (("get_rooms", {}), ("drop_participant", {"room": "r", "participant": "p"})):
            with pytest.raises(RpcRemoteError) as refused:
                await intruder.call(controller, method, args)
            assert refused.value.code == "unauthorized"
        assert not any(w["drained"] for w in await cluster.admin("get_workers"))
    finally:
        await intruder.close()
