"""Starts of several pieces stop what did start when a later piece fails: the embedded server (one
process, every role) and a role process (its component, then its broker connection)."""

from __future__ import annotations

import asyncio
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

from rpc import Transport
from switchboard import cli, wiring
from switchboard.config import load_settings
from switchboard.devbroker import RabbitNode
from switchboard.wiring import EmbeddedCluster
from tests.support.processes import bindable, free_port
from tests.support.waiting import wait_until

KEY = "rollback-test-key-" + "k" * 40



async def test_an_embedded_server_whose_portal_port_is_taken_stops_every_role_it_started(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cluster = EmbeddedCluster(load_settings(env={}, overrides={
            "token_api": {"host": "127.0.0.1", "port": 0, "rooms_db": str(tmp_path / "rooms.sqlite3")},
            "portal": {"host": "127.0.0.1", "port": taken.getsockname()[1]},
        }))
        with pytest.raises(OSError):
            await cluster.start()
    assert set(cluster.components) == {"cluster-manager", "token-api", "controller"}  # started, then stopped
    assert bindable(cluster.token_api.port)
    assert cluster.broker._services == {}
    assert cluster.broker._subscriptions == set()
    names = {task.get_name() for task in asyncio.all_tasks()}
    assert {name for name in names if name.startswith(("cluster-", "keepalive:", "load:", "portal-acks:"))} == set()
    with pytest.raises(RuntimeError, match="was stopped; make a new one"):
        await cluster.start()


async def test_a_stopped_embedded_server_cannot_be_started_again(tmp_path: Path) -> None:
    cluster = EmbeddedCluster(load_settings(env={}, overrides={
        "token_api": {"host": "127.0.0.1", "port": 0, "rooms_db": str(tmp_path / "rooms.sqlite3")},
        "portal": {"host": "127.0.0.1", "port": 0},
    }))
    await cluster.start()
    await cluster.start()  # idempotent while running
    await cluster.stop()
    assert cluster.broker._services == {}
    with pytest.raises(RuntimeError, match="was stopped; make a new one"):
        await cluster.start()


async def _no_connection_named(rabbit: RabbitNode, name: str) -> bool:
    listed = await asyncio.to_thread(rabbit.ctl, "list_connections", "client_properties")
    return name not in listed


async def test_a_portal_process_that_cannot_join_releases_its_port_and_broker_connection(
    rabbit: RabbitNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Transport] = []
    role_transport = wiring.role_transport

    def recorded(role: str, settings: Any) -> Transport:
        made.append(role_transport(role, settings))
        return made[-1]

    monkeypatch.setattr(wiring, "role_transport", recorded)
    port = free_port()
    settings = load_settings(env={}, overrides={
        "rpc": {"broker_url": rabbit.url},
        "keys": {"keys": [KEY]},
        # no cluster manager serves this name: the join fails at once
        "worker": {"cluster_name": f"cluster-{uuid.uuid4().hex[:6]}", "join_retries": 1, "join_interval": 0.0},
        "portal": {"host": "127.0.0.1", "port": port},
    })
    with pytest.raises(Exception, match="could not join"):
        await cli._serve_role("portal", settings)
    assert bindable(port)
    assert not made[0].connected
    await wait_until(lambda: _no_connection_named(rabbit, made[0].node_id), timeout=30,
                     what="the role's connection to close")
