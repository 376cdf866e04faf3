"""A benchmark fails on any error in any repetition and on a missed goal."""

from __future__ import annotations

import pytest

from bench import measure, relay_cluster, relogin
from bench import scheduler as bench_scheduler


def test_one_repetition_with_errors_makes_the_summary_of_a_measured_scenario_fail() -> None:
    clean = measure.Run(rate=100.0, p50_ms=1.0, p99_ms=2.0, cpu_us=10.0, cpu_pct=50.0, gen_pct=20.0, errors=0)
    failing = measure.Run(rate=90.0, p50_ms=1.0, p99_ms=2.0, cpu_us=10.0, cpu_pct=50.0, gen_pct=20.0, errors=2)
    summary = measure.Run.summary([clean, failing, clean])
    assert (summary.rate, summary.errors) == (100.0, 2)  # medians of the measures, the sum of the errors


def test_one_repetition_with_errors_makes_the_relogin_summary_fail() -> None:
    clean = relogin.Run(rate=100.0, p50_ms=1.0, p99_ms=2.0, cpu_ms=1.0, errors=0)
    summary = relogin.Run.summary([clean, relogin.Run(100.0, 1.0, 2.0, 1.0, errors=1), clean])
    assert summary.errors == 1


def test_one_repetition_with_errors_makes_the_relay_cluster_summary_fail() -> None:
    clean = relay_cluster.Run(rate=100.0, p50_ms=1.0, p99_ms=2.0, cpu_us=10.0, errors=0)
    summary = relay_cluster.Run.summary([clean, clean, relay_cluster.Run(100.0, 1.0, 2.0, 10.0, errors=3)])
    assert summary.errors == 3


@pytest.mark.parametrize(("goal_us", "status"), [(0.0, 1), (1e9, 0)])
def test_the_scheduler_benchmark_exits_non_zero_on_a_missed_goal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], goal_us: float, status: int
) -> None:
    monkeypatch.setattr(bench_scheduler, "GOAL_WORKERS", 40)
    monkeypatch.setattr(bench_scheduler, "GOAL_US", goal_us)
    assert bench_scheduler.main(["--sizes", "40", "--decisions", "200", "--no-write"]) == status
    assert ("miss:" if status else "pass:") in capsys.readouterr().out
