"""The scheduler benchmark still runs (tiny size), so it cannot rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import scheduler as bench_scheduler


def test_the_tiny_scheduler_benchmark_runs_and_returns_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_scheduler.main(["--tiny"]) == 0
    out = capsys.readouterr().out
    assert "least-used" in out and "two-choices" in out


def test_the_benchmark_replaces_only_its_own_results_section(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## rpc\n\nrpc rows\n\n## scheduler\n\nold rows\n\n## portal\n\nportal rows\n")
    bench_scheduler.write_results(results, "## scheduler\n\nnew rows\n")
    text = results.read_text()
    assert "old rows" not in text and "new rows" in text
    assert text.index("## rpc") < text.index("## scheduler") < text.index("## portal")
    assert "rpc rows" in text and "portal rows" in text


def test_the_benchmark_creates_the_results_file_with_its_heading(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    bench_scheduler.write_results(results, "## scheduler\n\nrows\n")
    assert results.read_text().startswith("# Benchmark results\n\n## scheduler\n")
