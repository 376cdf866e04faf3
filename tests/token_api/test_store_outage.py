"""When the PostgreSQL server of the room store goes away, the token API answers 503
``store_unavailable`` (and the controllers' room loads ``store_unavailable``) instead of failing
obscurely, and serves again once the server is back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from rpc.errors import RpcRemoteError
from tests.support.postgres import PostgresNode
from tests.support.waiting import wait_until
from token_api.service import rooms_service_name
from token_api.settings import RoomStoreSettings

from .conftest import Stack

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def own_postgres() -> Iterator[PostgresNode]:
    """A PostgreSQL server of the test's own, to stop and start again."""
    node = PostgresNode()
    node.start()
    yield node
    node.close()


async def test_a_lost_database_is_a_503_and_a_returning_one_is_used_again(stack: Stack, own_postgres: PostgresNode) -> None:
    settings = RoomStoreSettings(kind="postgres", dsn=own_postgres.dsn(), connect_timeout=1.0, acquire_timeout=1.0,
                                 query_timeout=1.0)
    await stack.start_api(store=settings)
    created = await stack.session.post(stack.url("/v1/rooms"), json={"name": "r", "id": "r1"})
    assert created.status == 200

    await asyncio.to_thread(own_postgres.stop)
    listed = await stack.session.get(stack.url("/v1/rooms"))
    assert listed.status == 503 and listed.headers["Retry-After"] == str(stack.api.settings.retry_after)
    assert (await listed.json())["error"]["reason"] == "store_unavailable"
    assert stack.client is not None
    with pytest.raises(RpcRemoteError) as refused:
        await stack.client.call(rooms_service_name(stack.cluster_name), "get_room", {"room": "r1"})
    assert refused.value.code == "store_unavailable"

    await asyncio.to_thread(own_postgres.start)

    async def served() -> bool:
        response = await stack.session.get(stack.url("/v1/rooms/r1"))
        return response.status == 200

    await wait_until(served, timeout=15)
    room = await stack.client.call(rooms_service_name(stack.cluster_name), "get_room", {"room": "r1"})
    assert room["id"] == "r1"
