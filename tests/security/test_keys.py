"""No shipped secret: an embedded server makes and keeps its own keys; cluster roles refuse to
start without configured ones; weak and example keys are refused; an open token API only on
loopback.  Through the real entry points: the CLI as a process, and the embedded server."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from switchboard.config import ConfigError, load_settings
from switchboard.keys import embedded_keys
from switchboard.localkeys import LocalKeysError, load_or_create, read
from switchboard.wiring import EmbeddedCluster
from tests.conftest import MakeEmbedded

ROOT = Path(__file__).resolve().parents[2]
STRONG = "Zq3" + "x7Kp9mWv2Lr8Tn4Hb6Jd1Fs5Gc0Ya" + "Qe"


def _run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "switchboard", *argv], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})))


@pytest.mark.parametrize(("role", "setting"), [("portal", "keys.keys"), ("token-api", "keys.keys"),
                                               ("cluster-manager", "keys.admin_keys"),
                                               ("controller", "keys.admin_keys")])
def test_a_cluster_role_without_keys_refuses_to_start_and_says_which_setting(role: str, setting: str) -> None:
    # the broker URL points nowhere: the role must refuse before it tries to connect
    out = _run(role, "--broker", "amqp://guest:guest@127.0.0.1:1/")
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert setting in line and line.startswith(f"switchboard {role}:")


@pytest.mark.parametrize(("key", "why"), [
    ("short-key", "shorter than"),
    ("switchboard-development-key-change-me", "known example"),
    ("please-change-me-before-production-use-1234", "known example"),
    ("a" * 40, "distinct characters"),
])
def test_a_weak_or_example_key_is_refused(key: str, why: str) -> None:
    out = _run("portal", "--broker", "amqp://guest:guest@127.0.0.1:1/", env={"SWITCHBOARD_KEYS__KEYS": json.dumps([key])})
    assert out.returncode == 2 and why in out.stderr and "keys.keys[0]" in out.stderr
    with pytest.raises(ConfigError, match=why):
        embedded_keys(load_settings(env={}, overrides={"token_api": {"service_keys": {"app": key}}}))


def test_the_embedded_keys_are_made_once_kept_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "keys.json"
    settings = load_settings(env={}, overrides={"keys": {"state_file": str(path)}})
    first = embedded_keys(settings)
    assert first.created and first.state_file == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = embedded_keys(settings)
    assert not again.created and again.settings.keys == first.settings.keys
    assert again.settings.token_api.service_keys == first.settings.token_api.service_keys
    keys = first.settings
    assert keys.keys.keys[0] not in (keys.keys.admin_keys[0], next(iter(keys.token_api.service_keys.values())))

    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        embedded_keys(settings)
    with pytest.raises(LocalKeysError):
        read(tmp_path / "missing.json")


def test_two_servers_starting_at_once_end_with_the_same_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    (a, made_a), (b, made_b) = load_or_create(path), load_or_create(path)
    assert a == b and made_a and not made_b


def test_configured_keys_are_used_and_no_state_file_is_made(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    settings = load_settings(env={}, overrides={
        "keys": {"keys": [STRONG], "admin_keys": [STRONG[::-1]], "state_file": str(path)},
        "token_api": {"service_keys": {"app": STRONG.upper()}},
    })
    keys = embedded_keys(settings)
    assert keys.state_file is None and not path.exists()
    assert keys.service_key == STRONG.upper() and keys.admin_key == STRONG[::-1]


def test_the_defaults_bind_loopback_and_require_credentials() -> None:
    settings = load_settings(env={})
    assert settings.token_api.host == "127.0.0.1" and settings.portal.host == "127.0.0.1"
    assert settings.token_api.require_service_key and not settings.keys.keys and not settings.keys.admin_keys


async def test_an_open_token_api_beyond_loopback_is_refused_at_start(make_embedded: MakeEmbedded) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        await make_embedded(token_api={"require_service_key": False, "host": "0.0.0.0"})
    out = _run("up", "--host", "0.0.0.0", env={"SWITCHBOARD_TOKEN_API__REQUIRE_SERVICE_KEY": "false",
                                                "SWITCHBOARD_TOKEN_API__PORT": "0", "SWITCHBOARD_PORTAL__PORT": "0"})
    assert out.returncode == 2 and "loopback" in out.stderr and len(out.stderr.strip().splitlines()) == 1


async def test_the_embedded_server_listens_on_loopback_only(make_embedded: MakeEmbedded) -> None:
    server: EmbeddedCluster = await make_embedded(token_api={"host": "127.0.0.1"})
    runner = server.token_api._runner
    assert runner is not None
    assert all(address[0] == "127.0.0.1" for address in runner.addresses)
