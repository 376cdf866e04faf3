"""Settings: defaults, TOML, environment, overrides, clear errors, and a reference that is current."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from journal.holder import HolderJournal
from switchboard.config import ConfigError, load_settings
from switchboard.config_doc import DOC_PATH, render
from switchboard.journals import build_journal


def test_defaults_are_the_embedded_first_run() -> None:
    settings = load_settings(env={})
    assert settings.rpc.broker_url == ""
    assert (settings.token_api.port, settings.portal.port) == (3000, 8080)
    assert settings.controller.reconnection_timeout == 60.0


def test_toml_then_environment_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "sb.toml"
    path.write_text('[portal]\nport = 9000\nisps = ["isp-a"]\n[rpc]\ncall_timeout = 3.5\n')
    settings = load_settings(
        str(path),
        env={"SWITCHBOARD_PORTAL__PORT": "9100", "SWITCHBOARD_RPC__BROKER_URL": "amqp://h/", "OTHER": "x"},
        overrides={"portal": {"regions": ["eu"]}},
    )
    assert settings.portal.port == 9100
    assert settings.portal.isps == ["isp-a"] and settings.portal.regions == ["eu"]
    assert settings.rpc.call_timeout == 3.5 and settings.rpc.broker_url == "amqp://h/"


@pytest.mark.parametrize(
    "overrides",
    [{"portal": {"no_such_key": 1}}, {"portal": {"port": "not a number"}}, {"no_such_section": {}}],
)
def test_a_bad_setting_is_a_clear_error(overrides: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_settings(env={}, overrides=overrides)


def test_an_unreadable_or_invalid_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(str(tmp_path / "missing.toml"), env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[portal\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(str(bad), env={})


def test_every_setting_is_documented_and_the_reference_is_current() -> None:
    text = render()
    undocumented = [line for line in text.splitlines() if line.startswith("| `") and line.endswith("|  |")]
    assert not undocumented, undocumented
    assert DOC_PATH.read_text(encoding="utf-8") == text, "run: python -m switchboard.config_doc"


def test_each_setting_has_a_sentence_of_its_own() -> None:
    """Within a section, no two keys share one meaning (keys that mean different things used to
    repeat one sentence)."""
    seen: dict[tuple[str, str], str] = {}
    section = ""
    repeated = []
    for line in render().splitlines():
        if line.startswith("## "):
            section = line
        elif line.startswith("| `"):
            key, _default, meaning = (cell.strip() for cell in line.strip("|").split(" | ", 2))
            if meaning.startswith("see ") or not meaning:
                continue
            if (section, meaning) in seen:
                repeated.append(f"{section}: {seen[section, meaning]} and {key}")
            seen[section, meaning] = key
    assert not repeated, repeated


def test_a_sub_section_is_set_from_the_environment_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sb.toml"
    path.write_text('[journal]\nkind = "sqlite"\n[journal.sqlite]\ndurability = "full"\n')
    settings = load_settings(str(path), env={"SWITCHBOARD_JOURNAL__SQLITE__PATH": "/var/lib/sb/journal.db",
                                             "SWITCHBOARD_JOURNAL__STREAM__HEARTBEAT": "3"})
    assert (settings.journal.kind, settings.journal.sqlite.durability) == ("sqlite", "full")
    assert settings.journal.sqlite.path == "/var/lib/sb/journal.db" and settings.journal.stream.heartbeat == 3
    with pytest.raises(ConfigError):
        load_settings(env={"SWITCHBOARD_JOURNAL__SQLITE__NO_SUCH_KEY": "1"})


@pytest.mark.parametrize(("env", "message"), [
    ({"SWITCHBOARD_RPC__HEARTBEAT": "1", "SWITCHBOARD_CLUSTER_MANAGER__LEADER_LEASE": "2"},
     "cluster_manager.leader_lease (2 s) must be shorter than twice rpc.heartbeat (1 s)"),
    ({"SWITCHBOARD_CLUSTER_MANAGER__LEADER_TICK_INTERVAL": "1"},
     "cluster_manager.leader_tick_interval (1 s) must be shorter than cluster_manager.leader_lease (1 s)"),
])
def test_a_leader_lease_the_broker_could_outrun_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(env=env)
    assert load_settings(env={"SWITCHBOARD_RPC__HEARTBEAT": "1", "SWITCHBOARD_CLUSTER_MANAGER__LEADER_LEASE": "1.5"})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"journal": {"stream": {"stall_timeout": 20.0}}}, "stall_timeout must not exceed append_timeout"),
        ({"journal": {"stream": {"stall_timeout": 0}}}, "stall_timeout must be positive"),
        ({"journal": {"stream": {"holder_hold": 0.5}}}, "holder_hold must be between 0 and 0.1 s"),
        ({"journal": {"stream": {"holder_hold": -0.001}}}, "holder_hold must be between 0 and 0.1 s"),
        ({"journal": {"stream": {"holder_snapshot_after": 99}}},
         "holder_snapshot_after must be between 100 and 10,000,000 messages"),
        ({"journal": {"stream": {"holder_snapshot_after": 10_000_001}}},
         "holder_snapshot_after must be between 100 and 10,000,000 messages"),
        ({"journal": {"stream": {"holder_replay_share_bytes": -1}}},
         "holder_replay_share_bytes must be between 0 and 1,000,000,000"),
        ({"journal": {"stream": {"holder_replay_share_bytes": 1_000_000_001}}},
         "holder_replay_share_bytes must be between 0 and 1,000,000,000"),
        ({"journal": {"stream": {"holder_max_bytes": 999_999}}}, "holder_max_bytes must be at least 1000000"),
        ({"journal": {"stream": {"holder_segment_bytes": 2_000_000_000}}},
         "holder_segment_bytes must not exceed holder_max_bytes"),
        ({"journal": {"stream": {"holder_dead_after": 5}}}, "holder_dead_after must be between 10 and 86400 s"),
        ({"journal": {"stream": {"holder_dead_after": 86401}}}, "holder_dead_after must be between 10 and 86400 s"),
        ({"journal": {"stream": {"holder_sweep_interval": 0.01}}},
         "holder_sweep_interval must be 0 (no sweeping) or between 0.05 and 86400 s"),
        ({"journal": {"stream": {"holder_sweep_interval": -1}}},
         "holder_sweep_interval must be 0 (no sweeping) or between 0.05 and 86400 s"),
        ({"journal": {"stream": {"holder_sweep_batch": 0}}}, "holder_sweep_batch must be between 1 and 1000"),
        ({"journal": {"stream": {"holder_sweep_batch": 1001}}}, "holder_sweep_batch must be between 1 and 1000"),
        ({"journal": {"sqlite": {"commit": "sometimes"}}}, "Invalid enum value 'sometimes' - at `$.journal.sqlite.commit`"),
        ({"journal": {"file": {"segment_bytes": 100}}}, "Expected `int` >= 4096 - at `$.journal.file.segment_bytes`"),
        ({"journal": {"file": {"durability": "off"}}}, "Invalid enum value 'off' - at `$.journal.file.durability`"),
        ({"journal": {"file": {"max_pending": 0}}}, "Expected `int` >= 1 - at `$.journal.file.max_pending`"),
        ({"rpc": {"reply_wait": -1}}, "Expected `float` >= 0.0 - at `$.rpc.reply_wait`"),
        ({"rpc": {"reply_wait": 301}}, "Expected `float` <= 300.0 - at `$.rpc.reply_wait`"),
        ({"controller": {"portal_unreachable_grace": -1}},
         "Expected `float` >= 0.0 - at `$.controller.portal_unreachable_grace`"),
        ({"controller": {"portal_unreachable_grace": 601}},
         "Expected `float` <= 600.0 - at `$.controller.portal_unreachable_grace`"),
    ],
)
def test_the_journal_stall_bound_commit_mode_and_reply_wait_refuse_what_is_out_of_bounds(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings(env={}, overrides=overrides)


@pytest.mark.parametrize("value", ["0", "-1", "301", "soon"])
def test_the_drains_retry_interval_refuses_what_is_out_of_bounds(value: str) -> None:
    with pytest.raises(ConfigError, match="migration_retry_interval"):
        load_settings(env={"SWITCHBOARD_CONTROLLER__MIGRATION_RETRY_INTERVAL": value})
    assert load_settings(env={"SWITCHBOARD_CONTROLLER__MIGRATION_RETRY_INTERVAL": "0.5"}).controller \
        .migration_retry_interval == 0.5


def test_the_holder_journal_is_chosen_by_name_only_and_needs_a_broker() -> None:
    assert load_settings(env={}).journal.kind == "auto"  # never the default
    settings = load_settings(env={"SWITCHBOARD_JOURNAL__KIND": "holder"})
    with pytest.raises(ConfigError, match=re.escape("journal.kind = 'holder' needs a broker")):
        build_journal(settings, embedded=False)
    settings = load_settings(env={"SWITCHBOARD_JOURNAL__KIND": "holder", "SWITCHBOARD_RPC__BROKER_URL": "amqp://h/"})
    journal = build_journal(settings, embedded=False)
    assert isinstance(journal, HolderJournal) and journal.holder.startswith(f"{settings.worker.cluster_name}.journal.holder.")
    with pytest.raises(ConfigError, match="Invalid enum value 'holders'"):
        load_settings(env={"SWITCHBOARD_JOURNAL__KIND": "holders"})
