"""``switchboard admin`` against a running server: over HTTP (embedded mode) and over AMQP."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from cluster_manager import ClusterManager, ClusterManagerSettings, admin_rpc_routes
from credentials import AdminKeys
from rpc import LocalBroker, RpcSettings, Transport
from rpc.amqp import AmqpTransport
from switchboard.admin import run_admin

from .conftest import ADMIN_KEY, unique_name


@pytest.fixture(autouse=True)
def _admin_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """How an operator gives the CLI its key when not on the embedded server's machine."""
    monkeypatch.setenv("SWITCHBOARD_ADMIN_KEY", ADMIN_KEY)


def _manager(transport: Transport) -> ClusterManager:
    return ClusterManager(transport, ClusterManagerSettings(name=unique_name()), fresh=False,
                          admin_keys=AdminKeys([ADMIN_KEY]))


@dataclass
class Server:
    url: str
    manager: ClusterManager
    caller: Transport

    async def call(self, method: str, **args: object) -> object:
        return await self.caller.call(self.manager.name, method, args)

    async def admin_call(self, method: str, **args: object) -> object:
        return await self.call(method, admin_key=ADMIN_KEY, **args)


async def _populate(server: Server) -> None:
    info = {"hostname": "portal-1.example", "port": 8080, "capacity": {"isps": [], "regions": []}}
    await server.call("join", purpose="portal", worker_id="portal-1", info=info)
    await server.call("join", purpose="conference", worker_id="conf-1", info={})
    await server.call("schedule", purpose="portal", task="token-1", reserve_time=30.0)
    await server.call("pick_up_tasks", worker_id="conf-1", tasks=["room-1"])


@pytest_asyncio.fixture
async def http_server() -> AsyncIterator[Server]:
    """An embedded-style server: the manager on a LocalBroker, the admin relay on an aiohttp app (port 0)."""
    broker = LocalBroker(roundtrip=True)
    manager = _manager(broker.transport("cm"))
    await manager.start()
    relay = broker.transport("token-api")
    app = web.Application()
    app.add_routes(admin_rpc_routes(relay, manager.name))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = Server(f"http://127.0.0.1:{site.port}", manager, broker.transport("test"))
    await _populate(server)
    yield server
    await runner.cleanup()
    await manager.stop()


async def admin(*argv: str) -> int:
    return await asyncio.to_thread(run_admin, list(argv))


