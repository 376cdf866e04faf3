"""``make mutate``: mutation testing (mutmut) of the core rules, one target at a time.

Each target mutates a few modules and runs only the tests that guard them (mutmut then runs, for each
mutant, only the selected tests that execute the mutated function).  A target runs in its own copy
of the working tree under ``.mutmut/<target>/`` (mutmut keeps its mutants and results there), so
targets never share state; every run starts afresh.

Usage::

    python -m tests.mutation.mutate                     # every target, 2 workers
    python -m tests.mutation.mutate credentials limits  # some targets
    python -m tests.mutation.mutate scheduler           # a prefix: every scheduler-* target
    python -m tests.mutation.mutate --workers 1 --list

For each target it prints the survivors (``mutmut show`` diffs) and writes them to
``.mutmut/<target>/survivors.txt``; ``tests/mutation-survivors.md`` says, for each, which test now
kills it or why it is equivalent.  Exit status 1 when a target has a survivor not listed there.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.hypothesis_profiles import MUTMUT_PROFILE, PROFILE_VARIABLE
from tests.support.waiting import TIMEOUT_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".mutmut"
SURVIVORS_FILE = ROOT / "tests" / "mutation-survivors.md"
#: Every package of the project: all are copied (the tests import them), only a target's files mutate.
PACKAGES = [
    "eventlog", "observability", "rpc", "credentials", "journal", "scheduler", "cluster_manager", "token_api",
    "portal", "conference_controller", "switchboard", "bench", "edge",
]
#: Tests run in-process on the local transport: no RabbitMQ test, no slow test, no Node.
_PYTEST_FILTER = ["-m", "not amqp and not slow", "-k", "not amqp", "-p", "no:cacheprovider", "-x", "-q"]


@dataclass(frozen=True)
class Target:
    name: str
    files: list[str]
    tests: list[str]
    #: The tests' default ``wait_until`` timeout (seconds) when shorter than its 10 s: for tests whose
    #: waits end within milliseconds when the code is right, and many mutants are killed only when one
    #: runs out.
    wait_timeout: float | None = None


TARGETS = [
    Target("credentials", ["credentials/*"], ["tests/credentials", "tests/token_api/test_mauth.py",
                                               "tests/token_api/test_auth.py", "tests/security/test_keys.py"]),
    Target("limits", ["portal/limits.py"], ["tests/portal/test_limits.py", "tests/portal/test_limits_boundaries.py"]),
    # The room core: its unit and property tests (the property tests under their cheaper profile), and
    # the admin views through RPC.  The other controller tests through RPC guard the same rules but
    # cost about 1 s a mutant each (an env of fakes per test): 25 min instead of about 5.
    Target("machine", ["conference_controller/machine.py", "conference_controller/state.py"], [
        "tests/conference_controller/test_machine.py", "tests/conference_controller/test_machine_media.py",
        "tests/conference_controller/test_machine_replay.py", "tests/conference_controller/test_admin.py",
    ]),
    Target("permissions", ["conference_controller/permissions.py"], ["tests/conference_controller"]),
    Target("worker", ["rpc/worker.py"], ["tests/rpc/test_worker_client.py"]),
    # scheduler/ in three parts (``scheduler-*``), each with the tests that guard it; the random operation
    # sequences (test_scheduler_properties.py, ~3 s a run) only where the matcher/strategy tests are not enough.
    Target("scheduler-matchers", ["scheduler/matchers.py"], ["tests/scheduler/test_scheduler_matchers.py"]),
    Target("scheduler-strategies", ["scheduler/strategies/*"], ["tests/scheduler/test_scheduler_strategies.py",
                                                               "tests/scheduler/test_scheduler_properties.py"]),
    Target("scheduler-core", ["scheduler/scheduler.py", "scheduler/records.py", "scheduler/pools.py",
                              "scheduler/errors.py"],
           ["tests/scheduler/test_scheduler_messages.py", "tests/scheduler/test_scheduler_reservations.py",
            "tests/scheduler/test_scheduler_workers.py", "tests/scheduler/test_scheduler_matchers.py",
            "tests/scheduler/test_scheduler_properties.py"]),
    # The unit tests of LoginService against the real manager and controller (fake clock, injected
    # sleep): they kill what the end-to-end files through a real portal (test_login.py,
    # test_relogin.py) killed, at a third of the time.  About 80 of its mutants (a hold or a
    # notification that never comes) are killed only when a wait runs out: 3 s rather than 10 each.
    Target("login", ["portal/login.py"], ["tests/portal/test_login_units.py", "tests/portal/test_alternatives.py"],
           wait_timeout=3.0),
    # Unit tests of AckBatcher and SocketDelivery, plus the end-to-end "none twice" filters through a real portal.
    Target("delivery", ["portal/delivery.py"], ["tests/portal/test_delivery_units.py",
                                               "tests/portal/test_none_twice.py"]),
]


def _copy_tree(target: Target) -> Path:
    """A copy of the working tree (tracked and new files) for ``target``, with its mutmut config."""
    where = WORK / target.name
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    for name in listed:
        source, copy = ROOT / name, where / name
        if not source.is_file():
            continue
        if copy.exists() and copy.read_bytes() == source.read_bytes():
            continue
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy)
    pyproject = (ROOT / "pyproject.toml").read_text()
    config = "\n".join([
        "", "[tool.mutmut]",
        f"source_paths = {PACKAGES!r}",
        f"only_mutate = {target.files!r}",
        f"pytest_add_cli_args_test_selection = {target.tests!r}",
        f"pytest_add_cli_args = {_PYTEST_FILTER!r}",
        "",
    ])
    (where / "pyproject.toml").write_text(pyproject + config)
    return where


def _mutmut(where: Path, *args: str, wait_timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    mutmut = Path(sys.executable).with_name("mutmut")
    # property tests run under their cheaper profile (see tests/support/hypothesis_profiles.py)
    env = {**os.environ, PROFILE_VARIABLE: MUTMUT_PROFILE}
    if wait_timeout is not None:
        env[TIMEOUT_VARIABLE] = str(wait_timeout)
    return subprocess.run([str(mutmut), *args], cwd=where, capture_output=True, text=True, check=False, env=env)


def run_target(target: Target, workers: int) -> list[str]:
    """Run ``target``; its survivors' names (written with their diffs to ``survivors.txt``)."""
    where = _copy_tree(target)
    # a fresh run: mutmut keeps old verdicts of mutants whose tests changed, which would hide a kill
    shutil.rmtree(where / "mutants", ignore_errors=True)
    started = time.monotonic()
    done = _mutmut(where, "run", "--max-children", str(workers), wait_timeout=target.wait_timeout)
    (where / "run.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        print(done.stdout[-3000:], done.stderr[-3000:], sep="\n")
        raise SystemExit(f"mutmut run failed for {target.name} (log: {where / 'run.log'})")
    results = _mutmut(where, "results", "--all", "true").stdout
    statuses = dict(re.findall(r"^\s+(\S+): (.+)$", results, re.MULTILINE))
    survivors = sorted(name for name, status in statuses.items() if status not in {"killed", "caught by type check"})
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    minutes = (time.monotonic() - started) / 60
    print(f"{target.name}: {len(statuses)} mutants, {counts} in {minutes:.1f} min")
    with (where / "survivors.txt").open("w") as out:
        for name in survivors:
            shown = _mutmut(where, "show", name).stdout
            out.write(shown + "\n")
            print(shown)
    return survivors


def _parts(name: str, by_name: dict[str, Target]) -> list[str]:
    """The targets ``name`` was split into (``scheduler`` → ``scheduler-matchers``, ...)."""
    return [t for t in by_name if t.startswith(f"{name}-")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="*", help="targets to run (default: all)")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    options = parser.parse_args()
    by_name = {t.name: t for t in TARGETS}
    if options.list:
        for t in TARGETS:
            print(f"{t.name}: mutates {' '.join(t.files)}; tests {' '.join(t.tests)}")
        return
    unknown = [name for name in options.targets if name not in by_name and not _parts(name, by_name)]
    if unknown:
        raise SystemExit(f"unknown targets {unknown}; known: {', '.join(by_name)}")
    explained = SURVIVORS_FILE.read_text() if SURVIVORS_FILE.exists() else ""
    unexplained: list[str] = []
    chosen = [part for name in options.targets for part in ([name] if name in by_name else _parts(name, by_name))]
    for name in chosen or list(by_name):
        survivors = run_target(by_name[name], options.workers)
        unexplained += [s for s in survivors if f"`{s}`" not in explained]
    if unexplained:
        print(f"survivors not explained in {SURVIVORS_FILE.relative_to(ROOT)}:", *unexplained, sep="\n  ")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
