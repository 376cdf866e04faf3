"""How many token API processes `switchboard up --broker …` runs (`--token-apis`): several only on a
room store they share (PostgreSQL), which is also what makes 2 the default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from switchboard.config import ConfigError, Settings, load_settings
from switchboard.supervisor import token_api_count

ROOT = Path(__file__).resolve().parents[2]


def _settings(kind: str = "sqlite", dsn: str = "") -> Settings:
    return load_settings(None, overrides={"token_api": {"store": {"kind": kind, "dsn": dsn}}})


def test_two_token_apis_by_default_on_a_postgres_store_and_one_without() -> None:
    assert token_api_count(None, _settings("postgres", "postgresql://u@db/rooms")) == 2
    assert token_api_count(None, _settings()) == 1
    assert token_api_count(3, _settings("postgres", "postgresql://u@db/rooms")) == 3
    assert token_api_count(1, _settings()) == 1


def test_several_token_apis_without_a_shared_store_are_refused() -> None:
    with pytest.raises(ConfigError, match="needs a room store they share"):
        token_api_count(2, _settings())
    with pytest.raises(ConfigError, match="at least 1"):
        token_api_count(0, _settings("postgres", "postgresql://u@db/rooms"))


def test_switchboard_up_refuses_two_token_apis_on_sqlite_before_starting_anything(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT), XDG_STATE_HOME=str(tmp_path / "state"))
    out = subprocess.run(
        [sys.executable, "-m", "switchboard", "up", "--broker", "amqp://127.0.0.1:1/", "--token-apis", "2"],
        capture_output=True, text=True, timeout=30, cwd=ROOT, env=env,
    )
    assert out.returncode == 2, out
    assert 'token_api.store.kind = "postgres"' in out.stderr
    assert not (tmp_path / "state").exists()  # refused before any key was made
