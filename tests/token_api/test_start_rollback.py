"""A token API whose port is taken stops serving ``rooms`` and closes its room store again, and a
token API that failed to start or was stopped refuses to start again."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from credentials import Keyring
from rpc import RpcUnavailable, Transport
from tests.support.transports import TransportFactory
from token_api import TokenApi, TokenApiSettings, rooms_service_name


@pytest_asyncio.fixture
async def transports() -> AsyncIterator[TransportFactory]:
    factory = TransportFactory("local")
    yield factory
    await factory.close()


def _settings(tmp_path: Path, port: int = 0) -> TokenApiSettings:
    return TokenApiSettings(host="127.0.0.1", port=port, rooms_db=str(tmp_path / "rooms.sqlite3"),
                            service_keys={"svc": "token-api-rollback-service-key"})


async def _rooms_served(caller: Transport) -> bool:
    try:
        await caller.call(rooms_service_name("cluster"), "no_such_method", {})
    except RpcUnavailable:
        return False
    except Exception:
        return True
    return True


async def test_a_token_api_whose_port_is_taken_serves_no_rooms(transports: TransportFactory, tmp_path: Path) -> None:
    caller = await transports.make("caller")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        api = TokenApi(await transports.make("token-api"), _settings(tmp_path, taken.getsockname()[1]),
                       Keyring(["token-api-rollback-key"]))
        with pytest.raises(OSError):
            await api.start()
    assert not await _rooms_served(caller)
    with pytest.raises(RuntimeError, match="was stopped; make a new one"):
        await api.start()


async def test_a_stopped_token_api_cannot_be_started_again(transports: TransportFactory, tmp_path: Path) -> None:
    caller = await transports.make("caller")
    api = TokenApi(await transports.make("token-api"), _settings(tmp_path), Keyring(["token-api-rollback-key"]))
    await api.start()
    assert await _rooms_served(caller)
    await api.stop()
    assert not await _rooms_served(caller)
    with pytest.raises(RuntimeError, match="was stopped; make a new one"):
        await api.start()
