"""The whole-flow benchmark scenarios each run once at a tiny size, so the bench code cannot rot.

``--tiny`` runs a few clients for a fraction of a second and records nothing in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import pytest

from bench import capacity, detection, login, memory, relay, relay_cluster, relogin, replay, takeover, takeover_timeline
from switchboard.devbroker import RabbitNode

pytestmark = pytest.mark.slow


def test_relay_runs_at_a_tiny_size() -> None:
    assert relay.main(["--tiny"]) == 0


def test_relay_cluster_runs_at_a_tiny_size(rabbit: RabbitNode) -> None:
    assert relay_cluster.main(["--tiny", "--broker", rabbit.url]) == 0


def test_login_runs_at_a_tiny_size() -> None:
    assert login.main(["--tiny"]) == 0


def test_relogin_runs_at_a_tiny_size(rabbit: RabbitNode) -> None:
    assert relogin.main(["--tiny", "--broker", rabbit.url]) == 0


def test_memory_runs_at_a_tiny_size() -> None:
    assert memory.main(["--tiny"]) == 0


def test_capacity_runs_at_a_tiny_size() -> None:
    assert capacity.main(["--tiny"]) == 0


def test_replay_runs_at_a_tiny_size() -> None:
    assert replay.main(["--tiny"]) == 0


def test_takeover_runs_at_a_tiny_size(rabbit: RabbitNode) -> None:
    assert takeover.main(["--tiny", "--broker", rabbit.url]) == 0


def test_takeover_breakdown_finds_every_step_in_the_servers_logs(rabbit: RabbitNode,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert takeover.main(["--tiny", "--breakdown", "--broker", rabbit.url]) == 0
    printed = capsys.readouterr().out
    for _, step in takeover_timeline.STEPS:
        assert f"| {step} | " in printed, step


def test_detection_runs_at_a_tiny_size(rabbit: RabbitNode) -> None:
    assert detection.main(["--tiny", "--broker", rabbit.url]) == 0
