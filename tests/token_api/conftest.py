"""Fixtures of the token API tests: a real cluster manager, real portal workers and a token API
on port 0, reached over real HTTP."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from cluster_manager import ADMIN_METHODS, ClusterManager, ClusterManagerSettings
from credentials import AdminKeys, Keyring
from rpc import Transport
from rpc.settings import WorkerSettings
from rpc.worker import ClusterWorker
from tests.support.transports import TransportFactory
from tests.token_api.stores import StoreFactory
from token_api import TokenApi, TokenApiSettings
from token_api.mauth import sign

KEY = "token-api-test-key"
SERVICE_ID = "svc-1"
SERVICE_KEY = "svc-1-secret"
SERVICE_HEADERS = {"X-Service-Key": SERVICE_KEY}
ADMIN_KEY = "admin-key-of-the-token-api-tests"


def decode_token(token: str) -> dict[str, Any]:
    """What the OWT JS SDK does: ``JSON.parse(atob(token))`` (standard base64 only)."""
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
    fields: dict[str, Any] = json.loads(base64.b64decode(token, validate=True))
    return fields


def mauth_header(
    service: str = SERVICE_ID,
    key: str = SERVICE_KEY,
    *,
    cnonce: str | None = None,
    timestamp: int | None = None,
    username: str | None = None,
    role: str | None = None,
    separator: str = ",",
) -> str:
    """An OWT MAuth header, as the OWT server SDK (``nuve``) builds it."""
    cnonce = cnonce if cnonce is not None else str(uuid.uuid4().int % 99999)
    timestamp = timestamp if timestamp is not None else int(time.time() * 1000)
    text = f"{timestamp},{cnonce}"
    pieces = [
        "MAuth realm=http://marte3.dit.upm.es",
        "mauth_signature_method=HMAC_SHA256",
        f"mauth_serviceid={service}",
        f"mauth_cnonce={cnonce}",
        f"mauth_timestamp={timestamp}",
    ]
    if username is not None and role is not None:
        encoded = base64.b64encode(username.encode()).decode()
        text += f",{encoded},{role}"
        pieces += [f"mauth_username={encoded}", f"mauth_role={role}"]
    pieces.append(f"mauth_signature={sign(key, text)}")
    return separator.join(pieces)


@dataclass
class Stack:
    """A cluster manager, portal workers and token APIs sharing one transport kind."""

    transports: TransportFactory
    tmp_path: Path
    #: Sends the service key with every request (an application server).
    session: aiohttp.ClientSession
    #: Sends no credentials unless a request names them (an anonymous caller, an attacker).
    anonymous: aiohttp.ClientSession
    keyring: Keyring = field(default_factory=lambda: Keyring([KEY]))
    cluster_name: str = field(default_factory=lambda: f"cluster-{uuid.uuid4().hex[:6]}")
    manager: ClusterManager | None = None
    client: Transport | None = None
    apis: list[TokenApi] = field(default_factory=list)
    workers: list[ClusterWorker] = field(default_factory=list)

    async def start_manager(self, **settings: Any) -> ClusterManager:
        settings.setdefault("check_alive_interval", 0.2)
        fresh = settings.pop("fresh", False)
        clock = settings.pop("clock", time.monotonic)
        manager = ClusterManager(
            await self.transports.make(f"cm-{self.cluster_name}"),
            ClusterManagerSettings(name=self.cluster_name, **settings),
            fresh=fresh,
            clock=clock,
            admin_keys=AdminKeys([ADMIN_KEY]),
        )
        await manager.start()
        self.manager = manager
        return manager

    async def start_api(self, **settings: Any) -> TokenApi:
        if self.client is None:
            self.client = await self.transports.make("test-client")
        settings.setdefault("host", "127.0.0.1")
        settings.setdefault("port", 0)
        settings.setdefault("rooms_db", str(self.tmp_path / "rooms.sqlite3"))
        settings.setdefault("schedule_budget", 1.0)
        settings.setdefault("service_keys", {SERVICE_ID: SERVICE_KEY})
        api = TokenApi(
            await self.transports.make(f"token-api-{uuid.uuid4().hex[:6]}"),
            TokenApiSettings(**settings),
            self.keyring,
            cluster_name=self.cluster_name,
        )
        await api.start()
        self.apis.append(api)
        return api

    async def add_portal(
        self, worker_id: str, *, isps: list[str] | None = None, regions: list[str] | None = None, **info: Any
    ) -> ClusterWorker:
        info.setdefault("hostname", f"{worker_id}.example.net")
        info.setdefault("port", 8080)
        info["capacity"] = {"isps": isps or [], "regions": regions or []}
        worker = ClusterWorker(
            await self.transports.make(worker_id),
            purpose="portal",
            worker_id=worker_id,
            info=info,
            settings=WorkerSettings(
                cluster_name=self.cluster_name, keepalive_interval=0.1, keepalive_timeout=0.5,
                join_interval=0.05, load_report_interval=0.2,
            ),
        )
        await worker.start()
        self.workers.append(worker)
        return worker

    @property
    def api(self) -> TokenApi:
        return self.apis[-1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.api.port}{path}"

    async def admin(self, method: str, **args: Any) -> Any:
        assert self.client is not None
        if method in ADMIN_METHODS:
            args["admin_key"] = ADMIN_KEY
        return await self.client.call(self.cluster_name, method, args)

    async def post_token(self, body: Any, *, anonymous: bool = False, **kwargs: Any) -> aiohttp.ClientResponse:
        """``POST /token`` with the service key, or with only the ``headers`` given (``anonymous``)."""
        session = self.anonymous if anonymous else self.session
        return await session.post(self.url("/token"), json=body, **kwargs)

    async def close(self) -> None:
        for api in self.apis:
            await api.stop()
        for worker in self.workers:
            await worker.stop(quit=False)
        if self.manager is not None:
            await self.manager.stop()


async def _stack(transports: TransportFactory, tmp_path: Path) -> AsyncIterator[Stack]:
    async with aiohttp.ClientSession(headers=SERVICE_HEADERS) as session, aiohttp.ClientSession() as anonymous:
        stack = Stack(transports, tmp_path, session, anonymous)
        try:
            yield stack
        finally:
            await stack.close()


@pytest_asyncio.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """A stack on the in-process transport (payloads JSON round-tripped)."""
    factory = TransportFactory("local")
    async for value in _stack(factory, tmp_path):
        yield value
    await factory.close()


@pytest_asyncio.fixture
async def any_stack(transports: TransportFactory, tmp_path: Path) -> AsyncIterator[Stack]:
    """A stack on each transport: in-process, then RabbitMQ."""
    async for value in _stack(transports, tmp_path):
        yield value


@pytest.fixture
def keyring() -> Keyring:
    return Keyring([KEY])


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Room stores on one new database per test: a SQLite file, then a database of the session's
    PostgreSQL server."""
    where = str(tmp_path / "rooms.sqlite3") if request.param == "sqlite" else request.getfixturevalue("postgres_dsn")
    factory = StoreFactory(request.param, where)
    yield factory
    await factory.close()
