"""`switchboard up` as a user runs it: it prints where it listens and a curl line that mints a usable token."""

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

from switchboard.admin import run_admin
from switchboard.client import Client
from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


async def _read_until(proc: asyncio.subprocess.Process, marker: str, timeout: float = 30.0) -> list[str]:
    lines: list[str] = []
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                raise AssertionError("switchboard up exited early:\n" + "\n".join(lines))
            lines.append(raw.decode().rstrip())
            if marker in lines[-1]:
                return lines


async def test_switchboard_up_prints_a_curl_line_whose_token_logs_in(tmp_path: Path) -> None:
    api_port, portal_port = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), SWITCHBOARD_TOKEN_API__ROOMS_DB=str(tmp_path / "rooms.sqlite3"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard", "up", "--host", "127.0.0.1",
        "--api-port", str(api_port), "--portal-port", str(portal_port),
        stdout=asyncio.subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=ROOT,
    )
    try:
        lines = await _read_until(proc, "Ctrl-C")
        text = "\n".join(lines)
        assert f":{api_port}" in text and f":{portal_port}" in text
        page = next(line.split()[2] for line in lines if line.strip().startswith("status page"))
        async with aiohttp.ClientSession() as http, http.get(page) as resp:
            assert resp.status == 401 and 'name="admin_key"' in await resp.text()  # the login form
        curl = next(line.strip() for line in lines if line.strip().startswith("curl "))
        minted = await asyncio.to_thread(
            subprocess.run, curl, shell=True, capture_output=True, text=True, timeout=20, check=True
        )
        token = minted.stdout.strip()
        client = await Client.join(token)
        assert client.room["id"] == "demo" and client.id
        await client.leave()

        # the admin CLI reaches the embedded server's cluster manager
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "switchboard", "admin", "workers", "--json", "--url", f"http://127.0.0.1:{api_port}"],
            capture_output=True, text=True, timeout=30, env=env, cwd=ROOT,
        )
        assert out.returncode == 0, out.stderr
        purposes = sorted(w["purpose"] for w in json.loads(out.stdout))
        assert purposes == ["conference", "portal"]
        status = await asyncio.to_thread(run_admin, ["status", "--url", f"http://127.0.0.1:{api_port}"])
        assert status == 0
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(proc.wait(), 20)
    assert code == 0


def test_the_admin_cli_says_so_when_the_cluster_cannot_be_reached(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_admin(["status", "--url", f"http://127.0.0.1:{free_port()}", "--timeout", "1"]) == 2
    assert capsys.readouterr().err.strip()


def test_a_bad_configuration_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[portal]\nport = 'x'\n")
    out = subprocess.run([sys.executable, "-m", "switchboard", "up", "--config", str(bad)],
                         capture_output=True, text=True, timeout=30, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 2 and "invalid setting" in out.stderr
