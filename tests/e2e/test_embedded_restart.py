"""Restarting `switchboard up` drops nobody: the rooms come back from the journal on local disk.

A real `switchboard up` process with clients in a room — two with the Python client library and the
switchboard extension (seqs, acks, exact replay), one with the library speaking plain OWT and one
bare python-socketio client speaking plain OWT — is stopped (SIGTERM) or killed (SIGKILL) and started
again on the same ports and state.  Every client relogs in with its ticket within its hold window and
finds its room: nobody is dropped or told of a leave or a join, nothing sent before the stop is lost,
and the extension clients get nothing twice.  Each journal kind of the embedded server is restarted on
(``journal.kind`` ``sqlite`` and ``file``), and so is the upgrade to the default: a server whose journal was
SQLite (the embedded default until the file journal replaced it) restarted with no ``journal.kind`` given,
which is the file journal: it takes the SQLite journal's rooms over.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from switchboard.client import Client
from switchboard.client.tokens import mint_token
from switchboard.localkeys import default_state_path
from tests.support.processes import free_port
from tests.support.sockets import RecordingClient
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
ROOM = "demo"
#: ``reconnection_timeout`` of the restart test: every client relogs within it.
HOLD = 20.0


class Server:
    """`switchboard up` in a process of its own, restartable on the same ports and state."""

    def __init__(self, tmp: Path, kind: str = "sqlite") -> None:
        self.api_port, self.portal_port = free_port(), free_port()
        self.env = dict(os.environ, PYTHONPATH=str(ROOT),
                        SWITCHBOARD_TOKEN_API__ROOMS_DB=str(tmp / "rooms.sqlite3"), SWITCHBOARD_JOURNAL__KIND=kind)
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchboard", "up", "--host", "127.0.0.1",
            "--api-port", str(self.api_port), "--portal-port", str(self.portal_port),
            stdout=asyncio.subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.env, cwd=ROOT,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(30):
            while b"Ctrl-C" not in (line := await self.proc.stdout.readline()):
                assert line, "switchboard up exited early"
        # Keep reading its output, so a full pipe never blocks it.
        self._drain = asyncio.create_task(self._read_rest())

    async def _read_rest(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while await self.proc.stdout.readline():
            pass

    async def stop(self, how: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(how)
        assert await asyncio.wait_for(self.proc.wait(), 30) is not None
        await self._drain

    @property
    def service_headers(self) -> dict[str, str]:
        keys = json.loads(default_state_path().read_text())
        return {"X-Service-Key": keys["service_key"]}

    async def token(self, user: str) -> str:
        return await mint_token(self.api_url, ROOM, user, "presenter", headers=self.service_headers)


async def _texts(client: Client, count: int) -> list[str]:
    return [(await client.next_event("text", timeout=30)).data["message"] for _ in range(count)]


#: The embedded server's journal kind before and after the restart.
#: ``auto`` (the default, no ``journal.kind`` given) is ``file``: ``sqlite`` then ``auto`` is the upgrade from a
#: version whose default was ``sqlite``.
KINDS = pytest.mark.parametrize("kinds", [("sqlite", "sqlite"), ("file", "file"), ("sqlite", "auto")],
                                ids=["sqlite", "file", "sqlite-to-default"])


def _restarted_with(server: Server, kinds: tuple[str, str]) -> None:
    """The journal kind of the next start; the journal the first start wrote is where it should be."""
    state = default_state_path()
    if kinds[0] == "file":
        assert list(state.with_name("journal.d").glob("*.seg"))
    else:
        assert state.with_name("journal.sqlite3").exists()
        assert not state.with_name("journal.d").exists()
    if kinds[1] == "auto":
        server.env.pop("SWITCHBOARD_JOURNAL__KIND", None)
    else:
        server.env["SWITCHBOARD_JOURNAL__KIND"] = kinds[1]


def _migrated(kinds: tuple[str, str]) -> None:
    """After an upgrade restart, the SQLite journal was taken over and moved aside."""
    state = default_state_path()
    if kinds == ("sqlite", "auto"):
        assert not state.with_name("journal.sqlite3").exists()
        assert state.with_name("journal.sqlite3.migrated").exists()
        assert list(state.with_name("journal.d").glob("*.seg"))


@KINDS
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "kill-9"])
async def test_a_restart_drops_nobody_and_loses_nothing(tmp_path: Path, how: signal.Signals,
                                                        kinds: tuple[str, str]) -> None:
    server = Server(tmp_path, kinds[0])
    # The hold window every client must relog within (from the restart: a takeover restarts it).
    server.env.update(SWITCHBOARD_CONTROLLER__RECONNECTION_TIMEOUT=str(HOLD))
    await server.start()
    alice = await Client.join(await server.token("alice"))
    bob = await Client.join(await server.token("bob"))
    plain = await RecordingClient(f"http://127.0.0.1:{server.portal_port}").connect()
    login = await plain.login_ok(await server.token("carol"))
    dave = await Client.join(await server.token("dave"), extension=False)  # the library, plain OWT
    # alice hears bob, carol and dave join, bob hears carol and dave: nothing else about
    # participants, ever (carol's first socket hears dave; her socket after the restart nothing).
    assert [(await alice.next_event("participant", timeout=10)).data["action"] for _ in range(3)] == ["join"] * 3
    assert [(await bob.next_event("participant", timeout=10)).data["action"] for _ in range(2)] == ["join"] * 2
    try:
        before = [f"before-{n}" for n in range(5)]
        for text in before:
            await alice.send_text("all", text)
        assert await _texts(bob, 5) == before
        await wait_until(lambda: plain.texts() == before, what="carol's texts")
        assert await _texts(dave, 5) == before

        await server.stop(how)
        _restarted_with(server, kinds)
        await server.start()
        _migrated(kinds)

        # The library clients relog by themselves; the plain client does what the OWT SDK does.
        await wait_until(lambda: all(c.reconnections == 1 for c in (alice, bob, dave)), timeout=HOLD,
                         what="the library clients' relogins")
        again = await RecordingClient(f"http://127.0.0.1:{server.portal_port}").connect()
        status, ticket = await again.call("relogin", login["reconnectionTicket"])
        assert status == "ok", ticket
        earlier = plain.texts()
        joins = plain.participant_events()  # dave's, on carol's first socket
        await plain.close()
        plain = again

        after = [f"after-{n}" for n in range(5)]
        for text in after:
            await alice.send_text("all", text)
        assert await _texts(bob, 5) == after
        await wait_until(lambda: plain.texts()[-5:] == after, what="carol's texts after the restart")

        assert await _texts(alice, 10) == before + after  # the sender is in "all" too
        for client in (alice, bob):
            assert client.state == "ready" and client.duplicates == 0 and client.out_of_order == 0
            assert client.drain_events("participant") == [] and client.drain_events("drop") == []
        # The plain library client: nothing lost, in order (one emitted just before a kill may come
        # again in the relogin's replay), relogged once, nobody joined or left.
        got = []
        while "after-4" not in got:
            got.append((await dave.next_event("text", timeout=30)).data["message"])
        assert [text for text in dict.fromkeys(got) if text not in before] == after, got
        assert dave.state == "ready" and dave.reconnections == 1
        assert dave.drain_events("participant") == [] and dave.drain_events("drop") == []
        assert [e for e, _ in plain.received if e == "drop"] == []
        # On the new socket no leave and no new join: at most dave's join again, emitted just before
        # a kill and replayed (a plain client's messages are acked by the portal as it emits them).
        assert [e for e in plain.participant_events() if e not in joins] == []
        # A plain OWT client has no seqs: none lost is its promise (one emitted just before a kill
        # may come again in the relogin's replay).
        assert list(dict.fromkeys(earlier + plain.texts())) == before + after
    finally:
        for client in (alice, bob, dave):
            await client.leave()
        await plain.close()
        if server.proc is not None and server.proc.returncode is None:
            await server.stop(signal.SIGTERM)


async def _admin(server: Server, method: str, **args: object) -> object:
    keys = json.loads(default_state_path().read_text())
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{server.api_url}/admin/rpc", json={"method": method, "args": args},
                                headers={"Authorization": f"Bearer {keys['admin_key']}"}) as response:
            body = await response.json()
    assert "error" not in body, body
    return body["result"]


async def _room_tasks(server: Server) -> list[str]:
    """The rooms the controller runs now (a closed room's task lingers as a reservation: not counted)."""
    workers = await _admin(server, "get_workers", purpose="conference")
    assert isinstance(workers, list) and len(workers) == 1
    tasks = await _admin(server, "get_tasks", worker_id=workers[0]["id"])
    assert isinstance(tasks, list)
    return sorted(task["task"] for task in tasks if task["state"] == "executing")


@KINDS
async def test_a_room_nobody_comes_back_to_is_rebuilt_at_start_and_ends_with_its_holds(
        tmp_path: Path, kinds: tuple[str, str]) -> None:
    server = Server(tmp_path, kinds[0])
    server.env.update(SWITCHBOARD_CONTROLLER__RECONNECTION_TIMEOUT="2", SWITCHBOARD_CONTROLLER__ROOM_GRACE_PERIOD="1")
    await server.start()
    try:
        dave = await Client.join(await server.token("dave"))
        assert await _room_tasks(server) == [ROOM]
        await server.stop(signal.SIGKILL)
        await dave.close()
        _restarted_with(server, kinds)
        await server.start()
        _migrated(kinds)
        # Nobody relogs: the room is rebuilt at start anyway (dave held), so its hold still ends.
        assert await _room_tasks(server) == [ROOM]
        await wait_until(lambda: _no_room(server), timeout=20, what="dave's hold and the room's grace period over")
    finally:
        await server.stop(signal.SIGTERM)


async def _no_room(server: Server) -> bool:
    return await _room_tasks(server) == []
