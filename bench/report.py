"""Recording benchmark results: one ``## name`` section per scenario in ``bench/RESULTS.md``."""

from __future__ import annotations

import datetime
import os
import platform
import re
import statistics
import subprocess
from collections.abc import Sequence
from pathlib import Path

__all__ = ["RESULTS", "git_commit", "machine", "today", "write_section", "publish", "exit_status", "percentile", "median"]

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
_ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def machine() -> str:
    return f"{os.cpu_count()} CPUs, Python {platform.python_version()} ({platform.machine()})"


def today() -> str:
    return datetime.date.today().isoformat()


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by nearest rank; 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def write_section(name: str, section: str, path: Path = RESULTS) -> None:
    """Replace (or append) the ``## name`` section of ``path``; other sections stay as they are."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^## {re.escape(name)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    body = section.rstrip("\n") + "\n\n"
    if pattern.search(text):
        text = pattern.sub(lambda _: body, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + body
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def publish(name: str, section: str, tiny: bool) -> None:
    """Print the ``## name`` section and record it in ``bench/RESULTS.md``, unless it is from a ``--tiny`` run."""
    print(section)
    if not tiny:
        write_section(name, section)


def exit_status(passed: bool, tiny: bool, got_through: bool) -> int:
    """0 when the goals were met; a ``--tiny`` run judges no goal, only that its work ``got_through``."""
    return 0 if (got_through if tiny else passed) else 1