async def test_workers_as_a_table_and_as_json(http_server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert await admin("workers", "--url", http_server.url) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["ID", "PURPOSE", "STATE", "LOAD"]
    assert lines[1].split()[:3] == ["portal-1", "portal", "available"]
    assert "portal-1.example:8080" in lines[1]
    assert lines[2].split()[:2] == ["conf-1", "conference"]

    assert await admin("--url", http_server.url, "workers", "--purpose", "conference", "--json") == 0
    workers = json.loads(capsys.readouterr().out)
    assert [w["id"] for w in workers] == ["conf-1"]
    assert workers[0]["executing"] == 1


async def test_worker_tasks_and_status(http_server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert await admin("worker", "portal-1", "--url", http_server.url) == 0
    out = capsys.readouterr().out
    assert "purpose            portal" in out and '"hostname": "portal-1.example"' in out

    assert await admin("tasks", "portal-1", "--url", http_server.url) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["TASK", "STATE", "EXPIRES_IN"]
    # a portal's tasks are join-token codes: shown as a digest, never as the code
    assert lines[1].split()[0].startswith("token:") and lines[1].split()[1] == "reserved"
    assert "token-1" not in "\n".join(lines)

    assert await admin("tasks", "conf-1", "--url", http_server.url, "--json") == 0
    assert json.loads(capsys.readouterr().out) == [
        {"task": "room-1", "worker": "conf-1", "state": "executing", "expires_in": None}
    ]

    assert await admin("status", "--url", http_server.url) == 0
    out = capsys.readouterr().out
    assert f"cluster manager {http_server.manager.name}: in-service" in out
    assert "active:" not in out  # one manager, no standbys
    assert any(line.split() == ["portal", "1", "1", "0"] for line in out.splitlines())

    assert await admin("status", "--url", http_server.url, "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["workers"] == {"portal": 1, "conference": 1}


async def test_drain_and_undrain(http_server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert await admin("drain", "conf-1", "--url", http_server.url) == 0
    assert "conf-1 drained" in capsys.readouterr().out
    assert (await http_server.admin_call("get_worker", worker_id="conf-1"))["drained"] is True  # type: ignore[index]

    assert await admin("undrain", "conf-1", "--url", http_server.url, "--json") == 0
    assert json.loads(capsys.readouterr().out)["drained"] is False


async def test_an_unknown_worker_is_a_refusal_with_exit_code_1(http_server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    assert await admin("worker", "ghost", "--url", http_server.url) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == "switchboard admin: unknown_worker: worker 'ghost' does not exist"


async def test_the_http_relay_only_passes_admin_methods_with_the_admin_key(
    http_server: Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with aiohttp.ClientSession() as session:
        body = {"method": "schedule", "args": {"purpose": "portal", "task": "sneaky"}}
        async with session.post(f"{http_server.url}/admin/rpc", json=body, headers=headers) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "unknown_method"
        async with session.post(f"{http_server.url}/admin/rpc", data=b"{not json",
                                headers={**headers, "Content-Type": "application/json"}) as response:
            assert response.status == 400
        drain = {"method": "drain", "args": {"worker_id": "conf-1"}}
        async with session.post(f"{http_server.url}/admin/rpc", json=drain) as response:
            assert response.status == 401
        async with session.post(f"{http_server.url}/admin/rpc", json=drain,
                                headers={"Authorization": "Bearer not-the-key"}) as response:
            assert response.status == 401 and (await response.json())["error"]["code"] == "unauthorized"
    assert await http_server.call("get_scheduled", purpose="portal", task="sneaky") is None
    assert (await http_server.admin_call("get_worker", worker_id="conf-1"))["drained"] is False  # type: ignore[index]

    monkeypatch.setenv("SWITCHBOARD_ADMIN_KEY", "not-the-key")
    assert await admin("status", "--url", http_server.url) == 1
    assert "unauthorized" in capsys.readouterr().err
    assert await admin("status", "--url", http_server.url, "--key", ADMIN_KEY, "--json") == 0
    assert json.loads(capsys.readouterr().out)["state"] == "in-service"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_server_gives_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    assert await admin("status", "--url", url, "--timeout", "2") == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.strip().splitlines()
    assert line.startswith(f"switchboard admin: cannot reach the cluster manager at {url}")


async def test_a_server_without_a_manager_behind_the_relay_gives_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    app = web.Application()
    app.add_routes(admin_rpc_routes(LocalBroker().transport("lonely"), "cluster"))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        assert await admin("workers", "--url", f"http://127.0.0.1:{site.port}") == 2
        assert "cannot reach the cluster manager" in capsys.readouterr().err
    finally:
        await runner.cleanup()


async def test_the_cli_reaches_a_manager_over_amqp(broker_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    transport = AmqpTransport("cm-cli-test", RpcSettings(broker_url=broker_url))
    await transport.start()
    manager = _manager(transport)
    await manager.start()
    try:
        await _populate(Server("", manager, transport))
        assert await admin("workers", "--broker", broker_url, "--cluster", manager.name, "--json") == 0
        assert [w["id"] for w in json.loads(capsys.readouterr().out)] == ["portal-1", "conf-1"]
        assert await admin("--broker", broker_url, "--cluster", manager.name, "drain", "portal-1") == 0
        assert "portal-1 drained" in capsys.readouterr().out
        # over the broker too, a caller without the admin key cannot drain
        assert await admin("--broker", broker_url, "--cluster", manager.name, "--key", "wrong", "undrain",
                           "portal-1") == 1
        assert "unauthorized" in capsys.readouterr().err
        assert (await Server("", manager, transport).admin_call("get_worker", worker_id="portal-1"))["drained"]  # type: ignore[index]

        assert await admin("status", "--broker", broker_url, "--cluster", "nobody-serves-this", "--timeout", "2") == 2
        assert "cannot reach the cluster manager" in capsys.readouterr().err
    finally:
        await manager.stop()
        await transport.close()


async def test_an_unreachable_broker_gives_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{_free_port()}/"
    assert await admin("status", "--broker", url, "--timeout", "3") == 2
    err = capsys.readouterr().err
    assert "cannot reach the cluster manager at amqp://guest:***@127.0.0.1" in err


def test_usage_errors_exit_with_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_admin(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert run_admin([]) == 2


def test_status_names_the_active_manager_when_there_are_standbys() -> None:
    from switchboard.admin import _show_status

    status = {"name": "cluster", "state": "in-service", "freshman": False, "ready_in": 0.0, "uptime": 3.0,
              "workers": {}, "tasks": {}, "node": "cluster-manager-ab12@host", "epoch": 3}
    assert "active: cluster-manager-ab12@host (epoch 3; the others are standbys)" in _show_status(status)
