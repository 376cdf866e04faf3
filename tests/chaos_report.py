"""The ``make chaos`` results file: the JSON lines the fault scenarios wrote (``tests/support/chaos.py``)
as one markdown table per scenario, rows per client kind, with the run's date, commit and machine,
and the scenarios of issue 16 no test covers yet.

``python -m tests.chaos_report RESULTS.jsonl OUT.md [--run-time SECONDS] [--exit-status N]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

#: The scenarios issue 16 lists that no test drives yet (kept by hand: when a test covers one,
#: remove it here).
NOT_COVERED: tuple[str, ...] = ()

COLUMNS = ("client kind", "dropped", "lost", "duplicated", "recovery s", "detected s", "errors",
           "failed logins", "notes")


@dataclass
class Run:
    date: str
    commit: str
    machine: str
    run_time_s: float | None = None
    exit_status: int | None = None


def read_lines(lines: Iterable[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines if line.strip()]


def _seconds(value: Any) -> str:
    return "–" if value is None else f"{float(value):.2f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render(records: Sequence[dict[str, Any]], run: Run) -> str:
    out = ["# Chaos results", "",
           "Written by `make chaos` (docs/operations.md, *Chaos runs*); do not edit by hand.", "",
           f"- date: {run.date}", f"- commit: {run.commit}", f"- machine: {run.machine}"]
    if run.run_time_s is not None:
        out.append(f"- run time: {run.run_time_s:.0f} s")
    if run.exit_status is not None:
        out.append(f"- pytest exit status: {run.exit_status}")
    modes = sorted({r["mode"] for r in records})
    out.append(f"- mode: {', '.join(modes) or '–'}")
    outcomes = [r for r in records if r["kind"] == "outcome"]
    failed = [r["test"] for r in outcomes if not r["passed"]]
    out.append(f"- tests: {len(outcomes) - len(failed)} passed, {len(failed)} failed"
               + (": " + ", ".join(f"`{t}`" for t in failed) if failed else ""))
    if NOT_COVERED:
        out += ["", "Not covered yet (issue 16): " + "; ".join(NOT_COVERED) + "."]
    out += [""]
    rows = [r for r in records if r["kind"] == "row"]
    scenarios: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        scenarios.setdefault(row["scenario"], []).append(row)
    for scenario, found in scenarios.items():
        tests = sorted({r["test"] for r in found})
        out += [f"## {scenario}", "", "Test: " + ", ".join(f"`{t}`" for t in tests), "",
                "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        for r in found:
            cells = [r["client_kind"], r["dropped"], r["lost"], r["duplicated"], _seconds(r["recovery_s"]),
                     _seconds(r["detected_s"]), r["errors"], r["failed_logins"], r["notes"] or ""]
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        out.append("")
    if not rows:
        out += ["No scenario recorded anything.", ""]
    return "\n".join(out)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def this_run(run_time_s: float | None, exit_status: int | None) -> Run:
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return Run(datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), _commit(), machine, run_time_s,
               exit_status)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos_report")
    parser.add_argument("results", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--run-time", type=float)
    parser.add_argument("--exit-status", type=int)
    args = parser.parse_args(argv)
    lines = args.results.read_text(encoding="utf-8").splitlines() if args.results.exists() else []
    args.out.write_text(render(read_lines(lines), this_run(args.run_time, args.exit_status)), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
