"""The whole-flow benchmark scenarios each run once at a tiny size, so the bench code cannot rot.

``--tiny`` runs a few clients for a fraction of a second and records nothing in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import re

import pytest

from bench import (capacity, detection, holder_replay, journal_stream_protocol, login, memory, relay, relay_cluster,
                   relogin, replay, takeover, takeover_timeline)
from switchboard.devbroker import RabbitNode, rabbitmq_available

pytestmark = pytest.mark.slow


def test_relay_runs_at_a_tiny_size() -> None:
    assert relay.main(["--tiny"]) == 0


def test_relay_cluster_runs_at_a_tiny_size(rabbit: RabbitNode) -> None:
    assert relay_cluster.main(["--tiny", "--broker", rabbit.url]) == 0


def test_relay_cluster_open_loop_sends_at_its_fixed_rate_and_reports_acks(
        rabbit: RabbitNode, capsys: pytest.CaptureFixture[str]) -> None:
    assert relay_cluster.main(["--tiny", "--broker", rabbit.url, "--kinds", "holder,off",
                               "--rate-per-client", "20"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("rep 1 ")]
    assert len(lines) == 2, out
    for line in lines:
        found = re.search(r": (\d+)/s p50 [\d.]+ p99 [\d.]+ ms, ack p50 [\d.]+ p99 [\d.]+ ms, .* errors 0", line)
        assert found, line
        # open loop: 4 clients x 20/s whatever the latency (a closed loop at a few ms does several hundred)
        assert 60 <= int(found.group(1)) <= 100, line


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


def test_holder_replay_runs_at_a_tiny_size(rabbit: RabbitNode) -> None:
    assert holder_replay.main(["--tiny", "--broker", rabbit.url]) == 0


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


@pytest.mark.skipif(not rabbitmq_available(), reason="rabbitmq-server is not installed")
def test_journal_stream_protocol_runs_at_a_tiny_size(capsys: pytest.CaptureFixture[str]) -> None:
    """Both protocols' variants run, and a record written over the stream protocol reaches an AMQP 0.9.1
    reader with its message_id and headers (what a journal mixing the two would rely on)."""
    assert journal_stream_protocol.main(["--tiny"]) == 0
    out = capsys.readouterr().out
    assert "| AMQP 0.9.1 consumer | 0 | b'from-stream' | 'm-stream' | {'epoch': 7, 'kind': 'record'} |" in out
    assert "| 1 | stream | " in out and "| 1 | amqp | " in out
