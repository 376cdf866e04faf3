"""The ``make chaos`` pieces: the recorder the fault scenarios write through (``tests/support/chaos.py``)
and the report that turns its JSON lines into the results file (``tests/chaos_report.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.chaos_report import NOT_COVERED, Run, main, read_lines, render
from tests.support.chaos import Chaos

RUN = Run("2026-12-04 19:00 UTC", "abc1234", "x86_64, 2 cores", run_time_s=421.4, exit_status=0)


def test_the_recorder_writes_nothing_without_a_results_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    recorder = Chaos.from_env("tests/e2e/test_x.py::test_y", env={})
    assert recorder.results is None
    recorder.record("scenario", "extension", lost=1)
    recorder.outcome(True, 1.0)
    assert list(tmp_path.iterdir()) == []


def test_the_recorder_appends_one_line_a_call(tmp_path: Path) -> None:
    results = tmp_path / "lines.jsonl"
    results.write_text('{"kind": "outcome", "test": "earlier", "mode": "long", "passed": true, "duration_s": 1}\n')
    recorder = Chaos.from_env("t::one", env={"SWITCHBOARD_CHAOS_RESULTS": str(results)})
    recorder.record("kill", "extension", dropped=1, lost=2, duplicated=3, recovery_s=0.5, errors=4, failed_logins=5,
                    detected_s=0.25, notes="n")
    recorder.outcome(False, 12.34)
    lines = [json.loads(line) for line in results.read_text().splitlines()]
    assert lines[1:] == [
        {"test": "t::one", "mode": "short", "kind": "row", "scenario": "kill", "client_kind": "extension",
         "dropped": 1, "lost": 2, "duplicated": 3, "recovery_s": 0.5, "errors": 4, "failed_logins": 5,
         "detected_s": 0.25, "notes": "n"},
        {"test": "t::one", "mode": "short", "kind": "outcome", "passed": False, "duration_s": 12.3}]


def test_scale_is_the_long_value_only_in_the_long_mode() -> None:
    assert Chaos.from_env("t", env={}).scale(3, 30) == 3
    assert Chaos.from_env("t", env={"SWITCHBOARD_CHAOS": "short"}).scale(3, 30) == 3
    assert Chaos.from_env("t", env={"SWITCHBOARD_CHAOS": "long"}).scale(3, 30) == 30


def _lines(tmp_path: Path) -> list[str]:
    results = tmp_path / "lines.jsonl"
    for test, passed in (("t::kill", True), ("t::restart", False)):
        recorder = Chaos.from_env(test, env={"SWITCHBOARD_CHAOS_RESULTS": str(results), "SWITCHBOARD_CHAOS": "long"})
        if passed:
            recorder.record("controller kill -9", "extension", duplicated=2, recovery_s=1.234, detected_s=0.5)
            recorder.record("controller kill -9", "bare OWT", lost=7, errors=1, notes="a | b")
            recorder.record("broker restart", "extension", failed_logins=3)
        recorder.outcome(passed, 10.0)
    return results.read_text().splitlines()


def test_the_report_has_a_table_per_scenario_and_a_row_per_client_kind(tmp_path: Path) -> None:
    text = render(read_lines(_lines(tmp_path)), RUN)
    assert "- commit: abc1234" in text and "- run time: 421 s" in text and "- machine: x86_64, 2 cores" in text
    assert "- tests: 1 passed, 1 failed: `t::restart`" in text
    assert "- mode: long" in text
    tables = text.split("\n## ")[1:]
    assert [t.splitlines()[0] for t in tables] == ["controller kill -9", "broker restart"]
    rows = [line for line in tables[0].splitlines() if line.startswith("| ")]
    assert rows == [
        "| client kind | dropped | lost | duplicated | recovery s | detected s | errors | failed logins | notes |",
        "| extension | 0 | 0 | 2 | 1.23 | 0.50 | 0 | 0 |  |",
        "| bare OWT | 0 | 7 | 0 | – | – | 1 | 0 | a \\| b |"]
    assert "| extension | 0 | 0 | 0 | – | – | 0 | 3 |  |" in tables[1]
    assert ("Not covered yet" in text) == bool(NOT_COVERED) and all(scenario in text for scenario in NOT_COVERED)


def test_the_report_says_when_nothing_was_recorded(tmp_path: Path) -> None:
    out = tmp_path / "results.md"
    assert main([str(tmp_path / "missing.jsonl"), str(out), "--exit-status", "2"]) == 0
    text = out.read_text()
    assert "No scenario recorded anything." in text and "- pytest exit status: 2" in text
    assert "- tests: 0 passed, 0 failed" in text
