"""The CLI as a newcomer meets it, run as ``python -m switchboard …`` subprocesses: ``-h`` at every
level, the admin room commands and ``drain --wait`` against a running ``switchboard up``, and the
one-line failures of ``switchboard up`` (no broker, a busy port, cluster counts without a broker)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from switchboard.client import Client
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), SWITCHBOARD_KEYS__STATE_FILE=str(tmp_path / "keys.json"),
               SWITCHBOARD_TOKEN_API__ROOMS_DB=str(tmp_path / "rooms.sqlite3"))
    for name in ("SWITCHBOARD_ADMIN_KEY", "SWITCHBOARD_SERVICE_KEY", "SWITCHBOARD_ADMIN_URL",
                 "SWITCHBOARD_RPC__BROKER_URL"):
        env.pop(name, None)
    env.update(extra)
    return env


async def _switchboard(env: dict[str, str], *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard", *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env, cwd=ROOT,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return subprocess.CompletedProcess(list(args), proc.returncode, out.decode(), err.decode())


HELP_LEVELS = [
    [], ["up"], ["broker"], ["haproxy-config"], ["cluster-manager"], ["token-api"], ["portal"], ["controller"],
    ["admin"], ["admin", "workers"], ["admin", "worker"], ["admin", "tasks"], ["admin", "drain"],
    ["admin", "undrain"], ["admin", "status"], ["admin", "rooms"], ["admin", "participants"], ["admin", "kick"],
]


async def test_help_works_at_every_level(tmp_path: Path) -> None:
    env = _env(tmp_path)
    results = await asyncio.gather(*(_switchboard(env, *level, "-h") for level in HELP_LEVELS))
    for level, result in zip(HELP_LEVELS, results):
        assert result.returncode == 0, (level, result.stderr)
        assert result.stdout.startswith("usage: switchboard" + "".join(f" {word}" for word in level)), level
        assert not result.stderr, (level, result.stderr)
    assert "--wait" in results[HELP_LEVELS.index(["admin", "drain"])].stdout
    admin_help = results[HELP_LEVELS.index(["admin"])].stdout
    assert all(command in admin_help for command in ("rooms", "participants", "kick"))


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str], str]]:
    """A ``switchboard up`` subprocess: its token API URL, the environment its admin CLI runs with,
    and its ``curl`` line."""
    api_port, portal_port = free_port(), free_port()
    env = _env(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard", "up", "--host", "127.0.0.1", "--api-port", str(api_port),
        "--portal-port", str(portal_port), stdout=asyncio.subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=env, cwd=ROOT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(40):
            while not lines or "Ctrl-C" not in lines[-1]:
                raw = await proc.stdout.readline()
                assert raw, "switchboard up exited early:\n" + "\n".join(lines)
                lines.append(raw.decode().rstrip())
        curl = next(line.strip() for line in lines if line.strip().startswith("curl "))
        yield f"http://127.0.0.1:{api_port}", dict(env, SWITCHBOARD_ADMIN_URL=f"http://127.0.0.1:{api_port}"), curl
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)


async def _token(curl: str, room: str, user: str) -> str:
    command = curl.replace('"room":"demo"', f'"room":"{room}"').replace('"user":"alice"', f'"user":"{user}"')
    minted = await asyncio.to_thread(subprocess.run, command, shell=True, capture_output=True, text=True,
                                     timeout=20, check=True)
    return minted.stdout.strip()


async def test_rooms_participants_and_kick_against_a_running_server(
    embedded: tuple[str, dict[str, str], str],
) -> None:
    _api, env, curl = embedded
    alice = await Client.join(await _token(curl, "lobby", "alice"))
    bob = await Client.join(await _token(curl, "lobby", "bob"))
    assert alice.id and bob.id
    try:
        rooms = await _switchboard(env, "admin", "rooms", "--json")
        assert rooms.returncode == 0, rooms.stderr
        assert "lobby" in [room["id"] for room in json.loads(rooms.stdout)]
        table = await _switchboard(env, "admin", "rooms")
        assert table.stdout.splitlines()[0].split()[0] == "ROOM" and "lobby" in table.stdout

        listed = await _switchboard(env, "admin", "participants", "lobby", "--json")
        assert listed.returncode == 0, listed.stderr
        assert sorted((p["id"], p["user"]) for p in json.loads(listed.stdout)) == sorted(
            [(alice.id, "alice"), (bob.id, "bob")])
        readable = await _switchboard(env, "admin", "participants", "lobby")
        assert bob.id in readable.stdout and "alice" in readable.stdout

        kicked = await _switchboard(env, "admin", "kick", "lobby", bob.id, "--json")
        assert kicked.returncode == 0, kicked.stderr
        assert json.loads(kicked.stdout) == {"room": "lobby", "participant": bob.id, "removed": True}
        await bob.next_event("drop", timeout=15)
        after = await _switchboard(env, "admin", "participants", "lobby", "--json")
        assert [p["id"] for p in json.loads(after.stdout)] == [alice.id]

        again = await _switchboard(env, "admin", "kick", "lobby", bob.id)
        assert again.returncode == 1 and len(again.stderr.strip().splitlines()) == 1, again.stderr
        wrong_key = await _switchboard(env, "admin", "rooms", "--service-key", "not-the-key")
        assert wrong_key.returncode == 1 and "401" in wrong_key.stderr
    finally:
        await alice.close()
        await bob.close()


async def test_drain_wait_reports_each_change_until_the_portal_holds_no_task(
    embedded: tuple[str, dict[str, str], str],
) -> None:
    _api, env, curl = embedded
    workers = await _switchboard(env, "admin", "workers", "--purpose", "portal", "--json")
    portal = json.loads(workers.stdout)[0]["id"]
    client = await Client.join(await _token(curl, "drained", "carol"))
    try:
        # bounded: a session still on the portal → gives up with exit code 3
        gave_up = await _switchboard(env, "admin", "drain", portal, "--wait", "--wait-timeout", "1",
                                     "--poll-interval", "0.2", "--json")
        assert gave_up.returncode == 3, gave_up.stderr
        events = [json.loads(line) for line in gave_up.stdout.splitlines()]
        assert events[0]["drained"] is True
        assert events[1]["executing"] + events[1]["reserved"] >= 1
        assert events[-1]["gave_up_after"] == 1
        assert len(events) == 3  # one progress line: nothing changed while it waited

        waiting = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "switchboard", "admin", "drain", portal, "--wait", "--poll-interval", "0.2",
            "--wait-timeout", "60", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            cwd=ROOT,
        )
        assert waiting.stdout is not None
        first = [(await waiting.stdout.readline()).decode(), (await waiting.stdout.readline()).decode()]
        assert "drained" in first[0] and "1 executing" in first[1] or "1 reserved" in first[1], first
        await client.leave()
        out, err = await asyncio.wait_for(waiting.communicate(), 60)
        assert waiting.returncode == 0, err
        assert out.decode().splitlines()[-1] == f"worker {portal} holds no task"
    finally:
        await client.close()


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


async def test_up_without_a_broker_gives_up_with_one_line_within_its_bound(tmp_path: Path) -> None:
    closed = free_port()
    env = _env(tmp_path, SWITCHBOARD_LOCAL_CLUSTER__BROKER_WAIT="2", SWITCHBOARD_LOCAL_CLUSTER__BROKER_RETRY_INTERVAL="0.2")
    started = time.monotonic()
    result = await _switchboard(env, "up", "--broker", f"amqp://guest:secret@127.0.0.1:{closed}/",
                                "--api-port", str(free_port()), "--portal-port", str(free_port()), timeout=40)
    took = time.monotonic() - started
    assert result.returncode == 2
    line = _one_line(result.stderr)
    assert f"no broker at amqp://guest:***@127.0.0.1:{closed}/ after 2 s" in line, line
    assert result.stdout.count("waiting for the broker at") == 1, result.stdout
    assert "secret" not in result.stdout + result.stderr
    assert took < 30  # the bound is 2 s; a generous margin for a loaded machine, far from "forever"


async def test_cluster_counts_without_a_broker_are_an_error(tmp_path: Path) -> None:
    result = await _switchboard(_env(tmp_path), "up", "--portals", "2", "--controllers", "3")
    assert result.returncode == 2
    assert "--portals, --controllers need a broker" in _one_line(result.stderr)


@pytest.mark.parametrize("mode", ["embedded", "cluster"])
async def test_a_busy_port_is_one_line(tmp_path: Path, mode: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        args = ["up", "--host", "127.0.0.1", "--api-port", str(busy), "--portal-port", str(free_port())]
        if mode == "cluster":  # refused before it looks for a broker
            args += ["--broker", f"amqp://127.0.0.1:{free_port()}/"]
        result = await _switchboard(_env(tmp_path), *args)
    assert result.returncode == 2
    line = _one_line("\n".join(text for text in result.stderr.splitlines() if " info " not in text))
    assert str(busy) in line and "in use" in line, line


@pytest.mark.amqp
async def test_switchboard_broker_prints_a_url_that_answers_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    from switchboard.brokerwait import broker_address, probe_broker

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard", "broker", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=_env(tmp_path), cwd=ROOT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(90):
            while not lines or not lines[-1].startswith("broker amqp://"):
                raw = await proc.stdout.readline()
                assert raw, "switchboard broker exited early:\n" + "\n".join(lines)
                lines.append(raw.decode().rstrip())
        url = lines[-1].split()[1]
        data_dir = Path(lines[0].split(" in ", 1)[1].rstrip(" …"))
        assert data_dir.is_dir()
        host, port = broker_address(url)
        assert probe_broker(host, port, timeout=5) is None  # an AMQP broker answers there
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert probe_broker(host, port, timeout=1) is not None  # stopped
    assert not data_dir.exists()
