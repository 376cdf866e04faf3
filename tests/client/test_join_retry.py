"""``Client.join`` from token APIs when a piece of the cluster just died: a token naming a portal that
cannot be reached is replaced by a new one (bounded), and of several token APIs the next is asked
when one cannot be reached or is unavailable — against the real embedded token API and portal, with
a token API in front of it that can name a dead portal or answer 503."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from aiohttp import web

from switchboard.client import Client, ClientError, ClientSettings, ConnectionLost, TokenApiUnavailable, mint_token
from tests.client.fake_portal import FakePortal
from tests.support.processes import free_port

if TYPE_CHECKING:
    from switchboard.wiring import EmbeddedCluster

_QUICK = ClientSettings(request_timeout=5.0, login_retry_delay=0.01)


def _naming_a_dead_portal(token: str) -> str:
    fields = json.loads(base64.b64decode(token))
    fields["host"] = f"127.0.0.1:{free_port()}"  # nothing listens there
    return base64.b64encode(json.dumps(fields).encode()).decode()


@dataclass
class FrontApi:
    """A token API in front of the real one: its first ``dead_portals`` tokens name a dead portal,
    (``status``) it answers every mint with that status, or (``replay``) it hands out one token again."""

    upstream: str
    headers: dict[str, str]
    dead_portals: int = 0
    #: Its first mints answered 503 (no portal reserved within its budget).
    unavailable: int = 0
    status: int = 0
    replay: str = ""
    mints: int = 0
    url: str = ""
    runner: web.AppRunner | None = field(default=None, repr=False)

    async def _token(self, request: web.Request) -> web.Response:
        self.mints += 1
        if self.status or self.mints <= self.unavailable:
            return web.Response(status=self.status or 503, text="unavailable")
        if self.replay:
            return web.Response(text=self.replay)
        body = await request.json()
        token = await mint_token(self.upstream, body["room"], body["user"], body["role"], headers=self.headers)
        if self.mints <= self.dead_portals:
            token = _naming_a_dead_portal(token)
        return web.Response(text=token)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/token", self._token)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]


@pytest_asyncio.fixture
async def front(stack: EmbeddedCluster) -> AsyncIterator[FrontApi]:
    api = FrontApi(stack.api_url, stack.service_headers)
    await api.start()
    yield api
    assert api.runner is not None
    await api.runner.cleanup()


async def test_a_token_naming_an_unreachable_portal_is_replaced_by_a_new_one(front: FrontApi) -> None:
    front.dead_portals = 2
    client = await Client.join(front.url, room="r", user="ann", settings=_QUICK)
    assert (front.mints, client.login_attempts) == (3, 3)
    assert client.connected and client.room["id"] == "r"
    await client.leave()


async def test_the_logins_of_one_join_are_bounded(front: FrontApi) -> None:
    front.dead_portals = 5
    with pytest.raises(ConnectionLost, match="cannot connect"):
        await Client.join(front.url, room="r", user="bob", settings=ClientSettings(login_attempts=2,
                                                                                  login_retry_delay=0.01))
    assert front.mints == 2


async def test_a_refused_login_is_not_tried_again(front: FrontApi, stack: EmbeddedCluster) -> None:
    front.replay = await mint_token(stack.api_url, "r", "cy", "presenter", headers=stack.service_headers)
    first = await Client.join(front.replay, settings=_QUICK)
    with pytest.raises(ClientError, match="Token already used"):  # refused by a live portal: the answer
        await Client.join(front.url, room="r", user="cy", settings=_QUICK)
    assert front.mints == 1
    await first.leave()


async def test_the_next_token_api_is_asked_when_one_is_unreachable_or_unavailable(
    front: FrontApi, stack: EmbeddedCluster,
) -> None:
    front.status = 503
    dead = f"http://127.0.0.1:{free_port()}"
    client = await Client.join([dead, front.url, stack.api_url], api_headers=stack.service_headers, room="r",
                               user="dee", settings=_QUICK)
    assert client.connected and front.mints == 1
    await client.leave()
    with pytest.raises(TokenApiUnavailable, match="503"):
        await mint_token([dead, front.url], "r", "eve", "presenter")


async def test_a_token_api_that_refuses_is_the_answer(front: FrontApi, stack: EmbeddedCluster) -> None:
    front.status = 403
    with pytest.raises(ClientError, match="403") as refused:
        await mint_token([front.url, stack.api_url], "r", "fay", "presenter", headers=stack.service_headers)
    assert not isinstance(refused.value, TokenApiUnavailable) and front.mints == 1


@pytest.mark.parametrize("reason", ["timeout", "service unavailable"])
async def test_a_login_refused_for_now_is_tried_again_with_a_new_token(portal: FakePortal, reason: str) -> None:
    """The room's controller died during the join: the portal answers ``timeout`` or ``unavailable``."""
    api = FrontApi("", {}, replay=portal.token)
    await api.start()
    refusals = [reason]
    login = portal.handlers["login"]

    async def refused_once(sid: str, payload: Any) -> Any:
        return ("error", refusals.pop()) if refusals else await login(sid, payload)

    portal.handlers["login"] = refused_once
    try:
        client = await Client.join(api.url, room="r", user="gil", settings=_QUICK)
        assert (api.mints, client.login_attempts, len(portal.events("login"))) == (2, 2, 2)
        await client.close()
    finally:
        assert api.runner is not None
        await api.runner.cleanup()


async def test_a_join_no_token_api_answered_is_tried_again_within_the_login_attempts(front: FrontApi) -> None:
    front.unavailable = 2
    client = await Client.join(front.url, room="r", user="hal", settings=_QUICK)
    assert (front.mints, client.login_attempts) == (3, 3) and client.connected
    await client.leave()
    front.mints, front.unavailable = 0, 9
    with pytest.raises(TokenApiUnavailable):
        await Client.join(front.url, room="r", user="ivy", settings=ClientSettings(login_attempts=2,
                                                                                   login_retry_delay=0.01))
    assert front.mints == 2
