"""Strict mypy over every package, the tests and the benchmarks (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["eventlog", "contracts", "alerts", "webhooks", "observability", "rpc", "credentials", "edge", "journal", "scheduler",
            "cluster_manager", "token_api", "portal",
            "conference_controller", "switchboard"]
TARGETS = {"packages": PACKAGES, "tests": ["tests"], "bench": ["bench"]}


@pytest.mark.parametrize("target", list(TARGETS))
def test_the_code_passes_strict_mypy(target: str) -> None:
    out = subprocess.run([sys.executable, "-m", "mypy", *TARGETS[target]], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-5000:]
