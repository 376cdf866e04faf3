"""Two token API processes on one PostgreSQL room store, through the real entry points: rooms made
or changed through either (OWT REST with MAuth or a service key) are read and used through the
other, and a controller loads a room's configuration through whichever of them is up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from credentials import Keyring
from rpc.local import LocalBroker, LocalTransport
from switchboard.client import Client, ClientError
from tests.support.processes import ProcessCluster, RoleProcess, free_port
from tests.support.waiting import wait_until
from token_api import TokenApi, TokenApiSettings
from token_api.settings import RoomStoreSettings

from .conftest import mauth_header

pytestmark = [pytest.mark.amqp, pytest.mark.postgres, pytest.mark.slow]


@dataclass
class _RoleWithOwnEnv(RoleProcess):
    own_env: dict[str, str] = field(default_factory=dict)

    def start(self, env: dict[str, str]) -> None:
        super().start({**env, **self.own_env})


def _second_token_api(cluster: ProcessCluster) -> RoleProcess:
    """Another ``switchboard token-api`` process of ``cluster``, on its own port; its own SQLite file
    too, so that nothing but the PostgreSQL store can make the two agree."""
    first = cluster.roles["token-api"]
    port = free_port()
    argv = list(first.argv)
    argv[argv.index("--port") + 1] = str(port)
    role = _RoleWithOwnEnv("token-api-2", argv, cluster.workdir / "token-api-2.log", port,
                           own_env={"SWITCHBOARD_TOKEN_API__ROOMS_DB": str(cluster.workdir / "rooms-2.sqlite3")})
    cluster.roles[role.name] = role
    return role


async def _ready(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/readyz") as resp:
                return resp.status == 200
    except aiohttp.ClientError:
        return False


async def _call(method: str, url: str, headers: dict[str, str], body: Any = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.request(method, url, json=body, headers=headers) as resp:
            return resp.status, await resp.json()


async def _full_after_one(api_url: str, cluster: ProcessCluster, room: str) -> None:
    """The room's participant limit of 1, as the controller loaded it, holds: a second join is refused."""
    first = await Client.join(api_url, api_headers=cluster.service_headers, room=room, user="first", role="presenter")
    with pytest.raises(ClientError) as refused:
        await Client.join(api_url, api_headers=cluster.service_headers, room=room, user="second", role="presenter")
    assert refused.value.reason == f"room {room} is full (1 participants)"
    await first.leave()


async def test_two_token_apis_on_one_postgres_agree_and_either_serves_the_controllers(
    process_cluster: Callable[..., ProcessCluster], postgres_dsn: str,
) -> None:
    cluster = process_cluster(portals=1, controllers=1, env_overrides={
        "SWITCHBOARD_TOKEN_API__STORE__KIND": "postgres",
        "SWITCHBOARD_TOKEN_API__STORE__DSN": postgres_dsn,
    })
    second = _second_token_api(cluster)
    one, two = cluster.api_url, f"http://127.0.0.1:{second.port}"
    await cluster.start()
    try:
        await wait_until(lambda: _ready(two), timeout=30)

        # Made on one with OWT's MAuth, read on the other.
        mauth = {"Authorization": mauth_header("tests", cluster.service_key)}
        status, made = await _call("POST", f"{one}/v1/rooms", mauth,
                                   {"name": "small", "id": "via-one", "options": {"participantLimit": 1}})
        assert status == 200, made
        assert await _call("GET", f"{two}/v1/rooms/via-one", cluster.service_headers) == (200, made)

        # Changed on the other, read back on the first at once.
        status, changed = await _call("PUT", f"{two}/v1/rooms/via-one", cluster.service_headers, {"name": "renamed"})
        assert status == 200 and changed["name"] == "renamed" and changed["participantLimit"] == 1
        assert await _call("GET", f"{one}/v1/rooms/via-one", cluster.service_headers) == (200, changed)
        status, made_two = await _call("POST", f"{two}/v1/rooms", cluster.service_headers,
                                       {"name": "other", "id": "via-two", "options": {"participantLimit": 1}})
        assert status == 200, made_two
        status, listed = await _call("GET", f"{one}/v1/rooms", cluster.service_headers)
        assert status == 200 and [r["id"] for r in listed] == ["via-one", "via-two"]
        # The same id is refused on either: one store.
        status, taken = await _call("POST", f"{one}/v1/rooms", cluster.service_headers, {"name": "x", "id": "via-two"})
        assert status == 409 and taken["error"]["reason"] == "room_exists"

        # Only the second is up: a token from it, and the controller loads the room through it.
        cluster.roles["token-api"].stop()
        await _full_after_one(two, cluster, "via-one")

        # Only the first is up (started again): the same for the room made on the second.
        cluster.roles["token-api"].start(cluster.env)
        await wait_until(lambda: _ready(one), timeout=30)
        second.stop()
        await _full_after_one(one, cluster, "via-two")
    except BaseException:
        print(cluster.logs_tail())
        raise


async def test_a_postgres_store_without_a_dsn_is_refused_at_construction() -> None:
    transport = LocalTransport(LocalBroker(), "token-api")
    settings = TokenApiSettings(port=0, store=RoomStoreSettings(kind="postgres"))
    with pytest.raises(ValueError, match="token_api.store.dsn is empty"):
        TokenApi(transport, settings, Keyring(["k" * 32]))
