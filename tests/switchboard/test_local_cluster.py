"""`switchboard up --broker …`: a local cluster of role processes, a watchdog, a clean Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from switchboard.client import Client
from switchboard.devbroker import RabbitNode
from switchboard.localkeys import LocalKeys, LocalKeysError, default_state_path, read
from tests.support.processes import free_port
from tests.support.waiting import wait_until
from tests.support.webhook import WebhookReceiver

pytestmark = [pytest.mark.amqp, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> dict[int, str]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True)
    kids = {}
    for line in out.stdout.splitlines():
        child, _, args = line.strip().partition(" ")
        kids[int(child)] = args
    return kids


def _local_keys() -> LocalKeys | None:
    """The keys `switchboard up` made for its children (none yet while it starts)."""
    try:
        return read(default_state_path())
    except LocalKeysError:
        return None


async def _admin(api: str, method: str) -> Any:
    keys = _local_keys()
    if keys is None:
        return None
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api}/admin/rpc", json={"method": method, "args": {}},
                             headers={"Authorization": f"Bearer {keys.admin_key}"}) as resp:
            return (await resp.json()).get("result")


def _cluster_env(tag: str, **extra: str) -> dict[str, str]:
    """The environment of a ``switchboard up --broker`` of its own (names of its own, fast timers)."""
    return dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        SWITCHBOARD_CLUSTER_MANAGER__NAME=f"cluster-{tag}",
        SWITCHBOARD_WORKER__CLUSTER_NAME=f"cluster-{tag}",
        SWITCHBOARD_RPC__EVENTS_EXCHANGE=f"events-{tag}",
        SWITCHBOARD_CLUSTER_MANAGER__INITIAL_TIME="0.5",
        SWITCHBOARD_WORKER__KEEPALIVE_INTERVAL="0.3",
        SWITCHBOARD_PORTAL__HOSTNAME="127.0.0.1",
        **extra,
    )


async def test_the_local_cluster_restarts_a_dead_child_tells_the_alerts_and_stops_cleanly(
    rabbit: RabbitNode, tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:6]
    api_port, portal_port = free_port(), free_port(consecutive=2)
    while api_port in (portal_port, portal_port + 1):
        api_port = free_port()
    receiver = WebhookReceiver()
    await receiver.start()
    env = _cluster_env(tag, SWITCHBOARD_CLUSTER_MANAGER__CHECK_ALIVE_INTERVAL="0.5",
                       SWITCHBOARD_TOKEN_API__ROOMS_DB=str(tmp_path / "rooms.sqlite3"),
                       SWITCHBOARD_ALERTS__SINKS=json.dumps([{"name": "hook", "kind": "json", "url": receiver.url}]),
                       SWITCHBOARD_ALERTS__GROUP_WINDOW="0.5")
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchboard", "up", "--broker", rabbit.url, "--portals", "2", "--controllers", "1",
         "--host", "127.0.0.1", "--api-port", str(api_port), "--portal-port", str(portal_port)],
        env=env, cwd=ROOT, stdout=open(tmp_path / "up.log", "wb"), stderr=subprocess.STDOUT,
    )
    api = f"http://127.0.0.1:{api_port}"

    async def portals_registered() -> int:
        """Portals registered, counted once the controller is too (a login needs both)."""
        try:
            workers = await _admin(api, "get_workers") or []
        except aiohttp.ClientError:
            return 0
        if not any(w["purpose"] == "conference" for w in workers):
            return 0
        return sum(1 for w in workers if w["purpose"] == "portal")

    try:
        await wait_until(lambda: _ready(portals_registered), timeout=60, interval=0.3)
        keys = _local_keys()
        assert keys is not None
        client = await Client.join(api, room="local", user="a", role="presenter",
                                   api_headers={"X-Service-Key": keys.service_key})
        await client.leave()
        # the same welcome as the embedded server: its curl line mints a token that logs in
        banner = (tmp_path / "up.log").read_text()
        assert f"cluster admin  switchboard admin status --url {api}" in banner, banner
        curl = next(line.strip() for line in banner.splitlines() if line.strip().startswith("curl "))
        minted = await asyncio.to_thread(subprocess.run, curl, shell=True, capture_output=True, text=True,
                                         timeout=20, check=True)
        client = await Client.join(minted.stdout.strip())
        assert client.room["id"] == "demo"
        await client.leave()

        portal_pid = next(pid for pid, args in _children(proc.pid).items() if " portal " in f" {args} ")
        os.kill(portal_pid, signal.SIGKILL)
        await wait_until(
            lambda: any(" portal " in f" {a} " and p != portal_pid for p, a in _children(proc.pid).items())
            and sum(" portal " in f" {a} " for a in _children(proc.pid).values()) == 2,
            timeout=30,
        )
        await wait_until(lambda: _ready(portals_registered), timeout=60, interval=0.3)
        kids = list(_children(proc.pid))
        assert len(kids) == 6  # two cluster managers, token API, one controller, two portals
        # The supervisor told the cluster's alert service, which told the webhook (generic JSON).
        restarts = await wait_until(lambda: [f for body in receiver.accepted for f in body["alert"]["faults"]
                                             if f["kind"] == "component_restarted"], timeout=20)
        # The killed portal's restart, told once (a child that exited by itself on a loaded machine —
        # seen once: a start that failed with code 1 — is told too, and is not what this checks).
        portal_restarts = [f["details"]["exit_code"] for f in restarts if f["subject"].startswith("portal")]
        assert portal_restarts == [-9], restarts
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(proc.wait, 30)
        await receiver.stop()
    assert code == 0
    for pid in kids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


async def _ready(portals_registered: Callable[[], Awaitable[int]]) -> bool:
    return await portals_registered() == 2


@pytest.mark.postgres
async def test_the_local_cluster_runs_two_token_apis_on_a_postgres_store(
    rabbit: RabbitNode, postgres_dsn: str, tmp_path: Path,
) -> None:
    """No ``--token-apis``: two, on ``--api-port`` and the next, since the room store is PostgreSQL;
    a room made through one is read through the other, and a token from the second logs in."""
    tag = uuid.uuid4().hex[:6]
    api_port = free_port(consecutive=2)
    portal_port = free_port()
    while portal_port in (api_port, api_port + 1):
        portal_port = free_port()
    env = _cluster_env(tag, SWITCHBOARD_TOKEN_API__STORE__KIND="postgres", SWITCHBOARD_TOKEN_API__STORE__DSN=postgres_dsn)
    out = tmp_path / "up.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "switchboard", "up", "--broker", rabbit.url, "--managers", "1",
         "--host", "127.0.0.1", "--api-port", str(api_port), "--portal-port", str(portal_port)],
        env=env, cwd=ROOT, stdout=open(out, "wb"), stderr=subprocess.STDOUT,
    )
    one, two = (f"http://127.0.0.1:{port}" for port in (api_port, api_port + 1))

    async def ready(api: str) -> bool:
        try:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{api}/readyz") as resp:
                    return resp.status == 200
        except aiohttp.ClientError:
            return False

    try:
        await wait_until(lambda: ready(one), timeout=60, interval=0.3)
        await wait_until(lambda: ready(two), timeout=60, interval=0.3)
        assert "2 token API(s)" in out.read_text()
        keys = _local_keys()
        assert keys is not None
        headers = {"X-Service-Key": keys.service_key}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{one}/v1/rooms", json={"name": "shared", "id": "shared"}, headers=headers) as resp:
                assert resp.status == 200, await resp.text()
            async with http.get(f"{two}/v1/rooms/shared", headers=headers) as resp:
                assert resp.status == 200 and (await resp.json())["id"] == "shared"
        client = await Client.join(two, room="shared", user="a", role="presenter", api_headers=headers)
        await client.leave()
        assert sum(" token-api " in f" {a} " for a in _children(proc.pid).values()) == 2
    finally:
        proc.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(proc.wait, 30)
    assert code == 0
