"""``bench.journal_stream`` runs once at a tiny size on the session broker, so the bench code cannot rot
(records nothing)."""

from __future__ import annotations

import pytest

from bench import journal_stream

pytestmark = [pytest.mark.amqp]


def test_the_stream_journal_bench_runs_at_a_tiny_size(broker_url: str) -> None:
    assert journal_stream.main(["--tiny", "--broker", broker_url]) == 0
