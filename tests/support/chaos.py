"""The fault scenarios' results recorder (``make chaos``, docs/operations.md §Chaos runs).

A scenario calls ``chaos.record(scenario, client_kind, dropped=…, lost=…, …)`` with what it counted
for one kind of client; each call appends one JSON line to the file named by
``SWITCHBOARD_CHAOS_RESULTS`` and does nothing when that is unset, so the suite runs as before.
``chaos.scale(short, long)`` is the long value under ``SWITCHBOARD_CHAOS=long`` (``make chaos``:
more clients, longer load, more kills), the short one otherwise (the suite).  ``python -m
tests.chaos_report`` turns the lines into one table per scenario.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

RESULTS_ENV = "SWITCHBOARD_CHAOS_RESULTS"
MODE_ENV = "SWITCHBOARD_CHAOS"


@dataclass
class Chaos:
    """The recorder of one test: ``test`` names it in every line it writes."""

    test: str
    results: Path | None
    long: bool

    @classmethod
    def from_env(cls, test: str, env: Mapping[str, str] = os.environ) -> Chaos:
        path = env.get(RESULTS_ENV, "")
        return cls(test, Path(path) if path else None, env.get(MODE_ENV, "") == "long")

    def scale(self, short: T, long: T) -> T:
        return long if self.long else short

    def record(self, scenario: str, client_kind: str, *, dropped: int = 0, lost: int = 0, duplicated: int = 0,
               recovery_s: float | None = None, errors: int = 0, failed_logins: int = 0,
               detected_s: float | None = None, notes: str = "") -> None:
        self._write({"kind": "row", "scenario": scenario, "client_kind": client_kind, "dropped": dropped,
                     "lost": lost, "duplicated": duplicated, "recovery_s": recovery_s, "errors": errors,
                     "failed_logins": failed_logins, "detected_s": detected_s, "notes": notes})

    def outcome(self, passed: bool, duration_s: float) -> None:
        """The test's own result (written by the fixture at teardown): a row without it means the
        test stopped before it could count."""
        self._write({"kind": "outcome", "passed": passed, "duration_s": round(duration_s, 1)})

    def _write(self, line: dict[str, object]) -> None:
        if self.results is None:
            return
        with self.results.open("a", encoding="utf-8") as out:
            out.write(json.dumps({"test": self.test, "mode": "long" if self.long else "short", **line}) + "\n")


@pytest.fixture
def chaos(request: pytest.FixtureRequest) -> Iterator[Chaos]:
    recorder = Chaos.from_env(request.node.nodeid)
    started = time.monotonic()
    yield recorder
    report = getattr(request.node, "chaos_call_report", None)
    recorder.outcome(bool(report is not None and report.passed), time.monotonic() - started)
