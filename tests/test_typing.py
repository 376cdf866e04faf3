"""Strict mypy over every package (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["rpc", "credentials", "scheduler", "cluster_manager", "token_api", "portal",
            "conference_controller", "switchboard"]


def test_the_packages_pass_strict_mypy() -> None:
    out = subprocess.run([sys.executable, "-m", "mypy", *PACKAGES], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-5000:]
